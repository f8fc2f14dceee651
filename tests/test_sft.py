"""Chat template, assistant masks, packed SFT batches and a tiny end-to-end `gecko sft` run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from conftest import shared_or_skip
from gecko.config import ChatSourceConfig, SFTConfig, TokenizerConfig, load_config
from gecko.errors import DataError
from gecko.infer.chat import TextStream, chat_reply, read_chat_template, render, tokenize_conversation
from gecko.infer.generate import GREEDY
from gecko.model.hf import export_hf, load_hf
from gecko.model.llama import Llama, LlamaConfig
from gecko.sft import prepare_sft_data, read_conversations
from gecko.shards import SPLITS, Shards, write_shards
from gecko.tokenizer.train import train_tokenizer
from gecko.tokens import CHAT_TEMPLATE
from gecko.train.loader import PackedLoader, pack

TEXTS = [
    "안녕하세요 반갑습니다. 오늘 날씨가 좋네요.",
    "Hello, how are you? I am fine, thank you.",
    "def f(x):\n    return x + 1\n",
] * 30
CONV = [
    {"role": "system", "content": "You are GECKO."},
    {"role": "user", "content": "안녕?"},
    {"role": "assistant", "content": "안녕하세요!"},
    {"role": "user", "content": "How are you?"},
    {"role": "assistant", "content": "I am fine."},
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GECKO tokenizer (with the chat tokens) and a tiny random model, exported."""
    root = tmp_path_factory.mktemp("sft-base")
    corpus = root / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": str(i), "text": t, "lang": "ko", "source": "t"}, ensure_ascii=False) + "\n"
            for i, t in enumerate(TEXTS)
        )
    )
    tok = Tokenizer.from_file(
        str(train_tokenizer(TokenizerConfig(vocab_size=4096, min_frequency=1), corpus, root / "tok"))
    )
    torch.manual_seed(0)
    model = Llama(
        LlamaConfig(
            vocab_size=tok.get_vocab_size(),
            dim=64,
            n_layers=2,
            n_heads=4,
            n_kv_heads=2,
            ffn_dim=128,
            max_seq_len=96,
        )
    )
    return export_hf(model, root / "tok", root / "hf")


def tokenizer(base: Path) -> Tokenizer:
    return Tokenizer.from_file(str(base / "tokenizer.json"))


def test_template_in_tokenizer_config_matches_transformers(base):
    from transformers import AutoTokenizer

    template, bos = read_chat_template(base)
    assert template == CHAT_TEMPLATE and bos == "<s>"
    hf = AutoTokenizer.from_pretrained(base)
    for gen in (False, True):
        ours = render(CONV[:3], template, bos, add_generation_prompt=gen)
        assert hf.apply_chat_template(CONV[:3], tokenize=False, add_generation_prompt=gen) == ours
    assert (
        render(CONV[:2], add_generation_prompt=True)
        == "<s><|system|>\nYou are GECKO.<|end|>\n<|user|>\n안녕?<|end|>\n<|assistant|>\n"
    )
    assert json.loads((base / "generation_config.json").read_text())["eos_token_id"] == [
        2,
        7,
    ]  # </s>, <|end|>


def test_assistant_mask_covers_replies_and_their_end_token(base):
    tok = tokenizer(base)
    ids, mask = tokenize_conversation(tok, CONV, CHAT_TEMPLATE, "<s>")
    assert ids == tok.encode(render(CONV), add_special_tokens=False).ids
    assert ids[0] == tok.token_to_id("<s>")
    learned = tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
    assert learned == "안녕하세요!<|end|>\nI am fine.<|end|>\n"


def test_readers_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": CONV}) + "\n{oops\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON: Expecting property name"):
        list(read_conversations(ChatSourceConfig("b", str(bad), "ko"), None))
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: no assistant turn"):
        list(read_conversations(ChatSourceConfig("b", str(bad), "ko"), None))
    qa = tmp_path / "qa.csv"
    qa.write_text("question,reply\nhi,hello\n")
    with pytest.raises(DataError, match=r"qa.csv:1: no column 'Q'"):
        list(read_conversations(ChatSourceConfig("q", str(qa), "en", format="csv"), None))
    src = ChatSourceConfig(
        "q", str(qa), "en", format="csv", answer="reply", question="question", prompt="Say: {question}"
    )
    [messages] = read_conversations(src, "sys")
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Say: hi"},
        {"role": "assistant", "content": "hello"},
    ]


