"""`gecko tokenizer compare`: counts match the tokenizers, both file formats load, errors name the file."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from conftest import CODE, EN, KO, shared_or_skip
from gecko.cli import main
from gecko.config import CompareConfig, SourceConfig
from gecko.data.heldout import read_texts
from gecko.errors import DataError
from gecko.tokenizer.compare import (
    REPORT_JSON,
    REPORT_MD,
    REPORT_PNG,
    compare,
    find_references,
    load_encoder,
)
from gecko.tokens import load_tokenizer
from helpers import held_out_sources, tiny_gecko_tokenizer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, tuple[SourceConfig, ...]]:
    root = tmp_path_factory.mktemp("compare")
    tok_dir = tiny_gecko_tokenizer(root)
    refs = root / "refs"
    for name in ("a", "b"):  # the same file twice: scored once
        (refs / name).mkdir(parents=True)
        shutil.copy(tok_dir / "tokenizer.json", refs / name / "tokenizer.json")
    _train_sentencepiece(refs / "spm" / "toy.model", KO + EN + CODE)
    sources = held_out_sources(root, " 추가")
    return tok_dir, refs, sources


def _train_sentencepiece(path: Path, texts: list[str]) -> None:
    import sentencepiece as spm

    path.parent.mkdir(parents=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts * 5),
        model_writer=model,
        vocab_size=600,
        model_type="bpe",
        byte_fallback=True,
        minloglevel=2,
        character_coverage=0.98,
    )
    path.write_bytes(model.getvalue())


def test_scores_match_the_tokenizers(
    setup: tuple[Path, Path, tuple[SourceConfig, ...]], tmp_path: Path
) -> None:
    import sentencepiece as spm

    tok_dir, refs, sources = setup
    scores = compare(
        CompareConfig(heldout=sources, references=str(refs), max_bytes_per_lang=10_000),
        tok_dir,
        tmp_path,
        read_texts,
    )
    assert sorted({s.tokenizer for s in scores}) == ["a/tokenizer.json", "gecko", "spm/toy.model"]
    texts = read_texts(sources, 10_000)
    ours = load_tokenizer(tok_dir, text_only=True)
    sp = spm.SentencePieceProcessor(model_file=str(refs / "spm" / "toy.model"))
    for s in scores:
        docs = texts[s.lang]
        assert s.chars == sum(len(t) for t in docs) and s.bytes == sum(len(t.encode()) for t in docs)
        if s.tokenizer == "spm/toy.model":
            assert s.tokens == sum(len(ids) for ids in sp.encode(docs))
        else:
            assert s.tokens == sum(len(ours.encode(t, add_special_tokens=False).ids) for t in docs)
    table = (tmp_path / REPORT_MD).read_text()
    assert "| gecko | 600 |" in table and "ko chars/tok" in table
    assert len(json.loads((tmp_path / REPORT_JSON).read_text())) == 9
    assert (tmp_path / REPORT_PNG).read_bytes()[:4] == b"\x89PNG"


def test_heldout_budget_is_split_across_sources(setup: tuple[Path, Path, tuple[SourceConfig, ...]]) -> None:
    _, _, sources = setup
    texts = read_texts(sources, 40)  # 40 bytes: the first Korean document is cut at a character boundary
    assert len(texts["ko"]) == 1 and len(texts["ko"][0].encode()) <= 40 and KO[0].startswith(texts["ko"][0])


def test_errors_name_the_file(setup: tuple[Path, Path, tuple[SourceConfig, ...]], tmp_path: Path) -> None:
    tok_dir, _, sources = setup
    bad = tmp_path / "refs" / "broken"
    bad.mkdir(parents=True)
    (bad / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="broken/tokenizer.json"):
        find_references(tmp_path / "refs")
    with pytest.raises(DataError, match="nowhere"):
        find_references(tmp_path / "nowhere")
    with pytest.raises(DataError, match="tokenizer.json: tokenizer not found"):
        compare(CompareConfig(heldout=sources, references=None), tmp_path, tmp_path / "out", read_texts)
    with pytest.raises(DataError, match="no held-out sources"):
        compare(CompareConfig(references=None), tok_dir, tmp_path / "out", read_texts)


def test_cli_writes_the_report(
    setup: tuple[Path, Path, tuple[SourceConfig, ...]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tok_dir, _, sources = setup
    config = tmp_path / "c.yaml"
    held = [{"name": s.name, "path": s.path, "lang": s.lang, "format": s.format} for s in sources]
    config.write_text(
        json.dumps({"run_dir": str(tok_dir.parent), "compare": {"heldout": held, "references": None}})
    )
    assert main(["tokenizer", "compare", str(config), "--out", str(tmp_path / "rep")]) == 0
    assert "| gecko | 600 |" in capsys.readouterr().out
    assert (tmp_path / "rep" / REPORT_PNG).exists()


def test_reference_formats_load() -> None:
    """Both shared formats load; on Korean, LLaMA-2 spends far more tokens than Polyglot-Ko (the paper's premise)."""
    root = shared_or_skip("tokenizers")
    llama2 = load_encoder(root / "llama2" / "tokenizer.model", "llama2")
    polyglot = load_encoder(root / "polyglot_ko" / "tokenizer.json", "polyglot")
    text = ["대한민국은 동아시아의 한반도에 위치한 민주공화국이다. 수도는 서울특별시이다."]
    assert (llama2.vocab_size, polyglot.vocab_size) == (32000, 30003)
    assert llama2.count_tokens(text) > 1.5 * polyglot.count_tokens(text)
