"""Do transformers and llama.cpp tokenize a SentencePiece BPE of bench/tokenizer_generalize.py exactly?

Trains one `spm` variant of that benchmark on its sample, converts the model to a `tokenizer.json` with
transformers (`AutoTokenizer` on the `.model`, as `gecko tokenizer extend` does) and, with a tiny random
Llama, to a GGUF through llama.cpp's own `convert_hf_to_gguf.py` (which writes a SentencePiece vocabulary,
`tokenizer.ggml.model = llama`, from `tokenizer.model`). Then compares the token ids of SentencePiece,
`tokenizers` and llama.cpp (node-llama-cpp's prebuilt binaries, as tests/test_gguf.py) on lines and whole
documents of the held-out samples (capped per source) and on whitespace, digit, emoji and NFD edge cases.

    .venv/bin/python bench/tokenizer_spm_gguf.py [--variant spm_bpe_no_splits] [--specials] [--out DIR]

`--specials` trains with GECKO's special block as ids 0-31 and also checks llama.cpp with special-token text
parsed (`<|user|>` as one token) against `tokenizers` (without it only `<unk> <s> </s>` are special).

Needs what bench/tokenizer_generalize.py needs, `npm ci --prefix tools/llama_cpp` and the `gguf` extra;
writes the model, the GGUF and VARIANT.json (counts, the first differing lines, and the CPU seconds to
encode all held-out text with SentencePiece, its tokenizer.json and the shipped byte-level BPE) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import sentencepiece as spm
import tokenizer_generalize as tg
from tokenizers import Tokenizer

from gecko import tokens
from gecko.export import gguf as gecko_gguf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_gguf import EDGE as GGUF_EDGE  # noqa: E402  (the GGUF test's edge cases, as bench/gguf_roundtrip.py)

EDGE = [
    *GGUF_EDGE,
    "할 수 있다 그럴 수 있었다 하는 것이 좋을 것 같아요",  # pieces across spaces, which this tokenizer has
    "<|system|>\n당신은 도움이 되는 조수입니다.<|end|>\n<|user|>\n질문 <|end|>\n<|assistant|>\n답</s>",
    "a <|end|> b<|user|>x",
]
"""tests/test_gguf.py's edge cases, plus multi-word Korean and chat-template text for `--specials`."""
SPECIALS = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": 3,
            "control_symbols": [t for t in tokens.SPECIAL_TOKENS if t not in (tokens.UNK, tokens.BOS, tokens.EOS, tokens.PAD)]}
"""GECKO's id layout in SentencePiece: the special block at 0-31 (the chat roles, fill-in-the-middle and PII
placeholders as control symbols, which text may name only where special tokens are parsed), bytes from 32."""
LINES_PER_SOURCE, DOCS_PER_SOURCE, DOC_CHARS = 400, 30, 8000


def lines(held: dict) -> list[str]:
    """Up to LINES_PER_SOURCE non-empty lines (line ends kept) and DOCS_PER_SOURCE whole documents (their
    first DOC_CHARS characters: pieces across line ends, such as `):\n▁▁▁▁`) of every held-out source, then
    EDGE."""
    out = []
    for docs in held.values():
        got = [line for d in docs for line in d.splitlines(keepends=True) if line.strip()]
        out += got[:LINES_PER_SOURCE] + [d[:DOC_CHARS] for d in docs[:DOCS_PER_SOURCE]]
    return out + EDGE


def tiny_llama(folder: Path, vocab: int) -> None:
    """A 2-layer random Llama in the transformers layout: the converter needs weights to write a GGUF."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    LlamaForCausalLM(cfg).save_pretrained(folder)


def to_gguf(hf_dir: Path, out: Path) -> dict[str, str | None]:
    """llama.cpp's converter on the folder, unchanged (it picks the vocabulary from tokenizer.model)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import convert_hf_to_gguf; "
            "sys.argv = ['convert_hf_to_gguf.py', sys.argv[2], '--outfile', sys.argv[3], '--outtype', 'f32']; "
            "convert_hf_to_gguf.main()")
    env = {**os.environ, "NO_LOCAL_GGUF": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code, str(gecko_gguf.converter_dir()), str(hf_dir), str(out)],
                   check=True, env=env, capture_output=True)
    import gguf

    fields = gguf.GGUFReader(out).fields
    keys = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_space_prefix")
    return {k: str(fields[k].contents()) if k in fields else None for k in keys}