def write_sources(root: Path) -> tuple[ChatSourceConfig, ...]:
    convs = root / "chat.jsonl"
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"질문 {i}"},
                {"role": "assistant", "content": "안녕하세요 반갑습니다."},
            ]
        }
        for i in range(50)
    ]
    lines.append(
        {"messages": [{"role": "user", "content": "long"}, {"role": "assistant", "content": "안녕 " * 200}]}
    )
    lines.append({"messages": [{"role": "user", "content": "empty"}, {"role": "assistant", "content": ""}]})
    convs.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    (root / "qa.tsv").write_text("en\tko\n" + "".join(f"Hello {i}\t안녕 {i}\n" for i in range(30)))
    return (
        ChatSourceConfig("chat", str(convs), "ko"),
        ChatSourceConfig(
            "tr",
            str(root / "qa.tsv"),
            "en",
            format="tsv",
            question="en",
            answer="ko",
            prompt="Translate into Korean: {question}",
        ),
    )


def test_packed_batches_keep_conversations_whole(base, tmp_path):
    cfg = SFTConfig(sources=write_sources(tmp_path), val_fraction=0.2)
    stats = prepare_sft_data(cfg, tokenizer(base), CHAT_TEMPLATE, "<s>", 63, tmp_path / "data", seed=0)
    assert (
        stats["sources"]["chat"]["dropped_too_long"] == 1
        and stats["sources"]["chat"]["dropped_empty_reply"] == 1
    )
    assert sum(stats["sources"]["chat"].values()) == 52 and sum(stats["sources"]["tr"].values()) == 30
    shards = Shards(tmp_path / "data")
    loader = PackedLoader(shards, "train", 63, 4, seed=0)
    batch = next(loader)
    assert batch.inputs.shape == batch.loss_mask.shape == (4, 63)
    for r in range(4):
        docs, pos = batch.doc_ids[r], batch.positions[r]
        starts = torch.nonzero(pos == 0).flatten().tolist()
        assert starts[0] == 0 and docs[starts].tolist() == list(range(len(starts)))
        real = batch.inputs[r][pos == 0][: len(starts) - 1]  # every conversation starts with <s>
        assert (real == 1).all()
    # the loss mask selects assistant tokens only: decoding them gives replies and their end tokens
    learned = tokenizer(base).decode(batch.targets[0][batch.loss_mask[0]].tolist(), skip_special_tokens=False)
    assert learned.count("<|end|>") >= 1 and "<|user|>" not in learned and "질문" not in learned
    # resuming replays the same batches
    state = loader.state_dict()
    expected = [next(loader) for _ in range(5)]
    again = PackedLoader(shards, "train", 63, 4, seed=0)
    again.load_state_dict(state)
    for a, b in zip(expected, (next(again) for _ in range(5))):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.loss_mask, b.loss_mask)
    # a checkpoint of the SFT loader before it was the pretraining loader (batch_size, not global_batch)
    legacy = {k: v for k, v in state.items() if k != "global_batch"} | {"batch_size": 4}
    again = PackedLoader(shards, "train", 63, 4, seed=0)
    again.load_state_dict(legacy)
    assert torch.equal(next(again).inputs, expected[0].inputs)


def test_sft_shards_are_written_and_read_through_gecko_shards(base, tmp_path):
    """The SFT data folder is the shard format with a loss mask: `Shards` reads the mask back (checked like the
    other files), and `write_shards` rewrites the folder byte for byte from what `Shards` reads."""
    cfg = SFTConfig(sources=write_sources(tmp_path), val_fraction=0.2)
    prepare_sft_data(cfg, tokenizer(base), CHAT_TEMPLATE, "<s>", 63, tmp_path / "data", seed=0)
    shards = Shards(tmp_path / "data")
    arrays = {s: (np.asarray(shards.tokens(s)), shards.index(s), shards.mask(s)) for s in SPLITS}
    for split, (tokens, _, mask) in arrays.items():
        assert mask is not None and mask.dtype == bool and len(mask) == len(tokens)
        assert int(mask.sum()) == shards.meta["assistant_tokens"][split] > 0
    copy = tmp_path / "copy"
    write_shards(copy, arrays, shards.meta)
    written = sorted(f.name for f in copy.iterdir())
    assert written == sorted(f.name for f in (tmp_path / "data").iterdir() if f.name != "stats.json")
    assert all((copy / f).read_bytes() == (tmp_path / "data" / f).read_bytes() for f in written)
    with pytest.raises(AssertionError, match="disagree"):  # a mask missing where the format has one
        write_shards(tmp_path / "bad", {"train": arrays["train"][:2] + (None,)}, shards.meta)
    np.save(copy / "val.mask.npy", arrays["val"][2][:-1])  # cut by one token
    with pytest.raises(DataError, match=r"val\.mask\.npy: loss mask"):
        Shards(copy).mask("val")


