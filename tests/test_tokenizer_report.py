"""`gecko tokenizer report`: the card's measures agree with the tokenizers they describe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gecko.config import CompareConfig, SourceConfig
from gecko.data.heldout import read_texts
from gecko.errors import DataError
from gecko.tokenizer.compare import HFEncoder, load_encoder
from gecko.tokenizer.report import (
    CARD_JSON,
    CARD_MD,
    CARD_PNG,
    EDGE_CASES,
    Tokenization,
    card_for,
    report,
    vocab_kind,
)
from gecko.tokens import load_tokenizer
from helpers import held_out_sources, tiny_gecko_tokenizer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[SourceConfig, ...]]:
    root = tmp_path_factory.mktemp("report")
    tok_dir = tiny_gecko_tokenizer(root)
    sources = held_out_sources(root, " 추가 🦎")
    return tok_dir, sources


def test_card_measures_match_the_tokenizer(setup: tuple[Path, tuple[SourceConfig, ...]]) -> None:
    tok_dir, sources = setup
    texts = read_texts(sources, 10_000)
    tok = load_tokenizer(tok_dir, text_only=True)
    card = card_for(Tokenization(HFEncoder("gecko", tok)), texts, {"ko/ko_held": texts["ko"]})
    ids = [i for d in texts["ko"] for i in tok.encode(d, add_special_tokens=False).ids]
    assert card.chars_per_token["ko"] == pytest.approx(sum(map(len, texts["ko"])) / len(ids))
    assert card.tokens_per_eojeol == pytest.approx(len(ids) / sum(len(d.split()) for d in texts["ko"]))
    assert card.per_source["ko/ko_held"] == pytest.approx(card.chars_per_token["ko"])
    fragments = sum("\ufffd" in tok.decode([i]) for i in ids)  # the emoji's bytes: no merge in the toy vocab
    assert fragments > 0 and card.byte_fallback_rate["ko"] == pytest.approx(fragments / len(ids))
    used = {i for docs in texts.values() for d in docs for i in tok.encode(d, add_special_tokens=False).ids}
    assert card.unused_vocab_share == pytest.approx(1 - len(used) / tok.get_vocab_size())
    assert card.digits_split  # GECKO splits every digit
    assert len(card.longest_tokens) == 8 and len(card.longest_tokens[0]) >= len(card.longest_tokens[-1])
    pieces = [tok.decode([i], skip_special_tokens=False) for i in range(tok.get_vocab_size())]
    whole = [p for p in pieces if "\ufffd" not in p]  # pieces with a cut character count as fragments
    assert card.vocab_by_kind["hangul"] == sum(any("가" <= ch <= "힣" for ch in p) for p in whole) > 0
    assert sum(card.vocab_by_kind.values()) == sum(map(bool, pieces))


def test_vocab_kinds() -> None:
    kinds = {
        " 서울": "hangul",
        "ㅋㅋ": "hangul",
        " the": "latin_word",
        "def": "latin_word",
        "):\n    ": "ascii_other",
        "42": "ascii_other",
        "漢字": "other_script",
        " é": "other_script",
        "\ufffd": "byte_fragment",
    }
    assert {p: vocab_kind(p) for p in kinds} == kinds


def test_round_trip_failures_are_reported(
    setup: tuple[Path, tuple[SourceConfig, ...]], tmp_path: Path
) -> None:
    """A tokenizer that normalizes (here: NFC) is caught on the NFD edge case."""
    tok_dir, sources = setup
    nfc = tmp_path / "nfc" / "tokenizer.json"
    nfc.parent.mkdir()
    spec = json.loads((tok_dir / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "NFC"}
    nfc.write_text(json.dumps(spec))
    card = card_for(Tokenization(load_encoder(nfc, "nfc")), read_texts(sources, 10_000), {})
    assert "hangul_nfd" in card.roundtrip_edge_failures and "hangul_nfc" not in card.roundtrip_edge_failures
    assert set(card.roundtrip_edge_failures) <= set(EDGE_CASES)


def test_report_writes_card_with_references(
    setup: tuple[Path, tuple[SourceConfig, ...]], tmp_path: Path
) -> None:
    tok_dir, sources = setup
    refs = tmp_path / "refs" / "copy"
    refs.mkdir(parents=True)
    shutil.copy(tok_dir / "tokenizer.json", refs / "tokenizer.json")
    cards = report(
        CompareConfig(heldout=sources, references=str(refs.parent), max_bytes_per_lang=10_000),
        tok_dir,
        tmp_path / "out",
        read_texts,
    )
    assert [c.name for c in cards] == ["gecko", "copy/tokenizer.json"]
    md = (tmp_path / "out" / CARD_MD).read_text()
    assert "ko tokens/eojeol" in md and "| gecko | 600 |" in md and "edge cases failed" in md
    assert len(json.loads((tmp_path / "out" / CARD_JSON).read_text())) == 2
    assert (tmp_path / "out" / CARD_PNG).read_bytes()[:4] == b"\x89PNG"


def test_report_without_tokenizer_names_the_file(
    setup: tuple[Path, tuple[SourceConfig, ...]], tmp_path: Path
) -> None:
    _, sources = setup
    with pytest.raises(DataError, match="tokenizer.json: tokenizer not found"):
        report(CompareConfig(heldout=sources, references=None), tmp_path, tmp_path / "out", read_texts)
