"""Bits per byte is exact for a model whose predictions are known."""

import math

import numpy as np
import torch

from gecko.infer.bpb import evaluate_bpb
from gecko.shards import Shards
from gecko.stages import stage_dir


class Uniform(torch.nn.Module):
    """Every token equally likely: each scored prediction costs exactly log2(V) bits."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens, positions=None, doc_ids=None):
        return torch.zeros(*tokens.shape, self.vocab)


def test_uniform_model_scores_log2_vocab_per_text_token(tiny_prepared):
    shards = Shards(stage_dir(tiny_prepared, "tokenize"))
    V = shards.meta["vocab_size"]
    result = evaluate_bpb(
        Uniform(V), shards, "val", seq_len=32, batch_size=4, max_tokens=0, device=torch.device("cpu")
    )
    index = shards.index("val")
    for lang_id, lang in enumerate(shards.langs):
        rows = index[index["lang"] == lang_id]
        text_tokens = int((rows["length"] - 2).sum())  # <s> and </s> are not scored
        expected = text_tokens * math.log2(V) / int(rows["n_bytes"].sum())
        assert math.isclose(result[lang], expected, rel_tol=1e-5), lang
    assert min(result.values()) > 0 and np.isfinite(list(result.values())).all()
