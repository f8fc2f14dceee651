"""What every task asks of a model: log-likelihoods of continuations, and text generation.

The interface is lm-evaluation-harness's (strings in, numbers or strings out), so a task never touches
tokens, and a scripted model (tests) or another backend can stand in for GECKO's. `GeckoLM` tokenizes
exactly as lm-eval's HFLM does for a causal model: trailing spaces of the context move to the
continuation, the pair is encoded whole with <s>, and the continuation tokens are what follows the
context's tokens. Too-long inputs are cut on the left to the model's window, as lm-eval does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from gecko.errors import ConfigError
from gecko.infer.generate import Sampling, cut_at_stop, generate_batch
from gecko.model.llama import Llama
from gecko.tokens import document_boundaries, for_continuations


class Scored(NamedTuple):
    """One continuation scored after its context (lm-eval's `loglikelihood` answer, plus the length)."""

    logprob: float
    """log P(continuation | context) in nats."""
    n_tokens: int
    """Tokens of the continuation as scored: the per-token normalization divides by it."""
    greedy: bool
    """Every continuation token is the model's argmax (LAMBADA's accuracy)."""


class LanguageModel(Protocol):
    def score(self, requests: Sequence[tuple[str, str]]) -> list[Scored]:
        """One `Scored` per (context, continuation)."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Sequence[str],
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        """One completion per prompt, cut before the first stop string."""
        ...


class GeckoLM:
    """A GECKO Llama and its tokenizer behind the `LanguageModel` interface."""

    def __init__(self, model: Llama, tokenizer: Tokenizer, batch_size: int = 8):
        self.model, self.batch_size = model.eval(), batch_size
        self.tokenizer = for_continuations(tokenizer)  # it decodes only generated continuations
        self.device = model.tok_embeddings.weight.device
        self.max_len = model.cfg.max_seq_len
        self.eos_id = document_boundaries(tokenizer, Path("the model's tokenizer"))[1]
        """Generation stops at the end of a document: GECKO's </s>, or an imported model's own (SmolLM2's
        <|endoftext|>)."""
        self.truncated = 0
        """Inputs cut on the left to fit the window so far (reported beside the scores)."""

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return self.encode_pairs([(context, continuation)])[0]

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(context ids, continuation ids) per request; each distinct text is encoded once, in parallel
        (a 5-shot prompt is shared by every choice of its item)."""
        moved = []
        for context, continuation in requests:
            n_spaces = len(context) - len(context.rstrip())
            moved.append(
                (context[:-n_spaces], context[-n_spaces:] + continuation)
                if n_spaces
                else (context, continuation)
            )
        texts = list(dict.fromkeys([c for c, _ in moved] + [c + x for c, x in moved]))
        ids = dict(zip(texts, (e.ids for e in self.tokenizer.encode_batch(texts)), strict=True))
        return [(ids[c + x][: len(ids[c])], ids[c + x][len(ids[c]) :]) for c, x in moved]

    @torch.inference_mode()
    def score(self, requests: Sequence[tuple[str, str]]) -> list[Scored]:
        # Requests with the same model input share one forward: the four answer letters of a question
        # differ only in the target token, so a 4-way multiple-choice item costs one forward, not four.
        rows = [self._row(c, x) for c, x in self.encode_pairs(requests)]
        users: dict[tuple[int, ...], list[int]] = defaultdict(list)  # model input → rows scored on it
        for i, (inp, _) in enumerate(rows):
            users[inp].append(i)
        inputs = sorted(users, key=len, reverse=True)  # similar lengths share a batch: little padding
        out: list[Scored] = [Scored(0.0, 0, False)] * len(rows)
        for b in range(0, len(inputs), self.batch_size):
            batch = inputs[b : b + self.batch_size]
            tail = max(len(rows[i][1]) for inp in batch for i in users[inp])
            for inp, logprobs in zip(batch, self._forward(batch, tail), strict=True):
                for i in users[inp]:  # gathered now: holding (tail, V) per input would not fit in memory
                    out[i] = self._gather(logprobs, rows[i][1])
        return out

    def _row(self, context: list[int], continuation: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(model input, continuation targets), cut on the left to the window."""
        seq = (context + continuation)[-(self.max_len + 1) :]
        self.truncated += len(context) + len(continuation) > self.max_len + 1
        return tuple(seq[:-1]), tuple(continuation[-(len(seq) - 1) :])

    def _forward(self, inputs: list[tuple[int, ...]], tail: int) -> list[torch.Tensor]:
        """Log-probabilities (tail, V) at the last `tail` positions of each input; one right-padded batch."""
        T = max(len(inp) for inp in inputs)
        tokens = torch.zeros(len(inputs), T, dtype=torch.long)
        for i, inp in enumerate(inputs):
            tokens[i, : len(inp)] = torch.tensor(inp)
        logits = self.model(tokens.to(self.device))  # (B, T, V); causal: the padding after a row is unseen
        out = []
        for i, inp in enumerate(inputs):
            n = min(tail, len(inp))
            out.append(F.log_softmax(logits[i, len(inp) - n : len(inp)].float(), dim=-1))  # (n, V)
        return out

    @staticmethod
    def _gather(logprobs: torch.Tensor, targets: tuple[int, ...]) -> Scored:
        """Sum of log P(target) over the continuation, which ends at the input's last position."""
        index = torch.tensor(targets, device=logprobs.device)[:, None]
        window = logprobs[logprobs.shape[0] - len(targets) :]  # (n, V)
        greedy = bool((window.argmax(-1) == index[:, 0]).all())
        return Scored(float(window.gather(-1, index).sum()), len(targets), greedy)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Sequence[str],
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]:
        budget = self.max_len - max_new_tokens
        if budget < 1:
            raise ConfigError(
                f"eval.gen_max_new_tokens={max_new_tokens} leaves no room for the prompt in "
                f"the model's {self.max_len}-token window"
            )
        encoded = [self.tokenizer.encode(p).ids for p in prompts]
        self.truncated += sum(len(e) > budget for e in encoded)
        encoded = [e[-budget:] for e in encoded]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        stops = tuple(stop)

        def done(ids: list[int]) -> bool:  # lets a batch end before max_new_tokens
            text = self.tokenizer.decode(ids)
            return any(s in text for s in stops)

        texts = []
        for b in range(0, len(encoded), self.batch_size):
            rows = generate_batch(
                self.model,
                encoded[b : b + self.batch_size],
                max_new_tokens,
                Sampling(temperature),
                self.eos_id,
                generator,
                stop=done if stops else None,
            )
            texts += [cut_at_stop(self.tokenizer.decode(r), stops) for r in rows]
        return texts
