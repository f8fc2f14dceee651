"""Shards: index consistent with the token stream, split by document, identical for any worker count."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from gecko.config import TokenizeConfig, TokenizerConfig
from gecko.errors import DataError
from gecko.shards import INDEX_DTYPE, Shards, unit_hash
from gecko.tokenizer import pretokenize as shards_module
from gecko.tokenizer.pretokenize import pretokenize, split_by_unit_hash
from gecko.tokenizer.train import train_tokenizer
from gecko.tokens import load_tokenizer

TEXTS = {
    "ko": [
        "서울은 대한민국의 수도이다. 인구는 약 940만 명이다.",
        "한글은 1443년에 창제되었다. <s>태그</s>도 글자다.",
    ],
    "en": ["The quick brown fox jumps over the lazy dog 42 times.", "Shards are memory-mapped token arrays."],
    "code": ["def f(x):\n    return x * 2\n", "for i in range(10):\n\tprint(i)\n"],
}


def _write_corpus(path: Path, n: int = 40) -> Path:
    lines = []
    for i in range(n):
        for lang, texts in TEXTS.items():
            text = texts[i % 2] + f" {i}" * (i % 5)
            record = {"id": f"{lang}/{i}", "text": text, "lang": lang, "source": f"src_{lang}_{i % 2}"}
            lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("shards")
    corpus = _write_corpus(root / "corpus.jsonl")
    train_tokenizer(TokenizerConfig(vocab_size=600), corpus, root / "tok")
    return root, corpus, root / "tok"


def _run(setup: tuple[Path, Path, Path], name: str, workers: int, seed: int = 7) -> Path:
    root, corpus, tok = setup
    out = root / name
    pretokenize(TokenizeConfig(val_fraction=0.2, workers=workers, chunk_bytes=1500), corpus, tok, out, seed)
    return out


@pytest.fixture(scope="module")
def shards_dir(setup: tuple[Path, Path, Path]) -> Path:
    return _run(setup, "w1", workers=1)


def test_index_matches_token_stream(shards_dir: Path, setup: tuple[Path, Path, Path]) -> None:
    shards = Shards(shards_dir)
    tok = load_tokenizer(setup[2], text_only=True)
    assert shards.meta["dtype"] == "uint16" and shards.langs == ["ko", "en", "code"]
    for split in ("train", "val"):
        tokens, index = shards.tokens(split), shards.index(split)
        assert index.dtype == INDEX_DTYPE
        assert (shards_dir / f"{split}.bin").stat().st_size == index["length"].sum() * 2
        assert np.array_equal(index["start"], np.cumsum(index["length"]) - index["length"])
        assert (tokens[index["start"]] == shards.meta["bos_id"]).all()
        assert (tokens[index["start"] + index["length"] - 1] == shards.meta["eos_id"]).all()
        row = index[0]
        text = tok.decode(tokens[row["start"] + 1 : row["start"] + row["length"] - 1].tolist())
        assert len(text.encode()) == row["n_bytes"]
        assert shards.meta["splits"][split]["docs"] == len(index)


def test_literal_special_strings_stay_text(shards_dir: Path) -> None:
    shards = Shards(shards_dir)
    for split in ("train", "val"):
        tokens, index = shards.tokens(split), shards.index(split)
        assert (tokens == shards.meta["bos_id"]).sum() == len(index)  # "<s>" in the text is not a boundary


def test_val_split_is_by_document_and_deterministic(setup: tuple[Path, Path, Path], shards_dir: Path) -> None:
    again = _run(setup, "again", workers=1)
    for name in ("train.bin", "val.bin", "train.idx.npy", "val.idx.npy", "meta.json"):
        assert (again / name).read_bytes() == (shards_dir / name).read_bytes()
    meta = Shards(shards_dir).meta
    assert all(meta["splits"]["val"]["langs"][lang]["docs"] >= 1 for lang in TEXTS)
    assert meta["splits"]["train"]["docs"] + meta["splits"]["val"]["docs"] == 120
    other = Shards(_run(setup, "seed8", workers=1, seed=8)).meta  # another seed, another split
    assert other["splits"]["val"] != meta["splits"]["val"]


def test_same_output_for_one_and_two_workers(setup: tuple[Path, Path, Path], shards_dir: Path) -> None:
    two = _run(setup, "w2", workers=2)
    for name in ("train.bin", "val.bin", "train.idx.npy", "val.idx.npy", "meta.json"):
        assert (two / name).read_bytes() == (shards_dir / name).read_bytes()
    assert not (two / ".parts").exists()


def test_every_language_gets_a_val_document() -> None:
    unit = np.array([unit_hash(0, f"d{i}") for i in range(5)])
    lang = np.array([0, 0, 1, 1, 2], dtype=np.uint8)
    is_val = split_by_unit_hash(unit, lang, val_fraction=1e-9)
    assert is_val[:2].sum() == 1 and is_val[2:4].sum() == 1 and not is_val[4]
    assert split_by_unit_hash(unit, lang, val_fraction=1 - 1e-9)[:4].sum() == 2  # train keeps one too


def test_resume_reuses_finished_chunks(
    setup: tuple[Path, Path, Path], shards_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, corpus, tok = setup
    out = root / "resumed"
    cfg = TokenizeConfig(val_fraction=0.2, workers=1, chunk_bytes=1500)

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # a run killed after encoding, before publishing
        m.setattr(shards_module, "_publish", killed)
        with pytest.raises(KeyboardInterrupt):
            pretokenize(cfg, corpus, tok, out, 7)
    markers = sorted((out / ".parts").glob("*.npz"))
    assert len(markers) > 2 and not (out / "meta.json").exists()
    markers[1].unlink()  # this chunk was still being written
    calls = []
    original = shards_module.encode_chunk
    monkeypatch.setattr(
        shards_module, "encode_chunk", lambda task, tokenizer: calls.append(task) or original(task, tokenizer)
    )
    pretokenize(cfg, corpus, tok, out, 7)
    assert [t.chunk.index for t in calls] == [1]
    for name in ("train.bin", "val.bin", "train.idx.npy", "val.idx.npy", "meta.json"):
        assert (out / name).read_bytes() == (shards_dir / name).read_bytes()


def test_reader_errors_name_the_file(shards_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="meta.json"):
        Shards(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_bytes((shards_dir / "meta.json").read_bytes())
    (broken / "train.bin").write_bytes((shards_dir / "train.bin").read_bytes()[:-2])
    shards = Shards(broken)
    with pytest.raises(DataError, match="train.bin"):
        shards.tokens("train")
    with pytest.raises(DataError, match="val.bin"):
        shards.tokens("val")
    with pytest.raises(DataError, match="train.idx.npy"):
        shards.index("train")
    with pytest.raises(DataError, match="unknown split"):
        shards.tokens("test")


def _foreign_tokenizer(out: Path, specials: list[str]) -> Path:
    """A LLaMA-2-like tokenizer: `specials` at ids 0.., then a plain BPE; none of GECKO's other tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=specials[0]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.train_from_iterator(
        [t for texts in TEXTS.values() for t in texts],
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    out.mkdir()
    tok.save(str(out / "tokenizer.json"))
    return out


