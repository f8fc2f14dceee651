"""The whole GECKO model in one file: a LLaMA-style decoder (RMSNorm, RoPE, GQA attention, SwiGLU).

Read top to bottom: config → RoPE → attention masks → modules → `Llama` → `KVCache`.
Building and initializing are separate steps (torchtitan): build on the `meta` device, shard or move
with `to_empty()`, then call `init_weights()`. Nothing here knows about training loops or distribution.

RoPE follows the Hugging Face Llama convention (rotate the two *halves* of each head, not interleaved
pairs), so q/k weights export to `LlamaForCausalLM` unchanged.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gecko.errors import ConfigError

try:  # flex attention fuses document masks on CUDA; older or CPU-only builds fall back to SDPA
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # pragma: no cover - depends on the torch build
    BlockMask = create_block_mask = flex_attention = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

AttnMask = Any
"""None (plain causal; a single query sees every key), a bool Tensor (B, 1, T, S) where True means
"may attend", or a flex BlockMask."""


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    """Key/value heads; n_heads must be a multiple (GQA). n_kv_heads == n_heads is plain multi-head."""
    ffn_dim: int
    """Hidden width of the SwiGLU feed-forward (LLaMA uses about 8/3 · dim, rounded up)."""
    max_seq_len: int
    """Longest position the RoPE tables cover; also the Hugging Face max_position_embeddings."""
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    """Hugging Face format: {"rope_type": "linear", "factor": f} or {"rope_type": "llama3", "factor",
    "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}; None: no scaling."""
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    """Share the token embedding with the output head (saves vocab·dim parameters on small models)."""
    init_std: float = 0.02

    def __post_init__(self) -> None:
        checks = [
            (
                min(self.vocab_size, self.dim, self.n_layers, self.ffn_dim, self.max_seq_len) >= 1,
                "vocab_size, dim, n_layers, ffn_dim and max_seq_len must be ≥ 1",
            ),
            (
                self.n_heads >= 1 and self.dim % self.n_heads == 0,
                f"dim={self.dim} must be a multiple of n_heads={self.n_heads}",
            ),
            (
                self.n_kv_heads >= 1 and self.n_heads % self.n_kv_heads == 0,
                f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}",
            ),
            (
                (self.dim // max(self.n_heads, 1)) % 2 == 0,
                f"head_dim={self.dim}/{self.n_heads} must be even for RoPE",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"model: {message}")
        _check_rope_scaling(self.rope_scaling)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


_ROPE_KEYS = {
    "linear": {"rope_type", "factor"},
    "llama3": {
        "rope_type",
        "factor",
        "low_freq_factor",
        "high_freq_factor",
        "original_max_position_embeddings",
    },
}


def _check_rope_scaling(scaling: dict[str, Any] | None) -> None:
    if scaling is None:
        return
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind not in _ROPE_KEYS:
        raise ConfigError(f"model.rope_scaling: rope_type={kind!r} must be one of {', '.join(_ROPE_KEYS)}")
    missing = sorted(_ROPE_KEYS[kind] - {"rope_type"} - set(scaling))
    if missing:
        raise ConfigError(f"model.rope_scaling: {kind} scaling needs {', '.join(missing)}")


# ----------------------------------------------------------------------------------------------------
# RoPE


def rope_inv_freq(head_dim: int, theta: float, scaling: dict[str, Any] | None) -> Tensor:
    """Rotation frequency of each channel pair, (head_dim/2,), with optional context-extension scaling."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    if scaling is None:
        return inv_freq
    factor = float(scaling["factor"])
    if scaling.get("rope_type", scaling.get("type")) == "linear":
        return inv_freq / factor  # positions are squeezed by `factor` (Chen et al., 2023)
    # llama3: slow channels (long wavelengths) are squeezed, fast ones kept, the band between blended
    old_len = float(scaling["original_max_position_embeddings"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    wavelen = 2 * math.pi / inv_freq
    smooth = ((old_len / wavelen - low) / (high - low)).clamp(0.0, 1.0)
    return (1 - smooth) * inv_freq / factor + smooth * inv_freq


class RotaryEmbedding(nn.Module):
    """cos/sin tables for every position up to max_seq_len, looked up per token so that positions can
    restart at each packed document. Buffers are not saved: they are a function of the config."""

    cos: Tensor
    sin: Tensor

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("cos", torch.empty(cfg.max_seq_len, cfg.head_dim), persistent=False)
        self.register_buffer("sin", torch.empty(cfg.max_seq_len, cfg.head_dim), persistent=False)

    def reset_parameters(self) -> None:
        inv_freq = rope_inv_freq(self.cfg.head_dim, self.cfg.rope_theta, self.cfg.rope_scaling)
        angles = torch.outer(torch.arange(self.cfg.max_seq_len, dtype=torch.float32), inv_freq)  # (L, hd/2)
        angles = torch.cat([angles, angles], dim=-1)  # (L, hd): HF layout, halves share a frequency
        self.cos.copy_(angles.cos())
        self.sin.copy_(angles.sin())

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        # positions (B, T) → cos, sin (B, 1, T, hd), broadcast over heads
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each (x[i], x[i + hd/2]) pair by its position's angle; x (B, H, T, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


# ----------------------------------------------------------------------------------------------------
# Attention masks: built once per forward and shared by every layer


def doc_attention_mask(doc_ids: Tensor) -> AttnMask:
    """Causal attention within each packed document; doc_ids (B, T).

    On CUDA this is a flex-attention BlockMask (fully masked tiles are skipped); elsewhere a bool SDPA
    mask, because flex attention has no CPU backward. A trainer may call this ahead of the forward.
    """
    if doc_ids.is_cuda and create_block_mask is not None and _flex_error is None:
        try:
            # built outside a compiled model's graph: inductor fails to trace create_block_mask at dynamic T
            return _outside_graph(doc_block_mask)(doc_ids)
        except RuntimeError as e:  # Inductor and Dynamo wrap compile failures in RuntimeErrors
            _flex_failed(e)
    return doc_bool_mask(doc_ids, doc_ids, offset=0)


def doc_block_mask(doc_ids: Tensor) -> BlockMask:
    B, T = doc_ids.shape

    def same_doc_causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (doc_ids[b, q_idx] == doc_ids[b, kv_idx]) & (kv_idx <= q_idx)

    return _compiled(create_block_mask)(same_doc_causal, B, None, T, T, device=doc_ids.device)


def doc_bool_mask(q_doc: Tensor, k_doc: Tensor, offset: int) -> Tensor:
    """(B, 1, T, S) bool mask; queries sit at key positions offset .. offset+T-1 (offset > 0 with a cache)."""
    T, S = q_doc.size(1), k_doc.size(1)
    q_idx = torch.arange(offset, offset + T, device=q_doc.device)
    k_idx = torch.arange(S, device=q_doc.device)
    causal = k_idx[None, :] <= q_idx[:, None]  # (T, S)
    same_doc = q_doc[:, :, None] == k_doc[:, None, :]  # (B, T, S)
    return (causal & same_doc).unsqueeze(1)


# Both wrappers are made on first use: importing the compiler stack costs seconds on every import.
@functools.cache
def _compiled(fn: Any) -> Any:
    # Eager flex attention runs an unfused reference kernel and eager create_block_mask materializes
    # a (B, T, T) mask; compiled, both become fused kernels.
    return torch.compile(fn, dynamic=False)


@functools.cache
def _outside_graph(fn: Any) -> Any:
    return torch.compiler.disable(fn)


# Flex attention's kernels come from Inductor templates: a torch/Triton build whose templates all fail on
# this GPU (seen on an H200 with torch 2.11: NoValidChoicesError) must not stop a run. Each shape is
# compiled, forward and backward, on stand-in copies the first time it is seen; the first failure switches
# the process to SDPA with dense masks (same function, more memory), with one warning, rather than paying
# for a failing compilation at every new shape.
_flex_probed: set[tuple] = set()
_flex_error: str | None = None


def _is_compile_error(e: BaseException) -> bool:
    modules = ("torch._dynamo", "torch._inductor", "triton")
    return any(c.__module__.startswith(modules) for c in type(e).__mro__)


def _flex_failed(e: RuntimeError) -> None:
    global _flex_error
    if not _is_compile_error(e):
        raise e
    reason = next((line for line in str(e).splitlines() if line.strip()), "")[:300]
    _flex_error = f"{type(e).__name__}: {reason}"
    log.warning("flex attention does not compile here (%s); SDPA with dense masks from now on", _flex_error)


def _flex_compiles(q: Tensor, k: Tensor, v: Tensor, mask: BlockMask) -> bool:
    grad = torch.is_grad_enabled() and q.requires_grad
    key = (tuple(q.shape), tuple(k.shape), q.dtype, grad)
    if _flex_error is None and key not in _flex_probed:
        try:
            qs, ks, vs = (x.detach().clone().requires_grad_(grad) for x in (q, k, v))
            out = _compiled(flex_attention)(qs, ks, vs, block_mask=mask, enable_gqa=True)
            if grad:
                out.sum().backward()
            _flex_probed.add(key)
        except RuntimeError as e:  # Inductor and Dynamo wrap compile failures in RuntimeErrors
            _flex_failed(e)
    return _flex_error is None


def _dense_mask(mask: BlockMask, B: int, T: int, S: int) -> Tensor:
    """The (B, 1, T, S) bool mask a BlockMask stands for, from its mask_mod."""
    from torch.nn.attention.flex_attention import create_mask

    return create_mask(mask.mask_mod, B, None, T, S, device=mask.kv_num_blocks.device)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: AttnMask) -> Tensor:
    """q (B, H, T, hd), k/v (B, Hkv, S, hd) → (B, H, T, hd). Each kv head serves H/Hkv query heads."""
    if BlockMask is not None and isinstance(mask, BlockMask):
        if torch.compiler.is_compiling():
            return flex_attention(q, k, v, block_mask=mask, enable_gqa=True)
        if _flex_compiles(q, k, v, mask):
            return _compiled(flex_attention)(q, k, v, block_mask=mask, enable_gqa=True)
        mask = _dense_mask(mask, q.size(0), q.size(2), k.size(2))
    if mask is None:
        # plain causal; one query after a KV cache is the newest token and sees every key, while SDPA's
        # is_causal aligns to the top-left corner and would show it only the first key
        return F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) > 1, enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)


# ----------------------------------------------------------------------------------------------------
# Modules


class RMSNorm(nn.Module):
    """x / rms(x) · weight, computed in float32 (bf16 squares lose too much precision)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig, layer_id: int):
        super().__init__()
        self.layer_id = layer_id  # selects this layer's slot in a KVCache
        self.head_dim = cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: AttnMask, cache: KVCache | None) -> Tensor:
        B, T, _ = x.shape
        # -1 heads: tensor parallelism may have sharded the projections
        q = self.wq(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.wk(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = self.wv(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer_id, k, v)  # (B, Hkv, S, hd), S = cached + T
        y = attend(q, k, v, mask)  # (B, H, T, hd)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) · w3 x)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # gate
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # up
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)  # down

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + ffn(norm(x))."""

    def __init__(self, cfg: LlamaConfig, layer_id: int):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg, layer_id)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: AttnMask, cache: KVCache | None) -> Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, mask, cache)
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.rope = RotaryEmbedding(cfg)
        # keyed by layer number so parameter names survive pipeline stages that drop layers
        self.layers = nn.ModuleDict({str(i): Block(cfg, i) for i in range(cfg.n_layers)})
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        # Tied: no separate module, so to_empty()/sharding can never silently untie the two weights.
        self.output = None if cfg.tie_embeddings else nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """LLaMA/GPT-2 init: N(0, init_std) everywhere; residual outputs (wo, w2) shrunk by 1/sqrt(2·layers)
        so the residual stream's variance does not grow with depth; norms at 1; RoPE tables recomputed.
        A no-op in cost on the meta device; call again after `to_empty()`."""
        std = self.cfg.init_std
        nn.init.normal_(self.tok_embeddings.weight, std=std)
        for block in self.layers.values():
            for name, p in block.named_parameters():
                if p.dim() == 2:
                    residual_out = name.endswith(("wo.weight", "w2.weight"))
                    nn.init.normal_(p, std=std / math.sqrt(2 * self.cfg.n_layers) if residual_out else std)
        for norm in (m for m in self.modules() if isinstance(m, RMSNorm)):
            norm.reset_parameters()
        if self.output is not None:
            nn.init.normal_(self.output.weight, std=std)
        self.rope.reset_parameters()

    def forward(
        self,
        tokens: Tensor,
        positions: Tensor | None = None,
        doc_ids: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """tokens (B, T) → logits (B, T, V) in the compute dtype (bf16 under autocast).

        positions (B, T): RoPE position of each token, restarting at 0 per packed document
        (default: 0..T-1, or continuing after the cache). doc_ids (B, T): attention stays within a
        document (default: plain causal). cache: keys/values of earlier tokens, extended in place.
        Callers upcast logits to float32 for softmax: a compiled loss fuses that upcast into its one pass
        over the logits, where an upcast here would write and re-read a (B, T, V) float32 copy.
        """
        B, T = tokens.shape
        start = 0 if cache is None else cache.length
        if positions is None:
            positions = torch.arange(start, start + T, device=tokens.device).expand(B, T)
        if cache is not None:
            mask = cache.extend_docs(doc_ids if doc_ids is not None else torch.zeros_like(tokens))
        else:
            mask = None if doc_ids is None else doc_attention_mask(doc_ids)
        cos, sin = self.rope(positions)  # (B, 1, T, hd) each, shared by all layers
        h = self.tok_embeddings(tokens)  # (B, T, D)
        for block in self.layers.values():
            h = block(h, cos, sin, mask, cache)
        h = self.norm(h)
        logits = self.output(h) if self.output is not None else F.linear(h, self.tok_embeddings.weight)
        if cache is not None:
            cache.length += T
        return logits  # (B, T, V)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count. non_embedding drops the input lookup table (it does no FLOPs) but keeps a
        tied table, which also serves as the output matmul (as nanoGPT counts)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.output is not None:
            n -= self.tok_embeddings.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6·N + 12·L·D·T (PaLM, appendix B).

        6·N: forward (2) + backward (4) multiply-adds through every matmul weight (N = non-embedding
        params). 12·L·D·T: the attention scores QKᵀ and the weighted sum AV over T keys, counted in full
        (without halving for causality), as nanoGPT and PaLM do for MFU.
        """
        cfg = self.cfg
        return 6 * self.num_params(non_embedding=True) + 12 * cfg.n_layers * cfg.dim * seq_len

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: decay the 2-D matmul weights; no decay on norms and the token embedding.

        The embedding is excluded because a row only gets gradient when its token appears, so decay
        would steadily shrink rare-token rows between updates. A tied table is the embedding too.
        """
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in self.named_parameters():
            is_matmul = p.dim() == 2 and not name.startswith("tok_embeddings.")
            (decay if is_matmul else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class KVCache:
    """Keys, values and document ids of past tokens for every layer, preallocated to max_len.

    `length` tokens are filled; `Llama.forward` appends the new ones. Document ids are kept so that
    a batch of left-padded prompts can mask its padding (padding is its own document). While every row
    holds one document (no padding), decoding needs no mask at all: SDPA then takes its fast path.
    """

    def __init__(
        self,
        cfg: LlamaConfig,
        batch_size: int,
        max_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        shape = (cfg.n_layers, batch_size, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.doc_ids = torch.zeros(batch_size, max_len, device=device, dtype=torch.long)
        self.length = 0
        self.one_doc = True
        """Every cached token of a row shares that row's first document id."""

    @property
    def max_len(self) -> int:
        return self.doc_ids.size(1)

    def extend_docs(self, doc_ids: Tensor) -> AttnMask:
        """Record the new tokens' doc ids (B, T); return their mask over all length+T keys: None where
        plain causal attention is exact (one document, and no cache yet or a single new token), else
        a bool mask (B, 1, T, length+T)."""
        T = doc_ids.size(1)
        end = self.length + T
        if end > self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} tokens; cannot add {T} to {self.length}")
        self.doc_ids[:, self.length : end] = doc_ids
        self.one_doc = self.one_doc and bool((doc_ids == self.doc_ids[:, :1]).all())
        if self.one_doc and (self.length == 0 or T == 1):
            return None
        return doc_bool_mask(doc_ids, self.doc_ids[:, :end], offset=self.length)

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, Hkv, T, hd) after the cached tokens; return all keys and values (B, Hkv, S, hd)."""
        end = self.length + k.size(2)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]
