import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gecko.model.llama
from gecko.config import ModelConfig
from gecko.errors import ConfigError
from gecko.model.llama import KVCache, Llama, LlamaConfig
from gecko.model.presets import PRESETS, build_llama_config

CFG = LlamaConfig(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=160, max_seq_len=64)


def make_model(cfg: LlamaConfig = CFG, seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(cfg).eval()


def tokens(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CFG.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_and_float32_logits():
    model = make_model()
    logits = model(tokens(3, 10))
    assert logits.shape == (3, 10, CFG.vocab_size) and logits.dtype == torch.float32
    attn = model.layers["0"].attention
    assert attn.wq.weight.shape == (4 * 16, 64)
    assert attn.wk.weight.shape == attn.wv.weight.shape == (2 * 16, 64)  # GQA: 2 kv heads of 16


def test_gqa_equals_multi_head_with_repeated_kv_heads():
    gqa = make_model()
    mha = Llama(dataclasses.replace(CFG, n_kv_heads=CFG.n_heads)).eval()
    state = gqa.state_dict()
    for key, w in state.items():
        if key.endswith(("wk.weight", "wv.weight")):  # kv head j serves query heads 2j and 2j+1
            state[key] = w.view(2, 16, 64).repeat_interleave(2, dim=0).reshape(64, 64)
    mha.load_state_dict(state)
    x = tokens(2, 12)
    torch.testing.assert_close(gqa(x), mha(x), rtol=0, atol=1e-5)


def test_packed_documents_match_documents_run_alone():
    model = make_model()
    x = tokens(2, 20)
    cut = [7, 12]  # a different boundary in each row
    doc_ids = torch.stack([(torch.arange(20) >= c).long() for c in cut])
    positions = torch.stack([torch.cat([torch.arange(c), torch.arange(20 - c)]) for c in cut])
    packed = model(x, positions, doc_ids)
    for row, c in enumerate(cut):
        first, second = model(x[row : row + 1, :c]), model(x[row : row + 1, c:])
        torch.testing.assert_close(packed[row, :c], first[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(packed[row, c:], second[0], rtol=0, atol=1e-5)


def test_plain_causal_matches_one_document_and_ignores_the_future():
    model = make_model()
    x = tokens(1, 16)
    logits = model(x)
    one_doc = model(x, torch.arange(16)[None], torch.zeros_like(x))
    torch.testing.assert_close(logits, one_doc, rtol=0, atol=1e-5)
    changed = x.clone()
    changed[0, 10] = (changed[0, 10] + 1) % CFG.vocab_size
    after = model(changed)
    torch.testing.assert_close(after[:, :10], logits[:, :10], rtol=0, atol=0)
    assert not torch.allclose(after[:, 10:], logits[:, 10:])


def test_kv_cache_matches_full_forward():
    model = make_model()
    x = tokens(2, 14)
    cache = KVCache(CFG, batch_size=2, max_len=14)
    chunks = [model(x[:, :6], cache=cache), model(x[:, 6:9], cache=cache)]  # prefill, chunked prefill
    chunks += [model(x[:, t : t + 1], cache=cache) for t in range(9, 14)]  # one token per step
    torch.testing.assert_close(torch.cat(chunks, dim=1), model(x), rtol=0, atol=1e-5)
    assert cache.length == 14
    with pytest.raises(ValueError, match="KVCache holds 14 tokens"):
        model(x[:, :1], cache=cache)


def test_kv_cache_masks_only_padding_and_chunks():
    def extend(cache: KVCache, doc_ids: list[list[int]]) -> torch.Tensor | None:
        mask = cache.extend_docs(torch.tensor(doc_ids))
        cache.length += len(doc_ids[0])  # as Llama.forward does after its layers
        return mask

    one_doc = KVCache(CFG, batch_size=2, max_len=8)
    assert extend(one_doc, [[1] * 4] * 2) is None  # prefill: plain causal
    assert extend(one_doc, [[1]] * 2) is None  # decode step: the new token sees every key
    chunk = extend(one_doc, [[1, 1]] * 2)  # a chunk after the cache needs a causal mask
    assert chunk.shape == (2, 1, 2, 7) and not chunk[:, :, 0, 6].any() and chunk[:, :, 1].all()
    padded = KVCache(CFG, batch_size=2, max_len=8)
    extend(padded, [[0, 0, 1], [1, 1, 1]])  # row 0 is left-padded
    step = extend(padded, [[1]] * 2)
    assert step.squeeze().tolist() == [[False, False, True, True], [True, True, True, True]]


def test_left_padded_decoding_matches_the_prompt_alone():
    model = make_model()
    x = tokens(1, 9)
    alone = model(x)
    cache = KVCache(CFG, batch_size=1, max_len=12)
    pad = torch.zeros(1, 3, dtype=torch.long)
    prefill = model(
        torch.cat([pad, x[:, :6]], 1),
        torch.cat([pad, torch.arange(6)[None]], 1),
        torch.cat([pad, torch.ones(1, 6, dtype=torch.long)], 1),
        cache,
    )
    steps = [
        model(x[:, t : t + 1], torch.tensor([[t]]), torch.ones(1, 1, dtype=torch.long), cache)
        for t in range(6, 9)
    ]
    torch.testing.assert_close(torch.cat([prefill[:, 3:], *steps], 1), alone, rtol=0, atol=1e-5)


def test_linear_rope_scaling_stretches_positions():
    # With factor 2, position 2p gets the angle that position p had: attention (relative) is unchanged.
    plain = make_model()
    scaled = Llama(dataclasses.replace(CFG, rope_scaling={"rope_type": "linear", "factor": 2.0})).eval()
    scaled.load_state_dict(plain.state_dict())
    x = tokens(1, 16)
    torch.testing.assert_close(scaled(x, positions=2 * torch.arange(16)[None]), plain(x), rtol=0, atol=1e-5)


def test_meta_build_then_to_empty_and_init_weights():
    cfg = dataclasses.replace(CFG, tie_embeddings=True, init_std=0.05)
    with torch.device("meta"):
        model = Llama(cfg)
    assert all(p.is_meta for p in model.parameters())
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    model.init_weights()
    assert torch.isfinite(model(tokens(1, 8))).all()
    assert model.output is None  # tied: the embedding is the head, nothing to untie
    assert abs(model.layers["0"].attention.wq.weight.std().item() - 0.05) < 0.005
    assert abs(model.layers["0"].attention.wo.weight.std().item() - 0.05 / 2) < 0.005  # 1/sqrt(2·2 layers)
    assert torch.equal(model.norm.weight, torch.ones(cfg.dim))
    torch.testing.assert_close(model.rope.cos, make_model(cfg).rope.cos, rtol=0, atol=0)


@pytest.mark.parametrize("tie", [False, True])
def test_param_groups_cover_every_parameter_once(tie):
    model = make_model(dataclasses.replace(CFG, tie_embeddings=tie))
    decay, no_decay = model.param_groups(weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for group in (decay, no_decay) for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert all(p.dim() == 2 for p in decay["params"])
    assert any(p is model.tok_embeddings.weight for p in no_decay["params"])
    assert sum(p.dim() == 1 for p in no_decay["params"]) == 2 * CFG.n_layers + 1  # every RMSNorm


def test_num_params_and_flops():
    model = make_model()
    total = sum(p.numel() for p in model.parameters())
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - CFG.vocab_size * CFG.dim
    assert model.flops_per_token(32) == 6 * model.num_params() + 12 * CFG.n_layers * CFG.dim * 32
    tied = make_model(dataclasses.replace(CFG, tie_embeddings=True))
    assert tied.num_params() == tied.num_params(non_embedding=False)  # the table is also the output matmul


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_on_meta(name):
    cfg = build_llama_config(ModelConfig(preset=name), vocab_size=32000)
    with torch.device("meta"):
        model = Llama(cfg)
    assert model.num_params(non_embedding=False) > 0
    if name == "gecko-7b":
        assert model.num_params(non_embedding=False) == 6_738_415_616  # LLaMA-2-7B


def test_build_llama_config_overrides_and_errors():
    cfg = build_llama_config(ModelConfig(preset="tiny", n_layers=2, tie_embeddings=True), vocab_size=1000)
    assert (cfg.vocab_size, cfg.n_layers, cfg.tie_embeddings, cfg.dim) == (1000, 2, True, PRESETS["tiny"].dim)
    with pytest.raises(ConfigError, match=r"model.preset='huge'.*known: tiny, small"):
        build_llama_config(ModelConfig(preset="huge"), vocab_size=1000)
    with pytest.raises(ConfigError, match="n_heads=4 must be a multiple of n_kv_heads=3"):
        build_llama_config(ModelConfig(preset="tiny", n_kv_heads=3), vocab_size=1000)
    with pytest.raises(ConfigError, match="rope_type='yarn'"):
        dataclasses.replace(CFG, rope_scaling={"rope_type": "yarn", "factor": 2.0})


def test_model_module_stays_plain_pytorch():
    code = "import sys, gecko.model.llama; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    source = Path(gecko.model.llama.__file__).read_text(encoding="utf-8")
    assert "torch.distributed" not in source  # parallelism is applied from outside (train/parallelize.py)


def test_flex_compile_failure_falls_back_to_sdpa_with_the_same_mask(monkeypatch, caplog):
    from torch._inductor.exc import InductorError
    from torch.nn.attention.flex_attention import create_block_mask

    llama = gecko.model.llama
    calls = []

    def broken(fn):
        def compiled(*args, **kwargs):
            calls.append(fn)
            raise InductorError(RuntimeError("NoValidChoicesError: No choices to select"), None)

        return compiled

    monkeypatch.setattr(llama, "_flex_error", None)
    monkeypatch.setattr(llama, "_flex_probed", set())
    monkeypatch.setattr(llama, "_compiled", broken)
    doc_ids = torch.stack([(torch.arange(20) >= c).long() for c in (7, 12)])

    def same_doc_causal(b, h, q, kv):
        return (doc_ids[b, q] == doc_ids[b, kv]) & (kv <= q)

    block_mask = create_block_mask(same_doc_causal, 2, None, 20, 20, device="cpu")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, h, 20, 16, generator=g) for h in (4, 2, 2))
    with caplog.at_level("WARNING", logger="gecko.model.llama"):
        out = llama.attend(q, k, v, block_mask)
        again = llama.attend(q, k, v, block_mask)
    expected = llama.attend(q, k, v, llama.doc_bool_mask(doc_ids, doc_ids, offset=0))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(again, expected, rtol=0, atol=0)
    assert len(calls) == 1  # the failure is remembered: no second compilation
    assert "NoValidChoicesError" in llama._flex_error
    assert [r.message for r in caplog.records if "NoValidChoicesError" in r.message]


def test_flex_errors_that_are_not_compile_errors_propagate(monkeypatch):
    from torch.nn.attention.flex_attention import create_block_mask

    llama = gecko.model.llama

    def broken(fn):
        def compiled(*args, **kwargs):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

        return compiled

    monkeypatch.setattr(llama, "_flex_error", None)
    monkeypatch.setattr(llama, "_flex_probed", set())
    monkeypatch.setattr(llama, "_compiled", broken)
    block_mask = create_block_mask(lambda b, h, q, kv: kv <= q, 1, None, 16, 16, device="cpu")
    q = torch.randn(1, 2, 16, 8)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        llama.attend(q, q, q, block_mask)