@pytest.mark.parametrize(
    ("specials", "boundaries"),
    [
        (["<unk>", "<s>", "</s>"], (1, 2)),  # LLaMA-2 / Mistral
        (["<unk>", "</s>", "<s>"], (2, 1)),  # the same tokens elsewhere: the tokenizer's ids, not GECKO's
        (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], (0, 0)),  # SmolLM2 / Qwen: one separator
        (["<|begin_of_text|>", "<|end_of_text|>", "<|endoftext|>"], (0, 1)),  # Llama-3 wins over GPT-2's
    ],
)
def test_foreign_tokenizers_pack_documents_with_their_own_boundaries(
    setup: tuple[Path, Path, Path], specials: list[str], boundaries: tuple[int, int]
) -> None:
    """Continued pretraining keeps the base model's document boundaries; meta.json names them for bpb."""
    root, corpus, _ = setup
    name = "-".join(map(str, boundaries)) + specials[0].strip("<|>")
    foreign = _foreign_tokenizer(root / f"tok-{name}", specials)
    pretokenize(TokenizeConfig(val_fraction=0.2, workers=1), corpus, foreign, root / f"shards-{name}", 7)
    shards = Shards(root / f"shards-{name}")
    tokens, index = shards.tokens("train"), shards.index("train")
    for row in index[:5]:
        start, length = int(row["start"]), int(row["length"])
        assert (tokens[start], tokens[start + length - 1]) == boundaries
    assert (shards.meta["bos_id"], shards.meta["eos_id"]) == boundaries


def test_a_tokenizer_without_boundary_tokens_is_one_error(setup: tuple[Path, Path, Path]) -> None:
    root, corpus, _ = setup
    bare = _foreign_tokenizer(root / "bare", ["<unk>", "<pad>", "<mask>"])
    with pytest.raises(DataError, match=r"tokenizer.json: no document boundary tokens \(<s>/</s>"):
        pretokenize(TokenizeConfig(workers=1), corpus, bare, root / "bad", 7)


def test_a_failing_chunk_stops_the_queued_ones(setup: tuple[Path, Path, Path]) -> None:
    """A malformed line is an error naming file and line, raised once the few chunks queued ahead of it end,
    not after the whole corpus was encoded."""
    root, corpus, tok = setup
    lines = corpus.read_bytes().splitlines(keepends=True)
    broken = root / "broken.jsonl"
    broken.write_bytes(b"".join(lines[:20] + [b'{"id": "x", "text": 1}\n'] + lines * 3))
    cfg = TokenizeConfig(val_fraction=0.2, workers=2, chunk_bytes=1500)
    n_chunks = len(shards_module.plan_chunks(broken.stat().st_size, cfg.chunk_bytes))
    with pytest.raises(DataError, match=r"broken.jsonl:21: not a GECKO corpus record"):
        pretokenize(cfg, broken, tok, root / "failing", 7)
    encoded = len(list((root / "failing" / ".parts").glob("*.npz")))
    assert n_chunks > 20 and encoded <= 2 * cfg.workers + 2


