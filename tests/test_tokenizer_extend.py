"""Vocabulary extension: original ids kept, new ids appended, exact round trip, Korean gains, English kept.

Bases are trained here with Hugging Face `tokenizers`' own byte-level and SentencePiece-style trainers on
English text only (the bundled sample), so they spell Korean badly as real English-first tokenizers do; the
Korean merges come from a different source (wiki + novels) than the Korean text they are scored on (statutes
and news), and LLaMA-2's real SentencePiece model is used where ../shared/data has it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.implementations import ByteLevelBPETokenizer, SentencePieceBPETokenizer

from gecko.cli import main
from gecko.errors import DataError
from gecko.tokenizer.extend import Extension, efficiency, extend, load_base
from gecko.tokens import EXTENSION_FILE, load_new_tokens

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
LLAMA2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers" / "llama2" / "tokenizer.model"
ODD = [
    "emoji 🦎🇰🇷 and Hanja 龘 𠜎",
    "  spaces  and\ttabs\r\n",
    "<0x41> and <unk> look special",
    "",
    "ㅋㅋㅋ ㅠㅠ 됬어요",
    "mixed 한국어 English 코드 x = 12345",
]


def _texts(name: str, limit: int) -> list[str]:
    lines = (SAMPLE / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:limit]]


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    with tarfile.open(SAMPLE / "code" / "python.tar.gz") as tar:  # the top-level modules, in path order
        code = [tar.extractfile(m).read().decode("utf-8") for m in tar if m.isfile() and "/" not in m.name]
    return {
        "ko_train": _texts("ko/kowiki.jsonl", 60) + _texts("ko/novels.jsonl", 20),
        "ko": _texts("ko/statutes.jsonl", 15) + _texts("ko/wikinews.jsonl", 15),
        "en_train": _texts("en/python_docs.jsonl", 200),
        "en": _texts("en/debian_docs.jsonl", 25),
        "code": code[:3],
    }


def _spec(tokenizer: Tokenizer) -> dict:
    return json.loads(tokenizer.to_str())


@pytest.fixture(scope="module")
def byte_level(texts: dict[str, list[str]]) -> dict:
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        texts["en_train"], vocab_size=1500, min_frequency=2, special_tokens=["<|endoftext|>", "<|im_start|>"]
    )
    return _spec(tok._tokenizer)


@pytest.fixture(scope="module")
def sentencepiece_style(texts: dict[str, list[str]]) -> dict:
    tok = SentencePieceBPETokenizer(unk_token="<unk>")
    tok.train_from_iterator(
        texts["en_train"], vocab_size=1200, min_frequency=2, special_tokens=["<unk>", "<s>"]
    )
    spec = _spec(tok._tokenizer)
    # byte fallback as LLaMA-2 has it: the 256 <0xXX> tokens after the specials, every later id shifted
    vocab = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    order = [vocab[0][0], vocab[1][0], *(f"<0x{b:02X}>" for b in range(256)), *(t for t, _ in vocab[2:])]
    spec["model"].update(vocab={t: i for i, t in enumerate(order)}, byte_fallback=True)
    for added in spec["added_tokens"]:
        added["id"] = order.index(added["content"])
    spec["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    return spec


@pytest.fixture(scope="module")
def byte_level_ext(byte_level: dict, texts: dict[str, list[str]]) -> Extension:
    return extend(byte_level, texts["ko_train"], 400)


@pytest.fixture(scope="module")
def sentencepiece_ext(sentencepiece_style: dict, texts: dict[str, list[str]]) -> Extension:
    return extend(sentencepiece_style, texts["ko_train"], 400)


def _check_extension(
    spec: dict, ext: Extension, texts: dict[str, list[str]], add: int, ko_gain: float
) -> None:
    base = Tokenizer.from_str(json.dumps(spec))
    new = ext.tokenizer
    # every original id unchanged; new ids contiguous after the base
    assert all(new.token_to_id(t) == i for t, i in base.get_vocab(with_added_tokens=True).items())
    assert [t.id for t in ext.new_tokens] == list(
        range(ext.base_vocab_size, ext.base_vocab_size + len(ext.new_tokens))
    )
    assert new.get_vocab_size() == ext.vocab_size and 0.9 * add <= len(ext.new_tokens) <= add
    # round trip: the extended tokenizer decodes every text exactly as the base does
    for text in [*texts["ko"], *texts["en"], *texts["code"], *ODD]:
        ids = new.encode(text, add_special_tokens=False).ids
        assert new.decode(ids, skip_special_tokens=False) == base.decode(
            base.encode(text, add_special_tokens=False).ids, skip_special_tokens=False
        )
    # pieces: each new token's base ids spell the same text (the embedding initialization averages them)
    for t in ext.new_tokens:
        assert base.decode(t.pieces) == new.decode([t.id]) and all(p < ext.base_vocab_size for p in t.pieces)
    # held-out Korean gains, English and code do not regress (new merges only act after every base merge)
    heldout = {lang: texts[lang] for lang in ("ko", "en", "code")}
    before, after = efficiency(base, heldout), efficiency(new, heldout)
    assert after["ko"]["chars_per_token"] > ko_gain * before["ko"]["chars_per_token"]
    for lang in ("en", "code"):
        assert after[lang]["tokens"] <= before[lang]["tokens"]


def test_byte_level_base(byte_level: dict, byte_level_ext: Extension, texts: dict[str, list[str]]) -> None:
    _check_extension(byte_level, byte_level_ext, texts, 400, ko_gain=1.5)


def test_sentencepiece_style_base(
    sentencepiece_style: dict, sentencepiece_ext: Extension, texts: dict[str, list[str]]
) -> None:
    _check_extension(sentencepiece_style, sentencepiece_ext, texts, 400, ko_gain=1.5)
    # Korean syllables the base spelled in bytes are now single tokens
    assert any(len(t.token) == 1 and "가" <= t.token <= "힣" for t in sentencepiece_ext.new_tokens)


def test_add_zero_is_the_base(byte_level: dict, texts: dict[str, list[str]]) -> None:
    base = Tokenizer.from_str(json.dumps(byte_level))
    ext = extend(byte_level, texts["ko_train"], 0)
    assert ext.new_tokens == [] and ext.vocab_size == base.get_vocab_size()
    for text in texts["ko"][:5] + ODD:
        assert ext.tokenizer.encode(text).ids == base.encode(text).ids


@pytest.mark.slow
def test_more_tokens_more_korean_gain(
    byte_level: dict, byte_level_ext: Extension, texts: dict[str, list[str]]
) -> None:
    small = extend(byte_level, texts["ko_train"], 100)
    assert (
        small.new_tokens == byte_level_ext.new_tokens[: len(small.new_tokens)]
    )  # the same merges, fewer of them
    ko = {"ko": texts["ko"]}
    assert (
        efficiency(byte_level_ext.tokenizer, ko)["ko"]["tokens"]
        < efficiency(small.tokenizer, ko)["ko"]["tokens"]
    )


@pytest.mark.skipif(not LLAMA2.is_file(), reason="../shared/data/tokenizers/llama2 absent")
@pytest.mark.slow
def test_llama2_sentencepiece_model(texts: dict[str, list[str]]) -> None:
    spec = load_base(LLAMA2)  # already holds ~1,700 Hangul syllables, so 300 tokens gain less
    _check_extension(spec, extend(spec, texts["ko_train"], 300), texts, 300, ko_gain=1.2)


def test_bad_base_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not a tokenizers file"):
        load_base(bad)
    with pytest.raises(DataError, match="no tokenizer.json or tokenizer.model"):
        load_base(tmp_path / "..")


def _corpus(path: Path, texts: dict[str, list[str]]) -> Path:
    records = [
        {"id": f"{lang}/{i}", "text": t, "lang": lang, "source": lang}
        for lang, key in (("ko", "ko_train"), ("en", "en"), ("code", "code"))
        for i, t in enumerate(texts[key])
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_cli_extend_writes_tokenizer_record_and_report(
    tmp_path: Path, byte_level: dict, texts: dict[str, list[str]], capsys
) -> None:
    run = tmp_path / "run"
    _corpus(run / "data" / "corpus.jsonl", texts)
    base = tmp_path / "base" / "tokenizer.json"
    base.parent.mkdir()
    base.write_text(json.dumps(byte_level), encoding="utf-8")
    config = tmp_path / "cpt.yaml"
    config.write_text(f"run_dir: {run}\n", encoding="utf-8")
    assert main(["tokenizer", "extend", str(base), str(config), "--add", "200", "--langs", "ko,code"]) == 0
    report = capsys.readouterr().out
    assert "| ko |" in report and "| en |" in report
    base_size, new = load_new_tokens(run / "tokenizer")
    assert base_size == 1500 and 150 <= len(new) <= 200
    record = json.loads((run / "tokenizer" / EXTENSION_FILE).read_text(encoding="utf-8"))
    assert (
        record["chars_per_token"]["after"]["ko"]["chars_per_token"]
        > record["chars_per_token"]["before"]["ko"]["chars_per_token"]
    )
    # an existing tokenizer is never replaced without --force; a bad language is named
    assert main(["tokenizer", "extend", str(base), str(config), "--add", "200"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (
        main(["tokenizer", "extend", str(base), str(config), "--add", "10", "--langs", "kr", "--force"]) == 2
    )
    assert "--langs kr" in capsys.readouterr().err
