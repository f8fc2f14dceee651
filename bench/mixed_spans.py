"""Korean prose with code blocks, judged by span and as one label: language, Korean quality rules, code kept.

    PYTHONPATH=src .venv/bin/python bench/mixed_spans.py [--docs 300]

Each document is two to six real paragraphs of the Korean Python docs (../shared/data/corpus/ko) around one
to three fenced blocks of real standard-library code (the first 20-120 lines of a module), the shape of a
Korean blog post or Q&A answer. "Whole text" applies the language share and the Korean rules to the whole
text and tidies it as prose, as GECKO did before gecko.data.text.spans; "by span" is what the clean phase does now.
"""

from __future__ import annotations

import argparse
import json
import random
import sysconfig
from pathlib import Path

from gecko.config import CleanConfig
from gecko.data.text.charclass import HANGUL, LETTER, class_counts
from gecko.data.steps.quality import ko_check
from gecko.data.steps.langid import SAMPLE_CHARS, hangul_shares
from gecko.data.steps.normalize import _tidy_prose, normalize_text
from gecko.data.text.spans import prose

KO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus" / "ko" / "python_docs_ko"


def documents(n: int, seed: int) -> list[tuple[str, list[str]]]:
    """(text, its code blocks) for `n` mixed documents."""
    rng = random.Random(seed)
    paragraphs = [p for line in (KO / "python_docs_ko.jsonl").open(encoding="utf-8")
                  for p in json.loads(line)["text"].split("\n") if len(p) > 60]
    modules = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out = []
    for _ in range(n):
        parts, blocks = [], []
        for _ in range(rng.randint(1, 3)):
            lines = modules[rng.randrange(len(modules))].read_text(encoding="utf-8").split("\n")
            start = rng.randrange(max(1, len(lines) - 120))
            block = "\n".join(lines[start: start + rng.randint(20, 120)])
            parts += rng.sample(paragraphs, rng.randint(1, 2)) + [f"```python\n{block}\n```"]
            blocks.append(f"```python\n{block}\n```")
        parts += rng.sample(paragraphs, 1)
        out.append(("\n".join(parts) + "\n", blocks))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg, docs = CleanConfig(), documents(args.docs, args.seed)
    rows = {name: {"ko": 0, "passes": 0, "code_intact": 0} for name in ("whole text", "by span")}
    reasons: dict[str, int] = {}
    for text, blocks in docs:
        # _tidy_prose: the prose tidying alone, which the whole text got before spans
        whole, spans = _tidy_prose(text).strip(), normalize_text(text, is_code=False)
        hangul, letters = class_counts([text[:SAMPLE_CHARS]], classes=(HANGUL, LETTER))[0, [HANGUL, LETTER]]
        rows["whole text"]["ko"] += hangul / max(letters, 1) >= cfg.mixed_hangul_ratio
        rows["by span"]["ko"] += hangul_shares([spans])[0] >= cfg.mixed_hangul_ratio
        reason = ko_check(whole, cfg.ko)
        reasons[reason or "kept"] = reasons.get(reason or "kept", 0) + 1
        rows["whole text"]["passes"] += reason is None
        rows["by span"]["passes"] += ko_check(prose(spans), cfg.ko) is None
        rows["whole text"]["code_intact"] += all(b in whole for b in blocks)
        rows["by span"]["code_intact"] += all(b in spans for b in blocks)
    print(f"{len(docs)} documents; whole-text Korean rule outcomes: {reasons}")
    print("| judged on | labelled ko | pass the Korean rules | code blocks byte-exact |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['ko']} | {r['passes']} | {r['code_intact']} |")


if __name__ == "__main__":
    main()
