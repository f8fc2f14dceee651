"""Train GECKO's harmful-content classifier and write src/gecko/data/steps/toxicity.npz; evaluate on held-out sets.

Training data (../shared/data/safety, training splits only): kocohub hate train (hate or offensive → 1),
curse_detection (profane → 1; it has no split, 90% here, the last 10% held out), KoSBi valid (unsafe → 1), in
Korean and in its English translation (`sentence_en`: the only English labels in ../shared/data), plus clean
negatives: Korean Wikipedia and English Python-docs lines, so ordinary prose scores low.
Held out: kocohub dev, APEACH test, KoSBi test (Korean and English), the curse_detection tail, and the share
of clean English documents (Debian docs, never trained on) that the filter would drop.

    .venv/bin/python tools/train_toxicity.py [--epochs 6] [--eval-only]

Prints precision / recall / F1 per held-out set and docs/s of gecko.data.steps.toxicity.score.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gecko.data.steps import toxicity

SAFETY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "safety"
CORPUS = SAFETY.parent / "corpus"

Example = tuple[str, int]


def kocohub(split: str) -> list[Example]:
    with (SAFETY / "kocohub_hate" / "labeled" / f"{split}.tsv").open(encoding="utf-8") as f:
        return [(r["comments"], int(r["hate"] != "none")) for r in csv.DictReader(f, delimiter="\t")]


def curse() -> list[Example]:
    rows = []
    for line in (SAFETY / "curse_detection" / "dataset.txt").read_text(encoding="utf-8").splitlines():
        text, sep, label = line.rpartition("|")
        if sep and label.strip() in ("0", "1"):
            rows.append((text, int(label)))
    return rows


def apeach() -> list[Example]:
    with (SAFETY / "apeach" / "APEACH" / "test.csv").open(encoding="utf-8") as f:
        return [(r["text"], int(r["class"] == "Spoiled")) for r in csv.DictReader(f)]


def kosbi(split: str, field: str = "sentence") -> list[Example]:
    """KoSBi sentences (`sentence`, or its English translation `sentence_en`); unsafe → 1."""
    rows = json.loads((SAFETY / "kosbi_square" / "data" / "KoSBi" / f"kosbi_{split}.json").read_text())
    return [(r[field], int(r["sentence_label"] == "unsafe")) for r in rows]


def clean_english_docs(n: int) -> list[str]:
    """Whole documents of the Debian manuals: clean English the filter must keep (not in the training data)."""
    with (CORPUS / "en" / "debian_docs" / "debian_docs_en.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f)]


def clean_negatives(n: int, rng: random.Random) -> list[Example]:
    """Lines of formal Korean and English technical prose: the text the filter must leave alone."""
    out: list[Example] = []
    for path in (CORPUS / "ko" / "kowiki" / "kowiki.jsonl", CORPUS / "en" / "python_docs" / "python311_docs_rst.jsonl"):
        lines: list[str] = []
        with path.open(encoding="utf-8") as f:
            for i, raw in enumerate(f):
                if i >= 3000:
                    break
                lines += [ln for ln in json.loads(raw)["text"].split("\n") if len(ln) > 30]
        out += [(ln[: toxicity.WINDOW], 0) for ln in rng.sample(lines, min(n, len(lines)))]
    return out


def bag(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs with 1/sqrt(n) weights: the same logit as toxicity.score on a single window."""
    ids, offsets, weights = [], [], []
    pos = 0
    for text in texts:
        prepared = toxicity.prepare(text[: toxicity.WINDOW])
        buckets = np.concatenate([b for _, b in toxicity.ngram_buckets(prepared)])
        ids.append(buckets)
        offsets.append(pos)
        weights.append(np.full(len(buckets), 1 / np.sqrt(max(len(buckets), 1)), np.float32))
        pos += len(buckets)
    return (torch.from_numpy(np.concatenate(ids)), torch.tensor(offsets),
            torch.from_numpy(np.concatenate(weights)))


def train(data: list[Example], epochs: int, seed: int) -> tuple[np.ndarray, float]:
    torch.manual_seed(seed)
    emb = torch.nn.EmbeddingBag(1 << toxicity.BITS, 1, mode="sum")
    torch.nn.init.zeros_(emb.weight)
    bias = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([emb.weight, bias], lr=0.02)
    rng = random.Random(seed)
    for epoch in range(epochs):
        rng.shuffle(data)
        total = 0.0
        for i in range(0, len(data), 256):
            batch = data[i:i + 256]
            ids, offsets, weights = bag([t for t, _ in batch])
            y = torch.tensor([label for _, label in batch], dtype=torch.float32)
            logits = emb(ids, offsets, per_sample_weights=weights).squeeze(1) + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            loss = loss + 1e-6 * emb.weight.square().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}: loss {total / len(data):.4f}", file=sys.stderr)
    return emb.weight.detach().squeeze(1).numpy(), float(bias.item())


def prf(examples: list[Example], threshold: float) -> dict[str, float]:
    scores = [toxicity.score(t) for t, _ in examples]
    tp = sum(s >= threshold and y for s, (_, y) in zip(scores, examples))
    fp = sum(s >= threshold and not y for s, (_, y) in zip(scores, examples))
    fn = sum(s < threshold and y for s, (_, y) in zip(scores, examples))
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"n": len(examples), "precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-only", action="store_true", help="evaluate the shipped model, do not train")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    curses = curse()
    cut = int(len(curses) * 0.9)
    if not args.eval_only:
        train_set = (kocohub("train") + curses[:cut] + kosbi("valid") + kosbi("valid", "sentence_en")
                     + clean_negatives(4000, rng))
        weights, bias = train(train_set, args.epochs, args.seed)
        np.savez_compressed(toxicity.MODEL_PATH, weights=weights.astype(np.float16), bias=np.float32(bias))
        toxicity.load_model.cache_clear()
        print(f"{len(train_set)} training examples")
    held_out = {"kocohub dev": kocohub("dev"), "APEACH test": apeach(), "KoSBi test": kosbi("test"),
                "KoSBi test, English": kosbi("test", "sentence_en"), "curse_detection last 10%": curses[cut:]}
    print(f"model: {toxicity.MODEL_PATH} ({toxicity.MODEL_PATH.stat().st_size / 1e3:.0f} kB)")
    print("| held-out set | n | threshold | precision | recall | F1 |\n|---|---:|---:|---:|---:|---:|")
    for name, examples in held_out.items():
        for threshold in (0.5, 0.6, 0.7, 0.8):
            m = prf(examples, threshold)
            print(f"| {name} | {m['n']} | {threshold} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")
    docs = clean_english_docs(1000)
    scores = toxicity.score_batch(docs)
    print(f"\nclean English documents (Debian docs, first {len(docs)}) dropped: " + ", ".join(
        f"{sum(s >= t for s in scores) / len(docs):.1%} at {t}" for t in (0.5, 0.6, 0.7, 0.8)))
    texts = [t for t, _ in held_out["APEACH test"]]
    start = time.process_time()
    for i in range(0, len(texts), toxicity.BATCH):
        toxicity.score_batch(texts[i:i + toxicity.BATCH])
    elapsed = time.process_time() - start
    print(f"speed: {len(texts) / elapsed:,.0f} docs/s, {sum(len(t.encode()) for t in texts) / elapsed / 1e6:.2f} "
          f"MB/s on APEACH test (1 core, CPU time, batches of {toxicity.BATCH})")


if __name__ == "__main__":
    main()
