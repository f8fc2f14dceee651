"""The training loop, top to bottom: build → restore → (step → log → evaluate → checkpoint)* → close.

One process on CPU or one GPU, or one process per GPU under torchrun (FSDP2 over every GPU of every node):

    torchrun --nnodes N --nproc-per-node 8 -m gecko train CONFIG

Everything a resume needs (weights, optimizer, step, loader position, RNG states of every rank) goes into
each checkpoint, so a run killed at any point continues with bitwise-equal losses.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from gecko.config import GeckoConfig, to_dict
from gecko.infer.bpb import evaluate_bpb
from gecko.model.llama import Llama, LlamaConfig
from gecko.model.presets import build_llama_config
from gecko.progress import Steps
from gecko.shards import Shards
from gecko.train.checkpoint import CheckpointManager
from gecko.train.distributed import Dist, all_reduce_sum, close_distributed, init_distributed
from gecko.train.loader import Batch, BatchSource, PackedLoader
from gecko.train.metrics import MetricsLog, measure_peak_tflops, plot_loss, read_metrics
from gecko.train.parallelize import parallelize
from gecko.train.schedule import lr_multiplier
from gecko.train.stages import (
    enter_stage,
    new_row_mask,
    set_trainable,
    stage_at,
    stage_lr,
    zero_old_row_grads,
)

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule

log = logging.getLogger(__name__)

SPIKE_WINDOW = 20
"""Accepted losses the spike guard averages over."""
_FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Benchmarks during training score a plain, unsharded copy of the model."""


def build_model(cfg: GeckoConfig, vocab_size: int, dist: Dist) -> tuple[Llama, LlamaConfig]:
    """Build on `meta`, apply AC / compile / FSDP2, then allocate and initialize on the device: no process
    ever holds the whole model in memory."""
    t = cfg.train
    model_cfg = build_llama_config(cfg.model, vocab_size)
    if model_cfg.max_seq_len < t.seq_len:
        model_cfg = dataclasses.replace(model_cfg, max_seq_len=t.seq_len)
    with torch.device("meta"):
        model = Llama(model_cfg)
    parallelize(model, t.activation_checkpointing, t.compile, dist.mesh, bf16=t.dtype == "bfloat16")
    model.to_empty(device=dist.device)
    torch.manual_seed(cfg.seed)
    model.init_weights()
    return model, model_cfg


def build_optimizer(cfg: GeckoConfig, model: Llama, device: torch.device) -> torch.optim.AdamW:
    t = cfg.train
    return torch.optim.AdamW(
        model.param_groups(t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2), fused=device.type == "cuda"
    )


