"""`gecko tokenizer report`: the card's measures agree with the tokenizers they describe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gecko.config import CompareConfig, SourceConfig, TokenizerConfig
from gecko.errors import DataError
from gecko.tokenizer.compare import HFEncoder, load_encoder, read_texts
from gecko.tokenizer.report import CARD_JSON, CARD_MD, CARD_PNG, EDGE_CASES, Tokenization, card_for, report
from gecko.tokenizer.train import train_tokenizer
from gecko.tokens import load_tokenizer

from conftest import CODE, EN, KO


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[SourceConfig, ...]]:
    root = tmp_path_factory.mktemp("report")
    records = [{"id": f"{lang}{i}-{r}", "text": text, "lang": lang, "source": lang}
               for r in range(20) for lang, texts in (("ko", KO), ("en", EN), ("code", CODE))
               for i, text in enumerate(texts)]
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tok_dir = root / "run" / "tokenizer"
    train_tokenizer(TokenizerConfig(vocab_size=600), corpus, tok_dir)
    held = root / "held"
    (held / "code").mkdir(parents=True)
    (held / "ko.jsonl").write_text("".join(json.dumps({"text": t + " 추가 🦎"}, ensure_ascii=False) + "\n" for t in KO),
                                   encoding="utf-8")
    (held / "en.txt").write_text("\n\n".join(EN), encoding="utf-8")
    (held / "code" / "m.py").write_text(CODE[0] * 3, encoding="utf-8")
    sources = (SourceConfig("ko_held", str(held / "ko.jsonl"), "ko"),
               SourceConfig("en_held", str(held), "en", format="text"),
               SourceConfig("code_held", str(held / "code"), "code", format="code"))
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


def test_round_trip_failures_are_reported(setup: tuple[Path, tuple[SourceConfig, ...]], tmp_path: Path) -> None:
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


def test_report_writes_card_with_references(setup: tuple[Path, tuple[SourceConfig, ...]], tmp_path: Path) -> None:
    tok_dir, sources = setup
    refs = tmp_path / "refs" / "copy"
    refs.mkdir(parents=True)
    shutil.copy(tok_dir / "tokenizer.json", refs / "tokenizer.json")
    cards = report(CompareConfig(heldout=sources, references=str(refs.parent), max_bytes_per_lang=10_000), tok_dir,
                   tmp_path / "out")
    assert [c.name for c in cards] == ["gecko", "copy/tokenizer.json"]
    md = (tmp_path / "out" / CARD_MD).read_text()
    assert "ko tokens/eojeol" in md and "| gecko | 600 |" in md and "edge cases failed" in md
    assert len(json.loads((tmp_path / "out" / CARD_JSON).read_text())) == 2
    assert (tmp_path / "out" / CARD_PNG).read_bytes()[:4] == b"\x89PNG"


def test_report_without_tokenizer_names_the_file(setup: tuple[Path, tuple[SourceConfig, ...]], tmp_path: Path) -> None:
    _, sources = setup
    with pytest.raises(DataError, match="tokenizer.json: tokenizer not found"):
        report(CompareConfig(heldout=sources, references=None), tmp_path, tmp_path / "out")
