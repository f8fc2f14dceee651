"""Helpers shared by several test modules (test modules never import each other): tiny models and
tokenizers, planted contamination and duplicates, a config over the `raw_sources` fixture."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import zstandard
from tokenizers import Tokenizer

from conftest import CODE, EN, KO, REPO, read_shards
from gecko.config import (
    BenchmarkConfig,
    CleanConfig,
    DataConfig,
    EnQualityConfig,
    SourceConfig,
    TokenizerConfig,
)
from gecko.data.io.formats import Quarantine
from gecko.data.io.readers import iter_records
from gecko.data.steps.dedup.planted import write_shards
from gecko.model.llama import Llama, LlamaConfig
from gecko.tokenizer.train import train_tokenizer

# decontamination: one KMMLU and one GSM8K item, and documents that leak them
KO_ITEM = (
    "수정 전 잔액시산표의 차변 합계액은 백만 원이다 보험료 미경과액과 이자수익 미수액을 계상한 후의 "
    "수정 후 잔액시산표 차변 합계액은 얼마인가"
)
EN_ITEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
FILLER = "The weather was pleasant and the committee met to discuss the annual budget for the library. " * 5


def decontam_benchmarks(root: Path) -> tuple[BenchmarkConfig, ...]:
    root.mkdir(parents=True)
    with (root / "Accounting-test.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer", "A", "B", "C", "D", "Category", "Human Accuracy"])
        w.writerow([KO_ITEM, 3, "970,000", "990,000", "1,020,000", "1,050,000", "Accounting", 0.5])
        w.writerow(["짧은 문제", 1, "가", "나", "다", "라", "Accounting", 0.5])  # too short to check
    (root / "gsm.jsonl").write_text(
        json.dumps({"question": EN_ITEM, "answer": "72"}) + "\n", encoding="utf-8"
    )
    return (
        BenchmarkConfig("kmmlu", str(root), "kmmlu"),
        BenchmarkConfig("gsm8k", str(root / "gsm.jsonl"), "gsm8k"),
    )


def contaminated_docs() -> list[dict]:
    # The Korean copy uses other particles (잔액시산표가, 합계액이): a Korean-aware unit still matches.
    ko_copy = (
        "기출 문제 풀이: "
        + KO_ITEM.replace("잔액시산표의", "잔액시산표가").replace("합계액은", "합계액이")
        + " 답은 3번."
    )
    return [
        {"id": "clean_en", "text": FILLER, "lang": "en", "source": "s"},
        {
            "id": "clean_ko",
            "text": "오늘은 날씨가 맑고 도서관 운영 위원회가 연간 예산을 논의했다. " * 5,
            "lang": "ko",
            "source": "s",
        },
        {"id": "leak_en", "text": FILLER + EN_ITEM.lower() + " " + FILLER, "lang": "en", "source": "s"},
        {"id": "leak_ko", "text": ko_copy, "lang": "ko", "source": "s"},
    ]


def shard_ids(out: Path) -> set[str]:
    return {r["id"] for r in read_shards(out)}


# dedup: random-word English documents with planted exact and near copies
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
]


def random_words(rng: random.Random, n: int = 120) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n))


def dedup_corpus() -> list[dict]:
    rng = random.Random(0)
    docs = [{"id": f"en{i:02d}", "text": random_words(rng), "lang": "en", "source": "s"} for i in range(30)]
    ko = (
        "대한민국은 동아시아의 한반도에 위치한 민주공화국이다. "
        "수도는 서울특별시이며 인구는 약 오천만 명이다. "
    ) * 4
    docs += [
        {"id": "exact", "text": docs[0]["text"].upper() + "\n\n", "lang": "en", "source": "s"},
        {
            "id": "near",
            "text": docs[1]["text"].replace(docs[1]["text"].split()[60], "X", 1),
            "lang": "en",
            "source": "s",
        },
        {"id": "ko_a", "text": ko, "lang": "ko", "source": "k"},
        {
            "id": "ko_b",
            "text": ko.replace("서울특별시", "서울 특별시", 1) + "끝.",
            "lang": "ko",
            "source": "k",
        },
    ]
    return docs


def shard_texts(out: Path) -> list[tuple[str, str]]:
    return sorted((r["id"], r["text"]) for r in read_shards(out))


def write_docs(docs: list[dict], folder: Path, shards: int = 3) -> Path:
    write_shards(docs, folder, shards)
    return folder


# the data stage over the `raw_sources` fixture
SHORT_EN = CleanConfig(en=EnQualityConfig(min_words=5))
"""The fixture's English lines are single sentences; Gopher's word-count rule is for web pages."""


def raw_sources_config(root, **kw) -> DataConfig:
    return DataConfig(
        sources=(
            SourceConfig("ko", str(root / "ko.jsonl"), "ko"),
            SourceConfig("en", str(root / "en.tsv"), "en", format="tsv"),
            SourceConfig("code", str(root / "code"), "code", format="code"),
        ),
        clean=SHORT_EN,
        **kw,
    )


# models and tokenizers
def make_model(vocab_size: int, max_seq_len: int = 128, init_std: float = 0.1) -> Llama:
    torch.manual_seed(0)
    model = Llama(
        LlamaConfig(
            vocab_size=vocab_size,
            dim=32,
            n_layers=2,
            n_heads=4,
            n_kv_heads=2,
            ffn_dim=64,
            max_seq_len=max_seq_len,
            init_std=init_std,
        )
    )
    model.init_weights()
    return model.eval()


def make_tokenizer(folder: Path, extra: Sequence[str] = ()) -> Path:
    """A real GECKO tokenizer (NFC, digit split, byte fallback, <s> prepended), trained in a blink."""
    texts = [*KO, *EN, "정답：A B C D", "Answer: A B C D", *extra] * 5
    corpus = folder / "corpus.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    rows = ({"id": str(i), "text": t, "lang": "ko", "source": "t"} for i, t in enumerate(texts))
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    train_tokenizer(TokenizerConfig(vocab_size=3000, min_frequency=1), corpus, folder / "tok")
    return folder / "tok"


def seeded_llama(**changes) -> Llama:
    # init_std larger than usual so that greedy choices are not near-ties
    cfg = LlamaConfig(
        vocab_size=320, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=160, max_seq_len=64, init_std=0.1
    )
    torch.manual_seed(0)
    return Llama(dataclasses.replace(cfg, **changes)).eval()


def hf_model(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def prompt(tokenizer_dir: Path) -> list[int]:
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    return [tok.token_to_id("<s>"), *tok.encode("The capital of Korea").ids]


def tiny_gecko_tokenizer(root: Path) -> Path:
    """A GECKO tokenizer (600 tokens) trained on conftest's KO/EN/CODE lines, 20 times each; its folder."""
    records = [
        {"id": f"{lang}{i}-{r}", "text": text, "lang": lang, "source": lang}
        for r in range(20)
        for lang, texts in (("ko", KO), ("en", EN), ("code", CODE))
        for i, text in enumerate(texts)
    ]
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tok_dir = root / "run" / "tokenizer"
    train_tokenizer(TokenizerConfig(vocab_size=600), corpus, tok_dir)
    return tok_dir