def token_losses(
    logits: torch.Tensor, targets: torch.Tensor, z_loss: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy (B·T,) and the objective: the same plus z_loss·logsumexp² (PaLM's z-loss keeps
    the softmax normalizer near 1, which steadies bf16 training). The float32 upcast happens here, so that
    a compiled loss fuses it into its pass over the logits."""
    logits = logits.float().flatten(0, 1)  # (B·T, V)
    ce = F.cross_entropy(logits, targets.flatten(), reduction="none")
    if not z_loss:
        return ce, ce
    lse = ce + logits.gather(1, targets.flatten()[:, None]).squeeze(1)  # ce = logsumexp − target logit
    return ce, ce + z_loss * lse.square()


@dataclass
class Trainer:
    cfg: GeckoConfig
    out_dir: Path
    shards: Shards
    device: torch.device
    model: Llama
    model_cfg: LlamaConfig
    optimizer: torch.optim.Optimizer
    loader: BatchSource
    metrics: MetricsLog
    step: int = 0
    skipped_steps: int = 0
    recent_losses: list[float] = field(default_factory=list)
    """The last SPIKE_WINDOW accepted losses (checkpointed: the spike guard resumes exactly)."""
    evaluator: Callable[[Llama], dict[str, float]] | None = None
    """Replaces validation bits per byte (SFT: held-out loss per assistant token, logged as val_loss)."""
    task_evaluator: Callable[[Llama], dict[str, dict[str, Any]]] | None = None
    """Benchmarks (train.eval_tasks) scored after each validation, on the main process; logged as eval_tasks."""
    dist: Dist | None = None
    """Rank, world size and FSDP mesh; None: a single process."""
    peak_tflops: float | None = None
    """MFU denominator; None: MFU is not logged."""
    new_rows: torch.Tensor | None = None
    """Vocabulary rows added by a tokenizer extension (bool, vocab_size): what train.stages' new_embeddings
    trains."""

    def __post_init__(self) -> None:
        t = self.cfg.train
        self.dist = self.dist or Dist(0, 1, self.device, None)
        self.loss_fn = torch.compile(token_losses) if t.compile else token_losses
        # one process: autocast to bf16; FSDP2: its mixed-precision policy gathers bf16 parameters instead
        self.autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=t.dtype == "bfloat16" and self.dist.mesh is None
        )
        self.flops_per_token = self.model.flops_per_token(t.seq_len)
        # async on CUDA only: DCP's host copy of CPU tensors may alias them (torch 2.6), and on CPU the copy
        # is most of a save anyway
        self.checkpoints = CheckpointManager(
            self.checkpoint_dir,
            t.keep_checkpoints,
            self.dist.rank,
            async_save=t.async_checkpoint and self.device.type == "cuda",
        )

    @property
    def _dist(self) -> Dist:
        """`dist` as __post_init__ filled it in (never None after construction)."""
        assert self.dist is not None
        return self.dist

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def train(self) -> Path:
        if self.step < self.cfg.train.steps:  # else resumed from the final checkpoint: all of it is logged
            if self.step == 0:
                self.evaluate()
            self._loop()
            self.evaluate()
        final = self.save()
        self.metrics.close()
        if self._dist.is_main:
            plot_loss(read_metrics(self.metrics.path), self.out_dir / "loss.png")
        return final

    def _loop(self) -> None:
        t = self.cfg.train
        with Steps("train", t.steps, done=self.step, show=self._dist.is_main) as progress:
            while self.step < t.steps:
                started = time.perf_counter()
                record = self.train_step()
                self.step += 1
                self._add_speed(record, time.perf_counter() - started)
                if self.step % t.log_every == 0 or self.step == t.steps:
                    self.metrics.write(record)
                progress.advance(note=f"loss {record['loss']:.3f}")
                if t.eval_every and self.step % t.eval_every == 0 and self.step < t.steps:
                    self.evaluate()
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 and self.step < t.steps:
                    self.save(wait=False)
                self.checkpoints.poll()

    def train_step(self) -> dict[str, Any]:
        """Accumulate grad_accum micro-batches, clip, and update unless the guard refuses the step."""
        t = self.cfg.train
        lr = t.lr * lr_multiplier(self.step, t.steps, t.warmup_steps, t.schedule, t.min_lr_ratio)
        if t.stages:  # staged continued pretraining: each stage its own lr schedule and trainable set
            lr = stage_lr(t.stages, self.step, t.schedule, t.min_lr_ratio)
            stage = t.stages[stage_at(t.stages, self.step)[0]]
            enter_stage(self.model, self.optimizer, stage, self.new_rows, t.weight_decay)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_langs = len(self.shards.langs)
        # [loss sum, tokens, loss per language, tokens per language]: one all-reduce, one host sync per step
        sums = torch.zeros(2 + 2 * n_langs, device=self.device)
        for micro in range(t.grad_accum):
            batch = next(self.loader)
            if self._dist.mesh is not None:  # FSDP: reduce-scatter gradients only after the last micro-batch
                cast("FSDPModule", self.model).set_requires_gradient_sync(micro == t.grad_accum - 1)
            ce, objective = self.forward(batch)
            langs = batch.langs.flatten().to(self.device)
            if (
                batch.loss_mask is not None
            ):  # SFT: only assistant targets count, in the loss and its statistics
                counted = batch.loss_mask.flatten().to(self.device)
                ce, objective, langs = ce[counted], objective[counted], langs[counted]
            (objective.mean() / t.grad_accum).backward()
            ce = ce.detach()
            sums[0] += ce.sum()
            sums[1] += ce.numel()
            sums[2 : 2 + n_langs].index_add_(0, langs, ce)
            sums[2 + n_langs :].index_add_(0, langs, torch.ones_like(ce))
        if t.stages and stage.trainable == "new_embeddings":
            assert self.new_rows is not None, "enter_stage refuses new_embeddings without new_rows"
            zero_old_row_grads(self.model, self.new_rows)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip or math.inf)
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP: the norm over every shard
            norm = norm.full_tensor()
        sums = all_reduce_sum(sums).cpu()
        loss, grad_norm = float(sums[0] / sums[1]), float(norm)
        record: dict[str, Any] = {"loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": int(sums[1])}
        reason = self._refuse(loss, grad_norm)
        if reason is None:
            self.optimizer.step()
            self.recent_losses = (self.recent_losses + [loss])[-SPIKE_WINDOW:]
        else:  # a NaN/inf or spiking step would poison the weights: skip it and say so
            self.skipped_steps += 1
            record["skipped"] = True
            log.warning("step %d: %s, update skipped", self.step, reason)
        self.optimizer.zero_grad(set_to_none=True)
        lang_loss, lang_count = sums[2 : 2 + n_langs], sums[2 + n_langs :]
        record["loss_by_lang"] = {
            lang: float(lang_loss[i] / lang_count[i])
            for i, lang in enumerate(self.shards.langs)
            if lang_count[i] > 0
        }
        return record

    def _refuse(self, loss: float, grad_norm: float) -> str | None:
        """Why this step must not update the weights, or None. Every rank sees the same reduced numbers,
        so every rank takes the same decision."""
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return f"non-finite loss {loss} / grad norm {grad_norm}"
        factor, recent = self.cfg.train.loss_spike_factor, self.recent_losses
        if factor and len(recent) >= 5 and loss > factor * sum(recent) / len(recent):
            return f"loss {loss:.3f} is over {factor}× the recent mean {sum(recent) / len(recent):.3f}"
        return None

    def _add_speed(self, record: dict[str, Any], seconds: float) -> None:
        """tokens/s over all ranks; MFU per device against the card's measured bf16 peak."""
        record.update(step=self.step, tokens_per_s=record["tokens"] / seconds)
        if self.peak_tflops:
            per_device = record["tokens_per_s"] / self._dist.world_size
            record["mfu"] = self.flops_per_token * per_device / (self.peak_tflops * 1e12)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token cross-entropy and training objective, each (B·T,)."""

        def to(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=self.device, non_blocking=True)

        doc_ids = to(batch.doc_ids) if batch.doc_ids is not None else None
        positions = to(batch.positions) if batch.positions is not None else None
        with self.autocast:
            logits = self.model(to(batch.inputs), positions=positions, doc_ids=doc_ids)
        return self.loss_fn(logits, to(batch.targets), self.cfg.train.z_loss)

    def evaluate(self) -> dict[str, float]:
        """Validation, then the benchmarks if train.eval_tasks names any."""
        scores = self.validate()
        if self.task_evaluator is not None:
            self.run_benchmarks()
        return scores

    def run_benchmarks(self) -> None:
        """Score the benchmarks on the main process. Under FSDP a forward needs every rank, so the full
        weights are gathered (a collective) into a plain copy on the main process first."""
        assert self.task_evaluator is not None, "evaluate() runs benchmarks only when a task_evaluator is set"
        model: Llama | None = self.model
        if self._dist.mesh is not None:
            weights = get_model_state_dict(self.model, options=_FULL_STATE)
            model = Llama(self.model_cfg) if self._dist.is_main else None
            if model is not None:
                model.load_state_dict(weights)
                model.to(self.device)
        if model is None:
            return  # other ranks wait for the main one in their next collective
        scores = self.task_evaluator(model)
        self.metrics.write({"step": self.step, "eval_tasks": scores})
        log.info("step %d: benchmarks %s", self.step, scores)

    def validate(self) -> dict[str, float]:
        if self.evaluator is not None:
            scores = self.evaluator(self.model)
            self.metrics.write({"step": self.step, "val_loss": scores})
            log.info("step %d: validation loss %s", self.step, {k: round(v, 3) for k, v in scores.items()})
            return scores
        e = self.cfg.eval
        bpb = evaluate_bpb(
            self.model,
            self.shards,
            "val",
            self.cfg.train.seq_len,
            e.batch_size,
            e.max_tokens_per_lang,
            self.device,
        )
        self.metrics.write({"step": self.step, "val_bpb": bpb})
        log.info("step %d: validation bits per byte %s", self.step, {k: round(v, 3) for k, v in bpb.items()})
        return bpb

    def save(self, wait: bool = True) -> Path:
        """Checkpoint the model, optimizer (sharded as they are), counters, loader and RNG states; with
        `wait=False` an asynchronous save goes on in the background while training continues."""
        trainer_state = {
            "step": self.step,
            "skipped_steps": self.skipped_steps,
            "recent_losses": self.recent_losses,
            "loader": self.loader.state_dict(),
        }
        meta = {
            "step": self.step,
            "config": to_dict(self.cfg),
            "model": to_dict(self.model_cfg),
            "shards": self.loader.fingerprint,
            "world_size": self._dist.world_size,
        }
        final = self.checkpoints.save(self.step, self.model, self.optimizer, trainer_state, meta)
        if wait:
            self.checkpoints.wait()
        return final

    def restore(self) -> None:
        """Continue from the newest usable checkpoint, if any, and cut the metrics log back to its step."""
        found = self.checkpoints.restore(self.model, self.optimizer, prepare=self._freeze_as_at)
        if found is not None:
            path, state = found
            self.loader.load_state_dict(state["loader"])  # refuses other shards or another global batch
            self.step, self.skipped_steps = state["step"], state["skipped_steps"]
            self.recent_losses = state["recent_losses"]
            log.info("resumed from %s at step %d", path, self.step)
        self.metrics.start(self.step)

    def _freeze_as_at(self, state: dict[str, Any]) -> None:
        """Before a checkpoint loads: its stage froze some parameters, which have no optimizer state."""
        stages = self.cfg.train.stages
        if stages:
            set_trainable(self.model, stages[stage_at(stages, state["step"])[0]].trainable)


def build_trainer(cfg: GeckoConfig, shards_dir: Path, out_dir: Path, dist: Dist | None = None) -> Trainer:
    t = cfg.train
    dist = dist or init_distributed(t.device)
    shards = Shards(shards_dir)
    model, model_cfg = build_model(cfg, shards.meta["vocab_size"], dist)
    loader = PackedLoader(
        shards,
        "train",
        t.seq_len,
        t.batch_size,
        cfg.seed,
        t.doc_mask,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    metrics = MetricsLog(out_dir / "metrics.jsonl", enabled=dist.is_main)
    peak = t.peak_tflops if t.peak_tflops is not None else measure_peak_tflops(dist.device)
    trainer = Trainer(
        cfg,
        out_dir,
        shards,
        dist.device,
        model,
        model_cfg,
        build_optimizer(cfg, model, dist.device),
        loader,
        metrics,
        dist=dist,
        peak_tflops=peak,
    )
    trainer.restore()
    return trainer


def _extension_rows(tokenizer_dir: Path | None, vocab_size: int) -> torch.Tensor | None:
    """The new-row mask when the run's tokenizer was made by `gecko tokenizer extend`, else None."""
    from gecko.tokens import EXTENSION_FILE, load_new_tokens

    if tokenizer_dir is None or not (Path(tokenizer_dir) / EXTENSION_FILE).is_file():
        return None
    return new_row_mask(vocab_size, load_new_tokens(tokenizer_dir)[0])


def run_train(
    cfg: GeckoConfig,
    shards_dir: Path,
    out_dir: Path,
    tokenizer_dir: Path | None = None,
    task_evaluator: Callable[[Llama], dict[str, dict[str, Any]]] | None = None,
) -> Path:
    """Train (or resume) and return the final checkpoint folder; under torchrun, on every rank.
    `tokenizer_dir` tells continued pretraining which rows are new; `task_evaluator` scores train.eval_tasks
    (the stage table passes gecko.eval's, so train does not import eval for it)."""
    try:
        trainer = build_trainer(cfg, shards_dir, out_dir)
        trainer.task_evaluator = task_evaluator
        trainer.new_rows = _extension_rows(tokenizer_dir, trainer.model_cfg.vocab_size)
        return trainer.train()
    finally:
        close_distributed()
