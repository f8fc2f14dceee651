"""Tokenizer training: exact round trip, no unknown ids, digits split, stable special ids, HF compatible."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from gecko.config import TokenizerConfig
from gecko.errors import ConfigError, DataError
from gecko.tokenizer.train import balanced_budgets, train_tokenizer
from gecko.tokens import BOS, EOS, N_SPECIAL, PII, SPECIAL_TOKENS, UNK, load_tokenizer

KO = [
    "대한민국의 수도는 서울이다. 서울의 인구는 약 940만 명이며, 한강이 도시를 가로지른다.",
    "훈민정음(訓民正音)은 1443년 세종대왕이 창제한 문자로, 백성을 가르치는 바른 소리라는 뜻이다.",
    "오늘 날씨가 정말 좋네요! 공원에 산책하러 갈까요? ㅋㅋㅋ 진짜 재밌었어요 ㅎㅎ",
]
EN = [
    "The quick brown fox jumps over the lazy dog. It's 2024 and we're training tokenizers.",
    "Python's standard library provides modules for file I/O, networking, and data formats.",
]
CODE = [
    'def add(a: int, b: int) -> int:\n    """Return the sum."""\n    return a + b\n',
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n\t\tself.y = y  # tabs\n",
]

SAMPLES = [
    "대한민국 헌법 제1조 ① 대한민국은 민주공화국이다.",
    "    if x:\n        return {'a': [1, 2, 3]}\n\n\n\t\tpass  \n",
    "emoji 🦎🇰🇷👩‍👩‍👧 and rare Hanja 龘 𠜎 鬱",
    "loose jamo ㄱㄴㄷ ㅏㅑ and conjoining \u1100\u1161\u11a8 stays",
    "  leading and trailing spaces  ",
    "<s> literal </s> <|user|> tags in text",
    "<0x41> looks like a byte token",
    "mixed 한국어 English 코드 x = 12345 + 0.5e-3",
    "\r\n windows line \r\n end",
    "",
]


def _corpus(path: Path, repeat: int = 30) -> Path:
    rng = random.Random(0)
    docs = [("ko", t) for t in KO] + [("en", t) for t in EN] + [("code", t) for t in CODE]
    records = []
    for i in range(repeat):
        for j, (lang, text) in enumerate(docs):
            words = text.split(" ")
            rng.shuffle(words)
            text = " ".join(words) + f" {i}"
            records.append({"id": f"s/{i}-{j}", "text": text, "lang": lang, "source": lang})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tok")
    train_tokenizer(TokenizerConfig(vocab_size=600), _corpus(root / "corpus.jsonl"), root / "out")
    return root / "out"


@pytest.fixture(scope="module")
def tok(trained: Path) -> Tokenizer:
    return load_tokenizer(trained, text_only=True)


def _round_trip(tok: Tokenizer, text: str) -> list[int]:
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids, skip_special_tokens=False) == text
    assert tok.token_to_id(UNK) not in ids
    return ids


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_is_exact(tok: Tokenizer, text: str, form: str) -> None:
    _round_trip(tok, unicodedata.normalize(form, text))  # no normalizer: NFD stays NFD


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(tok: Tokenizer, text: str) -> None:
    _round_trip(tok, text)


def test_round_trip_random_bytes(tok: Tokenizer) -> None:
    rng = random.Random(1)
    for _ in range(50):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        _round_trip(tok, raw.decode("utf-8", errors="replace"))


def test_unseen_characters_fall_back_to_bytes(tok: Tokenizer) -> None:
    ids = _round_trip(tok, "𠜎")  # U+2070E: 4 UTF-8 bytes, not in the training text
    assert ids == [N_SPECIAL + b for b in "𠜎".encode()]  # the byte tokens sit right after the special block


def test_digits_are_split(tok: Tokenizer) -> None:
    ids = _round_trip(tok, "12345")
    assert [tok.id_to_token(i) for i in ids] == list("12345")


def test_special_and_byte_ids_are_fixed(tok: Tokenizer, trained: Path) -> None:
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(token) == i
    assert tok.token_to_id(BOS) == 1 and tok.token_to_id(EOS) == 2
    assert tok.decode([N_SPECIAL + ord("A")]) == "A" and tok.decode([N_SPECIAL + ord(" ")]) == " "
    assert tok.get_vocab_size() <= 600
    assert len(set(SPECIAL_TOKENS)) == len(SPECIAL_TOKENS) and set(PII) <= set(SPECIAL_TOKENS)
    meta = json.loads((trained / "train_meta.json").read_text())
    assert set(meta["bytes_used"]) == {"ko", "en", "code"} and len(meta["corpus_sha256"]) == 64


def test_special_strings_are_text_only_when_asked(tok: Tokenizer, trained: Path) -> None:
    chat = load_tokenizer(trained)
    assert chat.encode("<|user|>", add_special_tokens=False).ids == [SPECIAL_TOKENS.index("<|user|>")]
    assert len(tok.encode("<|user|>", add_special_tokens=False).ids) > 1
    assert chat.encode("hi").ids[0] == 1  # <s> is prepended like LLaMA


def test_transformers_gives_identical_ids(trained: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(trained / "tokenizer.json"))
    ours = load_tokenizer(trained)
    for text in SAMPLES:
        assert hf(text)["input_ids"] == ours.encode(text).ids
        plain = ours.encode(text, add_special_tokens=False).ids
        assert hf(text, add_special_tokens=False)["input_ids"] == plain


def test_each_token_holds_at_most_one_digit(tok: Tokenizer) -> None:
    ids = _round_trip(tok, "x = 2024 + 17 년 3.14")
    assert all(sum(c.isdigit() for c in tok.id_to_token(i)) <= 1 for i in ids)


def test_pre_tokenizer_is_qwen2s(tok: Tokenizer) -> None:
    """Exactly Qwen2's split (llama.cpp's `qwen2`): digits alone, a line break after punctuation kept with it."""
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str("if x):\n        return 1\n    y")]
    assert pieces == ["if", "Ġx", "):Ċ", "ĠĠĠĠĠĠĠ", "Ġreturn", "Ġ", "1", "Ċ", "ĠĠĠ", "Ġy"]
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str("정말 좋아요... 12개")]
    assert [tok.decoder.decode([p]) for p in pieces] == ["정말", " 좋아요", "...", " ", "1", "2", "개"]


def test_balanced_budgets_share_leftovers() -> None:
    assert balanced_budgets({"ko": 100, "en": 10, "code": 100}, 90) == {"en": 10, "ko": 40, "code": 40}
    assert balanced_budgets({"ko": 5, "en": 7}, None) == {"ko": 5, "en": 7}
    shares = {"ko": 0.45, "en": 0.2, "code": 0.35}
    assert balanced_budgets({"ko": 100, "en": 100, "code": 100}, 100, shares) == {
        "ko": 45,
        "en": 20,
        "code": 35,
    }
    assert balanced_budgets({"ko": 100, "en": 10, "code": 100}, 100, shares) == {
        "ko": 51,
        "en": 10,
        "code": 39,
    }


def test_lang_shares_must_cover_every_language(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lang_shares.*'code'"):
        train_tokenizer(
            TokenizerConfig(vocab_size=512, max_train_bytes=900, lang_shares={"ko": 0.5, "en": 0.5}),
            _corpus(tmp_path / "c.jsonl", repeat=2),
            tmp_path / "t",
        )


def test_max_train_bytes_is_respected(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c.jsonl", repeat=10)
    train_tokenizer(TokenizerConfig(vocab_size=512, max_train_bytes=3000), corpus, tmp_path / "t")
    used = json.loads((tmp_path / "t" / "train_meta.json").read_text())["bytes_used"]
    assert all(997 <= n <= 1000 for n in used.values())  # cut at a character boundary (≤ 3 bytes short)


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x", "lang": "ko", "source": "s"}\n{"oops": 1}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        train_tokenizer(TokenizerConfig(vocab_size=512), bad, tmp_path / "t")