def encode_cpu_seconds(encode, docs: list[str]) -> float:
    """CPU seconds of the process (all threads) to encode the documents in batches of 256."""
    t0 = tg._cpu_seconds()
    for i in range(0, len(docs), 256):
        encode(docs[i:i + 256])
    return round(tg._cpu_seconds() - t0, 1)


def speeds(sp, tok: Tokenizer, held: dict, pool: dict) -> dict[str, float]:
    """Encoding time of all held-out text: SentencePiece, its tokenizer.json, and the shipped recipe's
    byte-level BPE (trained here) for comparison."""
    docs = [d for ds in held.values() for d in ds]
    bytelevel = tg.train_bytelevel(tg.sample(pool, tg.SHIPPED)[0], tg.SHIPPED)
    return {"MB": round(sum(len(d.encode()) for d in docs) / 1e6, 1),
            "sentencepiece": encode_cpu_seconds(sp.encode, docs),
            "tokenizers, converted": encode_cpu_seconds(lambda b: tok.encode_batch(b, add_special_tokens=False), docs),
            "tokenizers, shipped byte-level BPE": encode_cpu_seconds(bytelevel.encode, docs)}


def differ(texts: list[str], want: list[list[int]], got: list[list[int]]) -> dict:
    wrong = [(t, a, b) for t, a, b in zip(texts, want, got, strict=True) if a != b]
    return {"lines": len(texts), "differ": len(wrong), "first": [repr(t)[:120] for t, _, _ in wrong[:5]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="spm_bpe_no_splits")
    ap.add_argument("--out", type=Path, default=tg.ROOT / "runs/bench/tokenizer_spm_gguf")
    ap.add_argument("--specials", action="store_true", help="GECKO's 32 special tokens as ids 0-31 (SPECIALS)")
    args = ap.parse_args()
    held, pool = tg.load(tg.ROOT / "runs/bench/tokenizer_generalize/cache")
    variant = tg.VARIANTS[args.variant]
    if args.specials:
        variant = {**variant, "spm": {**variant["spm"], **SPECIALS}}
    texts, _ = tg.sample(pool, variant)
    name = args.variant + ("_specials" if args.specials else "")
    hf_dir = args.out / name
    hf_dir.mkdir(parents=True, exist_ok=True)
    (hf_dir / "tokenizer.model").write_bytes(tg.train_spm(texts, variant).model)
    sp = spm.SentencePieceProcessor(model_file=str(hf_dir / "tokenizer.model"))
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(hf_dir).save_pretrained(hf_dir)  # tokenizer.json by transformers' converter
    tiny_llama(hf_dir, sp.get_piece_size())
    vocab = to_gguf(hf_dir, args.out / f"{name}.gguf")
    sample = lines(held)
    want = sp.encode(sample)
    tok = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    parsed = [e.ids for e in tok.encode_batch(sample, add_special_tokens=False)]
    tok.encode_special_tokens = True  # `<s>` in text as characters, as SentencePiece and llama.cpp read it
    ours = [e.ids for e in tok.encode_batch(sample, add_special_tokens=False)]
    gecko_gguf.LLAMA_CPP_TOOL = Path(os.environ.get("LLAMA_CPP_TOOL", gecko_gguf.LLAMA_CPP_TOOL))
    got = gecko_gguf.LlamaCpp(args.out / f"{name}.gguf").run(sample)
    result = {"variant": name, "gguf": vocab, "llama_cpp": got.get("llama_cpp"),
              "tokenizers_vs_sentencepiece": differ(sample, want, ours),
              "llama_cpp_vs_sentencepiece": differ(sample, want, got["ids_literal"]),
              "llama_cpp_vs_tokenizers_special_text_parsed": differ(sample, parsed, got["ids"]),
              "sentencepiece_roundtrip_failures": sum(sp.decode(i) != t for i, t in zip(want, sample)),
              "encode_cpu_seconds": speeds(sp, tok, held, pool)}
    print(json.dumps(result, ensure_ascii=False, indent=1))
    (args.out / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