def test_pack_never_splits_or_drops():
    lengths = np.array([5, 9, 3, 10, 1, 7])
    rows = pack(lengths, np.arange(6), 10)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(lengths[row].sum() <= 10 for row in rows)


def test_sft_stage_lowers_heldout_loss_and_exports_a_chat_model(base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gecko.runner import run_stage
    from gecko.stages import SFT

    sources = write_sources(tmp_path)
    cfg_path = tmp_path / "sft.yaml"
    src_yaml = "\n".join(
        f"    - {json.dumps({k: v for k, v in s.__dict__.items() if v is not None})}" for s in sources
    )
    cfg_path.write_text(
        f"run_dir: {tmp_path / 'run'}\nsft:\n  init_from: {base}\n  val_fraction: 0.2\n"
        f"  sources:\n{src_yaml}\n"
    )
    cfg = load_config(
        cfg_path,
        [
            "sft.train.seq_len=63",
            "sft.train.batch_size=4",
            "sft.train.steps=12",
            "sft.train.lr=3e-3",
            "sft.train.warmup_steps=2",
            "sft.train.eval_every=null",
        ],
    )
    run_stage(cfg, SFT)
    out = tmp_path / "run" / "sft"
    results = json.loads((out / "eval.json").read_text())
    assert results["val_loss"]["all"] < results["val_loss_step0"]["all"] - 1.0
    assert "Held-out loss" in (out / "report.md").read_text()
    assert "Instruction tuning" in (out / "hf" / "README.md").read_text()
    # the tuned folder loads in transformers and its chat template renders a prompt our model continues
    hf_tok = AutoTokenizer.from_pretrained(out / "hf")
    user = [{"role": "user", "content": "질문 3"}]
    text = hf_tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    prompt = hf_tok(text, add_special_tokens=False)["input_ids"]
    assert (
        prompt
        == tokenizer(out / "hf")
        .encode(render(user, add_generation_prompt=True), add_special_tokens=False)
        .ids
    )
    model, _ = load_hf(out / "hf")
    with torch.no_grad():
        theirs = AutoModelForCausalLM.from_pretrained(out / "hf")(torch.tensor([prompt])).logits
    assert (model(torch.tensor([prompt])) - theirs).abs().max() <= 1e-5
    reply = "".join(
        chat_reply(model, tokenizer(out / "hf"), user, CHAT_TEMPLATE, "<s>", 20, GREEDY, torch.Generator())
    )
    assert reply and "<|" not in reply


def test_text_stream_holds_back_split_characters(base):
    tok = tokenizer(base)
    ids = tok.encode("한글 漢字", add_special_tokens=False).ids  # 漢字 is outside the alphabet: byte tokens
    stream = TextStream(tok)
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) == "한글 漢字" and all("\ufffd" not in p for p in pieces)


def test_chatbot_csv_reads_as_conversations():
    path = shared_or_skip("corpus", "ko", "chatbot", "ChatbotData.csv")
    src = ChatSourceConfig("chatbot", str(path), "ko", format="csv", max_conversations=100)
    convs = list(read_conversations(src, None))
    assert len(convs) == 100 and convs[0][0] == {"role": "user", "content": "12시 땡!"}


def test_chat_command_streams_replies_until_exit(base, tmp_path):
    import os
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "gecko",
        "chat",
        "--model",
        str(base),
        "generate.max_new_tokens=5",
        "generate.temperature=0",
    ]  # the model folder alone: no config
    done = subprocess.run(
        cmd,
        input="안녕? [i] x = [/]\n/reset\nHello\n/exit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("gecko>") == 2 and not list(tmp_path.iterdir())  # and no run folder was made
    missing = subprocess.run([*cmd[:5], str(tmp_path)], input="", capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no config.json" in missing.stderr
