"""Pretraining ablations at equal token budgets (issue 9): document-masked vs naive packing, and GECKO's
tokenizer vs LLaMA-2's, compared in validation bits per byte (tokenizer-independent).

Uses a run whose data, tokenizer and tokenize stages are done (`configs/small-gpu.yaml`). The LLaMA-2
SentencePiece model is converted to a `tokenizers` file (its vocabulary and merges, HF's LLaMA normalizer),
and the same corpus is pretokenized with it; the validation split is chosen by document id, so both
tokenizers are scored on the same documents (`eval.max_tokens_per_lang` must cover the whole split; the
script checks). Every variant trains the same steps × batch × sequence tokens from the same seed.

  python bench/pretrain_ablation.py configs/small-gpu.yaml --steps 1500 --out runs/ablation \\
      --llama2 ../shared/data/tokenizers/llama2/tokenizer.model
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gecko.config import load_config
from gecko.stages import stage_dir
from gecko.tokenizer.pretokenize import pretokenize
from gecko.shards import Shards
from gecko.train.metrics import read_metrics
from gecko.train.trainer import run_train

VARIANTS = {  # name: (tokenizer, document masking)
    "gecko-docmask": ("gecko", True),
    "gecko-naive": ("gecko", False),
    "llama2-docmask": ("llama2", True),
}


def sentencepiece_to_tokenizers(model_file: Path, out_dir: Path) -> Path:
    """LLaMA-2's SentencePiece BPE as a `tokenizers` file: the pieces in id order, merges ranked by the merged
    piece's id (SentencePiece's score order), byte fallback, `▁` for spaces."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = []
    for piece, rank in vocab.items():
        splits = [(piece[:i], piece[i:]) for i in range(1, len(piece)) if piece[:i] in vocab and piece[i:] in vocab]
        merges += sorted(((a, b, rank) for a, b in splits), key=lambda m: (vocab[m[0]], vocab[m[1]]))
    merges.sort(key=lambda m: m[2])
    tok = Tokenizer(models.BPE(vocab, [(a, b) for a, b, _ in merges], unk_token=pieces[sp.unk_id()],
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(pieces[i], special=True, normalized=False) for i in (0, 1, 2)])
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    return out_dir


def shards_for(tokenizer: str, cfg, args: argparse.Namespace) -> Path:
    if tokenizer == "gecko":
        return stage_dir(cfg, "tokenize")
    out = Path(args.out) / "shards-llama2"
    if not (out / "meta.json").exists():
        tok_dir = sentencepiece_to_tokenizers(Path(args.llama2), Path(args.out) / "tokenizer-llama2")
        pretokenize(cfg.tokenize, stage_dir(cfg, "data") / "corpus.jsonl", tok_dir, out, cfg.seed)
    return out


def check_whole_val_split(shards: Path, max_tokens: int) -> dict[str, int]:
    """Validation documents per language; bits per byte compares tokenizers only on the same documents."""
    s = Shards(shards)
    index = s.index("val")
    out = {}
    for i, lang in enumerate(s.langs):
        rows = index[index["lang"] == i]
        if rows["length"].sum() > max_tokens:
            raise SystemExit(f"{shards}: {lang} validation split has {rows['length'].sum():,} tokens, more than "
                             f"eval.max_tokens_per_lang={max_tokens:,}; raise it so every document is scored")
        out[lang] = len(rows)
    return out


def run_variant(name: str, args: argparse.Namespace) -> dict:
    tokenizer, doc_mask = VARIANTS[name]
    overrides = [*args.overrides, f"train.steps={args.steps}", f"train.warmup_steps={args.steps // 10}",
                 f"train.doc_mask={doc_mask}", f"train.eval_every={args.eval_every}", "train.checkpoint_every=null",
                 "train.eval_tasks=[]"]
    cfg = load_config(args.config, overrides)
    shards = shards_for(tokenizer, cfg, args)
    val_docs = check_whole_val_split(shards, cfg.eval.max_tokens_per_lang)
    out = Path(args.out) / name
    t0 = time.time()
    run_train(cfg, shards, out)
    records = read_metrics(out / "metrics.jsonl")
    evals = [r for r in records if "val_bpb" in r]
    return {"variant": name, "tokenizer": tokenizer, "doc_mask": doc_mask, "steps": args.steps,
            "tokens": args.steps * cfg.train.batch_size * cfg.train.seq_len, "seconds": round(time.time() - t0, 1),
            "val_docs": val_docs, "final_val_bpb": evals[-1]["val_bpb"],
            "val_bpb_curve": [{"step": r["step"], **r["val_bpb"]} for r in evals],
            "final_train_loss": next(r["loss"] for r in reversed(records) if "loss" in r)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--llama2", default="../shared/data/tokenizers/llama2/tokenizer.model")
    p.add_argument("--out", default="runs/ablation")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.variants:
        results.append(run_variant(name, args))
        print(json.dumps(results[-1]), flush=True)
        (Path(args.out) / "ablation.json").write_text(json.dumps(results, indent=2))
    print(f"{'variant':16} {'tokens':>12} " + " ".join(f"{lang:>8}" for lang in results[0]["final_val_bpb"]))
    for r in results:
        print(f"{r['variant']:16} {r['tokens']:>12,} " + " ".join(f"{v:8.4f}" for v in r["final_val_bpb"].values()))


if __name__ == "__main__":
    main()
