"""The training loop, top to bottom: build → restore → (step → log → evaluate → checkpoint)* → close.

Single process on CPU or one GPU. Everything a resume needs (weights, optimizer, step, loader position,
RNG states) goes into each checkpoint, so a run killed at any point continues with bitwise-equal losses.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gecko.config import GeckoConfig, to_dict
from gecko.eval.bpb import evaluate_bpb
from gecko.model.llama import Llama, LlamaConfig
from gecko.model.presets import build_llama_config
from gecko.tokenizer.shards import Shards
from gecko.train import checkpoint as ckpt
from gecko.train.loader import Batch, PackedLoader
from gecko.train.metrics import MetricsLog, plot_loss, read_metrics
from gecko.train.schedule import lr_multiplier

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: GeckoConfig, vocab_size: int, device: torch.device) -> tuple[Llama, LlamaConfig]:
    model_cfg = build_llama_config(cfg.model, vocab_size)
    if model_cfg.max_seq_len < cfg.train.seq_len:
        model_cfg = dataclasses.replace(model_cfg, max_seq_len=cfg.train.seq_len)
    torch.manual_seed(cfg.seed)
    model = Llama(model_cfg)
    model.init_weights()
    return model.to(device), model_cfg


def build_optimizer(cfg: GeckoConfig, model: Llama, device: torch.device) -> torch.optim.AdamW:
    t = cfg.train
    return torch.optim.AdamW(model.param_groups(t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2),
                             fused=device.type == "cuda")


@dataclass
class Trainer:
    cfg: GeckoConfig
    out_dir: Path
    shards: Shards
    device: torch.device
    model: Llama
    model_cfg: LlamaConfig
    optimizer: torch.optim.Optimizer
    loader: PackedLoader
    metrics: MetricsLog
    step: int = 0
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def train(self) -> Path:
        t = self.cfg.train
        if self.step == 0:
            self.evaluate()
        progress = Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
        with progress:
            task = progress.add_task("train", total=t.steps, completed=self.step, info="")
            while self.step < t.steps:
                started = time.perf_counter()
                record = self.train_step()
                self.step += 1
                record.update(step=self.step, tokens_per_s=record["tokens"] / (time.perf_counter() - started))
                if self.step % t.log_every == 0 or self.step == t.steps:
                    self.metrics.write(record)
                progress.update(task, completed=self.step, info=f"loss {record['loss']:.3f}")
                if t.eval_every and self.step % t.eval_every == 0 and self.step < t.steps:
                    self.evaluate()
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 and self.step < t.steps:
                    self.save()
        self.evaluate()
        final = self.save()
        self.metrics.close()
        plot_loss(read_metrics(self.metrics.path), self.out_dir / "loss.png")
        return final

    def train_step(self) -> dict[str, Any]:
        t = self.cfg.train
        lr = t.lr * lr_multiplier(self.step, t.steps, t.warmup_steps, t.schedule, t.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum, tokens = 0.0, 0
        lang_loss = torch.zeros(len(self.shards.langs))
        lang_count = torch.zeros(len(self.shards.langs))
        for _ in range(t.grad_accum):
            batch = next(self.loader)
            per_token = self.forward(batch)
            (per_token.mean() / t.grad_accum).backward()
            per_token = per_token.detach()
            loss_sum += float(per_token.mean()) / t.grad_accum
            tokens += batch.targets.numel()
            langs = batch.langs.flatten()
            lang_loss.index_add_(0, langs, per_token.float().cpu())
            lang_count.index_add_(0, langs, torch.ones_like(langs, dtype=torch.float32))
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip or math.inf)
        record = {"loss": loss_sum, "lr": lr, "grad_norm": float(grad_norm), "tokens": tokens}
        if math.isfinite(loss_sum) and math.isfinite(float(grad_norm)):
            self.optimizer.step()
        else:  # a NaN/inf step would poison the weights: skip it and say so
            self.skipped_steps += 1
            record["skipped"] = True
            log.warning("step %d: non-finite loss %s / grad norm %s, update skipped", self.step, loss_sum, grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        record["loss_by_lang"] = {lang: float(lang_loss[i] / lang_count[i])
                                  for i, lang in enumerate(self.shards.langs) if lang_count[i] > 0}
        return record

    def forward(self, batch: Batch) -> torch.Tensor:
        """Per-token cross-entropy, shape (B·T,)."""
        to = {"device": self.device, "non_blocking": True}
        doc_ids = batch.doc_ids.to(**to) if batch.doc_ids is not None else None
        positions = batch.positions.to(**to) if batch.positions is not None else None
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.dtype == "bfloat16")
        with autocast:
            logits = self.model(batch.inputs.to(**to), positions=positions, doc_ids=doc_ids)
        return F.cross_entropy(logits.float().flatten(0, 1), batch.targets.to(**to).flatten(), reduction="none")

    def evaluate(self) -> dict[str, float]:
        e = self.cfg.eval
        bpb = evaluate_bpb(self.model, self.shards, "val", self.cfg.train.seq_len, e.batch_size,
                           e.max_tokens_per_lang, self.device)
        self.metrics.write({"step": self.step, "val_bpb": bpb})
        log.info("step %d: validation bits per byte %s", self.step, {k: round(v, 3) for k, v in bpb.items()})
        return bpb

    def save(self) -> Path:
        state = {"optimizer": self.optimizer.state_dict(), "step": self.step, "skipped_steps": self.skipped_steps,
                 "loader": self.loader.state_dict(), "rng": ckpt.rng_state()}
        meta = {"step": self.step, "config": to_dict(self.cfg), "model": to_dict(self.model_cfg),
                "shards": self.loader.fingerprint}
        return ckpt.save_checkpoint(self.checkpoint_dir, self.step, self.model, state, meta,
                                    self.cfg.train.keep_checkpoints)

    def restore(self) -> None:
        """Continue from the newest complete checkpoint, if any."""
        found = ckpt.list_checkpoints(self.checkpoint_dir)
        if not found:
            return
        ckpt.load_weights(found[-1], self.model)
        state = ckpt.load_train_state(found[-1])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.step, self.skipped_steps = state["step"], state["skipped_steps"]
        ckpt.set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", found[-1], self.step)


def build_trainer(cfg: GeckoConfig, shards_dir: Path, out_dir: Path) -> Trainer:
    device = pick_device(cfg.train.device)
    shards = Shards(shards_dir)
    model, model_cfg = build_model(cfg, shards.meta["vocab_size"], device)
    loader = PackedLoader(shards, "train", cfg.train.seq_len, cfg.train.batch_size, cfg.seed, cfg.train.doc_mask)
    resume = bool(ckpt.list_checkpoints(out_dir / "checkpoints"))
    trainer = Trainer(cfg, out_dir, shards, device, model, model_cfg, build_optimizer(cfg, model, device), loader,
                      MetricsLog(out_dir / "metrics.jsonl", resume=resume))
    trainer.restore()
    return trainer


def run_train(cfg: GeckoConfig, shards_dir: Path, out_dir: Path) -> Path:
    """Train (or resume) and return the final checkpoint folder."""
    return build_trainer(cfg, shards_dir, out_dir).train()