@pytest.mark.parametrize("chunk_bytes", [97, 1 << 20])
@pytest.mark.parametrize("final_newline", [True, False])
def test_chunking_neither_splits_nor_loses_a_line(
    setup: tuple[Path, Path, Path], shards_dir: Path, chunk_bytes: int, final_newline: bool
) -> None:
    """Chunks are byte ranges; each worker takes the lines that begin in its range, whatever the cut."""
    root, corpus, tok = setup
    variant = root / f"corpus_{chunk_bytes}_{final_newline}.jsonl"
    data = corpus.read_bytes()
    variant.write_bytes(data if final_newline else data.rstrip(b"\n"))
    out = root / f"chunked_{chunk_bytes}_{final_newline}"
    pretokenize(TokenizeConfig(val_fraction=0.2, workers=1, chunk_bytes=chunk_bytes), variant, tok, out, 7)
    for name in ("train.bin", "val.bin", "train.idx.npy", "val.idx.npy"):
        assert (out / name).read_bytes() == (shards_dir / name).read_bytes()


@pytest.mark.parametrize("val_fraction", [1e-9, 1 - 1e-9])
def test_documents_moved_between_splits_keep_their_tokens(
    setup: tuple[Path, Path, Path], val_fraction: float
) -> None:
    """With (almost) no val, or no train, each language's extreme document changes split after encoding;
    its part is then regrouped document by document, and every document still decodes to its text."""
    root, corpus, tok = setup
    out = root / f"moved_{val_fraction}"
    pretokenize(TokenizeConfig(val_fraction=val_fraction, workers=1, chunk_bytes=1500), corpus, tok, out, 7)
    shards, tokenizer = Shards(out), load_tokenizer(tok, text_only=True)
    small = "val" if val_fraction < 0.5 else "train"
    assert shards.meta["splits"][small]["docs"] == len(TEXTS)
    texts = {json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()}
    for split in ("train", "val"):
        tokens = shards.tokens(split)
        for row in shards.index(split):
            assert (
                tokenizer.decode(tokens[row["start"] + 1 : row["start"] + row["length"] - 1].tolist())
                in texts
            )


def test_spawned_workers_give_the_same_shards(
    setup: tuple[Path, Path, Path], shards_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off Linux the workers are spawned and get the tokenizer pickled; "<s>" in a text must stay text."""
    monkeypatch.setattr(shards_module.sys, "platform", "darwin")
    spawned = _run(setup, "spawned", workers=2)
    for name in ("train.bin", "val.bin", "train.idx.npy", "val.idx.npy", "meta.json"):
        assert (spawned / name).read_bytes() == (shards_dir / name).read_bytes()


def test_nfc_pass_is_skipped_only_where_it_changes_nothing(setup: tuple[Path, Path, Path]) -> None:
    """The encoder skips a tokenizer's NFC pass (GECKO's has none; Qwen's, for one, does) on text already in
    NFC; decomposed text (NFD Hangul) still goes through it, so every id is the tokenizer's own."""
    import unicodedata

    from tokenizers import normalizers

    tokenizer = load_tokenizer(setup[2], text_only=True)
    assert tokenizer.normalizer is None and shards_module.Encoder(tokenizer, (1, 2)).without_nfc is None
    tokenizer.normalizer = normalizers.NFC()
    encoder = shards_module.Encoder(tokenizer, (1, 2))
    texts = [t for texts in TEXTS.values() for t in texts]
    mixed = texts + [unicodedata.normalize("NFD", t) for t in texts]
    assert encoder.without_nfc is not None
    assert [e.ids for e in encoder.without_nfc.encode_batch(mixed[-6:])] != [
        e.ids for e in tokenizer.encode_batch(mixed[-6:])
    ]  # NFD Hangul: the pass matters there
    assert encoder.ids(mixed) == [e.ids for e in tokenizer.encode_batch(mixed, add_special_tokens=False)]
    assert encoder.ids(texts) == [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_a_changed_corpus_is_not_resumed(
    setup: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts of an interrupted run are kept only for the same corpus (size and modification time)."""
    root, corpus, tok = setup
    edited = root / "edited.jsonl"
    lines = corpus.read_bytes().splitlines(keepends=True)
    edited.write_bytes(b"".join(lines))
    out, cfg = root / "edited_out", TokenizeConfig(val_fraction=0.2, workers=1, chunk_bytes=1500)

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(shards_module, "_publish", killed)
        with pytest.raises(KeyboardInterrupt):
            pretokenize(cfg, edited, tok, out, 7)
    edited.write_bytes(b"".join(reversed(lines)))  # same size, other content
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # as an edit a second later
    pretokenize(cfg, edited, tok, out, 7)
    fresh = root / "edited_fresh"
    pretokenize(cfg, edited, tok, fresh, 7)
    for name in ("train.bin", "val.bin", "train.idx.npy", "val.idx.npy", "meta.json"):
        assert (out / name).read_bytes() == (fresh / name).read_bytes()
