"""The `sentencepiece` tokenizer kind: GECKO's id layout, exact round trip (but for U+2581), the same ids in
SentencePiece, `tokenizers` and transformers, continuations decoded with their leading space, config errors."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import pytest
from tests.helpers import make_model

from gecko.cli import main
from gecko.config import TokenizerConfig
from gecko.errors import ConfigError
from gecko.model.hf import export_hf
from gecko.tokenizer.sentencepiece import MODEL_FILE
from gecko.tokenizer.train import train_tokenizer
from gecko.tokens import BYTE_TOKENS, FIRST_BYTE_ID, SPECIAL_TOKENS, for_continuations, load_tokenizer

spm = pytest.importorskip("sentencepiece", reason="pip install 'gecko-llm[spm]'")
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
EDGE = {
    "nfc": "한국어 토크나이저는 띄어쓰기를 지킵니다. 됐어요ㅋㅋ ㅠㅠ",
    "nfd": unicodedata.normalize("NFD", "한국어 토크나이저는 띄어쓰기를 지킵니다."),
    "emoji": "좋아요 👍🏽 가족 👨‍👩‍👧 국기 🇰🇷 🦎",
    "crlf": "first line\r\nsecond line\r\n\r\n셋째 줄\r\n",
    "tabs": "def f(x):\n\tif x:\n\t\treturn x\t# tab\n",
    "space_runs": "a  b   c    d     e\n        x = 1\n                y = 2   \n",
    "edge_spaces": "  leading and trailing spaces  ",
    "only_spaces": "   ",
    "digits": "3.14159, 2,024년 ₩1,000,000 0x1F 10e-3",
    "literal_specials": "<s> literal </s> <|user|> and <0x41> in text",
    "rare": "漢字 龘 𠜎 ｶﾀｶﾅ \u200b \u00a0 e\u0301",
    "empty": "",
}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,000-piece model trained by `train_tokenizer` on Korean and English sample documents."""
    root = tmp_path_factory.mktemp("spm")
    records = [
        {"id": f"{name}/{i}", "text": json.loads(row)["text"], "lang": lang, "source": name}
        for lang, name in (
            ("ko", "ko/kowiki.jsonl"),
            ("ko", "ko/novels.jsonl"),
            ("en", "en/python_docs.jsonl"),
        )
        for i, row in enumerate((SAMPLE / name).read_text(encoding="utf-8").splitlines())
    ]
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    cfg = TokenizerConfig(
        kind="sentencepiece", vocab_size=1000, character_coverage=0.98, max_train_bytes=600_000
    )
    return train_tokenizer(cfg, corpus, root / "tok").parent


def test_ids_are_gecko_layout_in_model_and_json(tok_dir: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tok_dir / MODEL_FILE))
    tok = load_tokenizer(tok_dir)  # checks the special ids itself
    layout = [*SPECIAL_TOKENS, *BYTE_TOKENS]
    assert [sp.id_to_piece(i) for i in range(len(layout))] == layout
    assert [tok.id_to_token(i) for i in range(len(layout))] == layout
    assert FIRST_BYTE_ID == 32 and tok.get_vocab_size() == sp.get_piece_size() == 1000
    meta = json.loads((tok_dir / "train_meta.json").read_text(encoding="utf-8"))
    assert meta["config"]["kind"] == "sentencepiece" and meta["model_sha256"]


def test_round_trip_and_same_ids_as_sentencepiece(tok_dir: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tok_dir / MODEL_FILE))
    tok = load_tokenizer(tok_dir, text_only=True)  # `<s>` in text as characters, as SentencePiece reads it
    texts = list(EDGE.values())
    ids = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    assert ids == sp.encode(texts)
    failed = [name for name, text, i in zip(EDGE, texts, ids, strict=True) if tok.decode(i) != text]
    assert failed == []
    assert tok.encode("x").ids[0] == 1  # <s> first, as the byte-level kind
    # the documented exception: SentencePiece's space mark in the input comes back as a space
    assert tok.decode(tok.encode("a\u2581b", add_special_tokens=False).ids) == "a b"


def test_continuations_keep_their_leading_space(tok_dir: Path) -> None:
    tok = load_tokenizer(tok_dir)
    cont = for_continuations(tok)
    text = "The module defines the following functions and classes."
    ids = tok.encode(text, add_special_tokens=False).ids
    splits = range(1, len(ids))
    assert any(tok.decode(ids[:k]) + tok.decode(ids[k:]) != text for k in splits)  # plain decode drops spaces
    assert all(tok.decode(ids[:k]) + cont.decode(ids[k:]) == text for k in splits)
    assert cont.decode(ids) == " " + text  # SentencePiece's dummy prefix, kept


def test_transformers_loads_the_export_with_identical_ids(tok_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    hf = export_hf(make_model(1000), tok_dir, tmp_path / "hf")
    assert (hf / MODEL_FILE).read_bytes() == (tok_dir / MODEL_FILE).read_bytes()
    theirs = AutoTokenizer.from_pretrained(hf)
    tok = load_tokenizer(tok_dir)
    for text in EDGE.values():
        assert (
            theirs(text, add_special_tokens=False)["input_ids"]
            == tok.encode(text, add_special_tokens=False).ids
        )
        assert theirs(text)["input_ids"] == tok.encode(text).ids  # <s> prepended by both


def test_byte_bpe_retrain_removes_a_stale_model(tok_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    out.mkdir()
    (out / MODEL_FILE).write_bytes((tok_dir / MODEL_FILE).read_bytes())
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        json.dumps({"id": "a", "text": "hello world " * 50, "lang": "en", "source": "s"}) + "\n"
    )
    train_tokenizer(TokenizerConfig(vocab_size=512), corpus, out)
    assert not (out / MODEL_FILE).exists()


def test_unknown_kind_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tokenizer:\n  kind: wordpiece\n", encoding="utf-8")
    assert main(["tokenizer", "train", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert err.strip().endswith(
        "c.yaml:2: tokenizer.kind='wordpiece' must be one of 'byte_bpe', 'sentencepiece'"
    )


def test_missing_sentencepiece_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"needs sentencepiece: pip install '.*\[spm\]'"):
        train_tokenizer(TokenizerConfig(kind="sentencepiece"), tmp_path / "absent.jsonl", tmp_path / "t")


def test_report_card_counts_u2581_documents(tok_dir: Path) -> None:
    """The card's round trip lists the documents a `▁` breaks, and every named edge case comes back."""
    from gecko.tokenizer.compare import ours
    from gecko.tokenizer.report import Tokenization, card_for

    docs = ["spinner ▁▃▅▇ frames", "plain text", "SPIECE_UNDERLINE = '▁'"]
    card = card_for(Tokenization(ours(tok_dir)), {"en": docs}, {"en/x": docs})
    assert card.roundtrip_docs == {"en": "1/3"} and card.roundtrip_inexact_with_u2581 == {"en": 2}
    assert card.roundtrip_edge_failures == [] and card.digits_split