def held_out_sources(root: Path, ko_suffix: str) -> tuple[SourceConfig, ...]:
    """conftest's lines as held-out ko (JSONL, each line + ko_suffix), en (text) and code (a tree) sources."""
    held = root / "held"
    (held / "code").mkdir(parents=True)
    (held / "ko.jsonl").write_text(
        "".join(json.dumps({"text": t + ko_suffix}, ensure_ascii=False) + "\n" for t in KO), encoding="utf-8"
    )
    (held / "en.txt").write_text("\n\n".join(EN), encoding="utf-8")
    (held / "code" / "m.py").write_text(CODE[0] * 3, encoding="utf-8")
    return (
        SourceConfig("ko_held", str(held / "ko.jsonl"), "ko"),
        SourceConfig("en_held", str(held), "en", format="text"),
        SourceConfig("code_held", str(held / "code"), "code", format="code"),
    )


# readers
def read_records(src: SourceConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(where, text) of decoded records and (where, reason) of quarantined ones."""
    docs, dropped = [], []
    for where, decode in iter_records(src, 1 << 20):
        try:
            docs.append((where, decode()[1]))
        except Quarantine as q:
            dropped.append((where, q.reason))
    return docs, dropped


def scaleout_config(root: Path, repo: Path) -> Path:
    """`root/scaleout.yaml`: the whole data stage on a slice of the bundled samples (Korean wiki and reviews,
    English docs, the stdlib tarball, tatoeba pairs) plus planted work for every phase (a re-spaced copy of a
    wiki article, two documents leaking benchmark items), 2 workers. Source paths and `run_dir: run` are
    relative: executors on other nodes must still find them (they run in the driver's folder)."""
    sample = repo / "data" / "sample"
    (root / "data").mkdir(parents=True)
    for name in ("ko/kowiki.jsonl", "ko/nsmc.tsv", "en/python_docs.jsonl", "code/python.tar.gz"):
        (root / "data" / Path(name).name).symlink_to(sample / name)
    first = json.loads((sample / "ko" / "kowiki.jsonl").open(encoding="utf-8").readline())
    planted = [{"id": "respaced", "text": first["text"].replace(" ", ""), "lang": "ko"}, *contaminated_docs()]
    (root / "data" / "planted.jsonl").write_text(
        "".join(
            json.dumps({k: d[k] for k in ("id", "text", "lang")}, ensure_ascii=False) + "\n" for d in planted
        ),
        encoding="utf-8",
    )
    kmmlu, gsm8k = decontam_benchmarks(root / "bench")
    (root / "scaleout.yaml").write_text(
        f"""run_dir: run
data:
  workers: 2
  sources:
    - {{name: kowiki, path: data/kowiki.jsonl, lang: ko, max_docs: 120}}
    - {{name: nsmc, path: data/nsmc.tsv, lang: ko, format: tsv, text_field: review, max_docs: 300}}
    - {{name: planted, path: data/planted.jsonl, lang: ko}}
    - {{name: python_docs, path: data/python_docs.jsonl, lang: en, max_docs: 120}}
    - {{name: stdlib, path: data/python.tar.gz, lang: code, format: code, max_docs: 120}}
  decontam:
    benchmarks:
      - {{name: kmmlu, path: {kmmlu.path}, format: kmmlu}}
      - {{name: gsm8k, path: {gsm8k.path}, format: gsm8k}}
  align:
    sources:
      - {{name: tatoeba, path: {sample / "parallel" / "tatoeba_ko_en.tsv"}}}
""",
        encoding="utf-8",
    )
    return root / "scaleout.yaml"


SCALEOUT_OUTPUTS = (
    "corpus.jsonl",
    "stats.json",
    "dropped",
    "quarantine",
    "dedup.work/removed",
    "dedup.work/duplicates.jsonl",
    "decontam.work/removed",
    "decontam.work/matches.jsonl",
)
"""What two executors must write byte for byte alike under RUN/data: the corpus, the accounting and every
drop list with its reasons (zstd shards compared decompressed: the frames may differ, the records must not)."""


def scaleout_outputs(data_dir: Path) -> dict[str, bytes]:
    """Relative path → content of every file of SCALEOUT_OUTPUTS under `data_dir`."""
    out = {}
    for name in SCALEOUT_OUTPUTS:
        top = data_dir / name
        for f in sorted([top] if top.is_file() else top.rglob("*")):
            if f.is_file():
                raw = f.read_bytes()
                out[str(f.relative_to(data_dir))] = (
                    zstandard.ZstdDecompressor().stream_reader(raw).read() if f.suffix == ".zst" else raw
                )
    return out


def gecko_cli(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    """Run `python -m gecko.cli ARGS` in `cwd` as its own process (as a user would); its stderr on success,
    an assertion naming the exit code and the output's tail otherwise."""
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), full.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "gecko.cli", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"gecko {' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}"
    return done.stderr
