"""GGUF round trip with a real tokenizer: llama.cpp's ids against `tokenizers`' on every line of held-out text.

Puts TOKENIZER_DIR's tokenizer.json on a small random Llama, exports it (`export_hf`), converts it with
llama.cpp's converter (`export_gguf`, f32), and has llama.cpp itself (tools/llama_cpp) tokenize every
non-empty line of `compare.heldout` of CONFIG (plus tests/test_gguf.py's edge cases) and decode 32 tokens
greedily; prints the counts that docs/release.md quotes.

    .venv/bin/python bench/gguf_roundtrip.py configs/tokenizer.yaml runs/tokenizer/tokenizer [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer

from gecko.config import load_config
from gecko.export.gguf import LlamaCpp, export_gguf
from gecko.model.hf import export_hf
from gecko.model.llama import Llama, LlamaConfig
from gecko.data.heldout import read_texts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_gguf import EDGE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("tokenizer_dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/gguf_roundtrip"))
    args = ap.parse_args()
    cfg = load_config(args.config)
    lines = [line for docs in read_texts(cfg.compare.heldout, cfg.compare.max_bytes_per_lang).values() for doc in docs for line in doc.split("\n") if line]
    lines += EDGE
    tok = Tokenizer.from_file(str(args.tokenizer_dir / "tokenizer.json"))
    model_cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                            ffn_dim=160, max_seq_len=128, init_std=0.1)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    hf = export_hf(Llama(model_cfg).eval(), args.tokenizer_dir, args.out / "hf")
    t0 = time.perf_counter()
    gguf_path = export_gguf(hf, args.out / "model-f32.gguf", "f32", force=True)
    convert_s = time.perf_counter() - t0
    ours = [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]
    t0 = time.perf_counter()
    got = LlamaCpp(gguf_path).run(lines)
    llama_s = time.perf_counter() - t0
    wrong = [(line, a, b) for line, a, b in zip(lines, ours, got["ids"]) if a != b]
    row = {"lines": len(lines), "tokens": sum(map(len, ours)), "mismatched_lines": len(wrong),
           "convert_s": round(convert_s, 1), "llama_cpp_s": round(llama_s, 1), "llama_cpp": got["llama_cpp"],
           "first_mismatches": [w[0][:200] for w in wrong[:5]]}
    print(json.dumps(row, ensure_ascii=False, indent=2))
    (args.out / "results.json").write_text(json.dumps(row, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
