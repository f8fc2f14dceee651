import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from gecko.errors import CheckpointError, DataError
from gecko.infer.generate import GREEDY, Sampling, generate, generate_batch
from gecko.model.hf import export_hf, load_hf
from gecko.model.llama import Llama
from helpers import hf_model, prompt, seeded_llama

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"tie_embeddings": True},
        {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        {"rope_scaling": LLAMA3, "rope_theta": 500000.0},
    ],
    ids=["untied", "tied", "linear-rope", "llama3-rope"],
)
def test_export_matches_transformers_and_round_trips(tmp_path, tokenizer_dir, changes):
    model = seeded_llama(**changes)
    folder = export_hf(model, tokenizer_dir, tmp_path / "export")
    x = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(0))
    ours = model(x)
    with torch.no_grad():
        theirs = hf_model(folder)(x).logits
    assert (ours - theirs).abs().max().item() <= 1e-5
    loaded, cfg = load_hf(folder)
    assert cfg == model.cfg
    assert torch.equal(loaded(x), ours)
    assert ("lm_head.weight" in load_file(folder / "model.safetensors")) != model.cfg.tie_embeddings


def test_export_writes_tokenizer_and_configs(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    folder = export_hf(seeded_llama(), tokenizer_dir, tmp_path / "export", dtype="bfloat16")
    export_hf(seeded_llama(), tokenizer_dir, folder, dtype="bfloat16")  # replacing an export works too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary folders left behind
    config = json.loads((folder / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, 0)
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == 2
    assert load_file(folder / "model.safetensors")["model.norm.weight"].dtype == torch.bfloat16
    tok = AutoTokenizer.from_pretrained(folder)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    text = "서울은 한강을 끼고 있습니다."
    reference = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    assert tok(text)["input_ids"] == reference.encode(text).ids
    assert tok.decode(tok(text)["input_ids"]) == text


def test_export_and_load_reject_mismatches(tmp_path, tokenizer_dir):
    with pytest.raises(DataError, match="tokenizer has 300 tokens but the model's vocab_size is 256"):
        export_hf(seeded_llama(vocab_size=256), tokenizer_dir, tmp_path / "small-vocab")
    with pytest.raises(CheckpointError, match="dtype='int8'"):
        export_hf(seeded_llama(), tokenizer_dir, tmp_path / "int8", dtype="int8")
    folder = export_hf(seeded_llama(), tokenizer_dir, tmp_path / "export")
    tensors = load_file(folder / "model.safetensors")
    up = "model.layers.0.mlp.up_proj.weight"
    tensors[up] = tensors[up][:10]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"up_proj.weight has shape \(10, 64\), config expects \(160, 64\)"
    ):
        load_hf(folder)
    del tensors["model.norm.weight"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing \['model.norm.weight'\]"):
        load_hf(folder)


def greedy_without_cache(model: Llama, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    for _ in range(n):
        out.append(int(model(torch.tensor([out]))[0, -1].argmax()))
    return out[len(ids) :]


def test_greedy_generation_matches_no_cache_and_transformers(tmp_path, tokenizer_dir):
    model = seeded_llama()
    ids = prompt(tokenizer_dir)
    cached = generate(model, ids, 20, GREEDY)
    assert cached == greedy_without_cache(model, ids, 20)
    folder = export_hf(model, tokenizer_dir, tmp_path / "export")
    hf_out = hf_model(folder).generate(
        torch.tensor([ids]), do_sample=False, max_new_tokens=20, min_new_tokens=20
    )
    assert cached == hf_out[0, len(ids) :].tolist()


def test_batched_greedy_matches_one_prompt_at_a_time(tokenizer_dir):
    model = seeded_llama()
    prompts = [prompt(tokenizer_dir), [1, 5, 9], [1, 42, 7, 7, 80, 2, 13]]
    batched = generate_batch(model, prompts, 12, GREEDY)
    assert batched == [generate(model, p, 12, GREEDY) for p in prompts]


def test_sampling_is_seeded_and_stops_at_eos(tokenizer_dir):
    model = seeded_llama()
    ids = prompt(tokenizer_dir)

    def sample(seed: int, **kw) -> list[int]:
        return generate(
            model,
            ids,
            30,
            Sampling(1.0, top_k=20, top_p=0.9),
            generator=torch.Generator().manual_seed(seed),
            **kw,
        )

    assert sample(0) == sample(0) and sample(0) != sample(1)
    assert generate(model, ids, 15, Sampling(1.0, top_k=1)) == generate(model, ids, 15, GREEDY)
    greedy = generate(model, ids, 15, GREEDY)
    stop = greedy[5]
    assert generate(model, ids, 15, GREEDY, eos_id=stop) == greedy[: greedy.index(stop) + 1]


@pytest.mark.parametrize(
    "umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600), (0o002, 0o775, 0o664)]
)
def test_export_folder_is_as_readable_as_the_umask_allows(
    tmp_path, tokenizer_dir, umask, folder_mode, file_mode
):
    import os
    import stat

    old = os.umask(umask)
    try:
        folder = export_hf(seeded_llama(), tokenizer_dir, tmp_path / "export", max_shard_bytes=40_000)
    finally:
        os.umask(old)
    files = [p for p in folder.iterdir()]
    assert any(p.suffix == ".safetensors" for p in files) and (folder / "config.json") in files
    assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(file_mode)}
