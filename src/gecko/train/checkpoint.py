"""Sharded, crash-safe training checkpoints on torch.distributed.checkpoint (DCP).

    RUN/train/checkpoints/step-000123/
        dcp/.metadata, dcp/__0_0.distcp …  weights and AdamW moments: each rank writes its own shard (DCP),
                                            and any number of ranks can read them back (resharding)
        rng/rank-00000.json                 each rank's Python, NumPy, torch and CUDA generator states
        trainer.json                        step, skipped steps, loss window, data-loader position
        meta.json                           format, config, model shape, shards fingerprint, world size
        COMPLETE                            written last: every other file with its size in bytes

A save writes `step-000123.partial/`, waits until every rank's shard is on disk, writes COMPLETE and only
then renames the folder: a process killed at any point leaves either a `.partial` folder (removed by the
next save) or a complete checkpoint. On GPU the save is asynchronous: the state is copied to host memory
(the only stall), and a background thread writes it while training goes on.

Nothing on a load path can run code: the JSON files are data; tensors are read by DCP with
`torch.load(weights_only=True)`; DCP's own `.metadata` file is a pickle, so it is read by an unpickler
that only knows DCP's metadata classes; and a checkpoint that asks DCP to unpickle an object is refused.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import random
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from gecko.errors import CheckpointError
from gecko.io.atomic import write_json
from gecko.model.llama import Llama, LlamaConfig

log = logging.getLogger(__name__)

FORMAT = "gecko-dcp-1"
COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


# ----------------------------------------------------------------------------------------------------
# Reading DCP without pickle


_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata",
        "MetadataIndex",
        "ChunkStorageMetadata",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "TensorProperties",
        "StorageMeta",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},  # looks a layout up by name
    "pathlib": {"Path", "PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "pathlib._local": {"Path", "PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
}
"""Everything DCP's `.metadata` pickle refers to (torch 2.6–2.13): plain dataclasses and an enum."""


class _MetadataUnpickler(pickle.Unpickler):
    """An unpickler that can build DCP's metadata and nothing else: any other global (os.system,
    builtins.eval, …) is refused before it is looked up, so a crafted `.metadata` cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and (name == "Size" or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        raise CheckpointError(
            f"DCP metadata refers to {module}.{name}, which is not a checkpoint metadata "
            "class; refusing to load it (a crafted checkpoint?)"
        )


class _SafeReader(FileSystemReader):
    """DCP's file reader with its `pickle.load` of `.metadata` replaced by `_MetadataUnpickler`."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        path = Path(self.path) / ".metadata"
        with path.open("rb") as f:
            metadata = _MetadataUnpickler(f).load()
        if type(metadata).__name__ != "Metadata":
            raise CheckpointError(f"{path}: holds a {type(metadata).__name__}, not DCP metadata")
        if getattr(metadata, "storage_meta", None) is not None:
            metadata.storage_meta.load_id = self.load_id
        return metadata


class _TensorsOnlyPlanner(DefaultLoadPlanner):
    """DCP stores non-tensor values pickled and loads them with `torch.load(weights_only=False)`. GECKO
    saves tensors only, so a checkpoint whose metadata declares such a value is refused instead."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        raise CheckpointError(
            f"{read_item.dest_index.fqn} is a pickled object; GECKO checkpoints hold tensors "
            "only (a crafted checkpoint?)"
        )


def _one_line(exc: BaseException) -> str:
    """The first line of the root cause: DCP wraps each rank's exception, with tracebacks, in one error."""
    failures = getattr(exc, "failures", None)  # torch.distributed.checkpoint.api.CheckpointException
    if failures:
        inner = next(iter(failures.values()))
        exc = getattr(inner, "exc", inner)  # _WrappedException keeps the original in .exc
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@contextmanager
def _single_process_is_intended() -> Iterator[None]:
    """DCP warns at every call without a process group that it assumes one process; that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="torch.distributed is disabled, unavailable or uninitialized"
        )
        yield


def load_tensors(path: Path, state: dict[str, Any]) -> None:
    """Fill `state` (a nested dict of tensors or DTensors, sharded however this run is) from the DCP folder
    `path`, in place. Collective when a process group exists; any failure becomes one CheckpointError."""
    try:
        with _single_process_is_intended():
            dcp.load(state, storage_reader=_SafeReader(path), planner=_TensorsOnlyPlanner())
    except (Exception, CheckpointException) as e:  # noqa: BLE001 - each kind means "unusable checkpoint"
        raise CheckpointError(f"{path}: {_one_line(e)}") from None


# ----------------------------------------------------------------------------------------------------
# RNG states as JSON


def rng_state() -> dict[str, Any]:
    """This process's generator states as JSON-safe lists (resume draws the same numbers)."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple), "the global RandomState is MT19937: legacy state is a tuple"
    name, keys, pos, has_gauss, cached = np_state
    state = {
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ----------------------------------------------------------------------------------------------------
# Folders


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders (`step-N`, complete or to be verified), oldest first; `.partial` and folders moved
    aside as corrupt are not listed."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def verify(path: Path) -> dict[str, Any]:
    """The checkpoint's meta.json, after checking that COMPLETE lists every file at its full size."""
    try:
        manifest = json.loads((path / COMPLETE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no {COMPLETE} marker (an interrupted save, or not a GECKO DCP checkpoint)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}/{COMPLETE}: unreadable ({e})") from None
    for name, size in manifest.get("files", {}).items():
        file = path / name
        found = file.stat().st_size if file.is_file() else None
        if found != size:
            raise CheckpointError(
                f"{file}: {'missing' if found is None else f'{found} bytes'}, "
                f"{COMPLETE} says {size} bytes (truncated or damaged)"
            )
    meta = _read_json(path / "meta.json")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}/meta.json: format {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        _SafeReader(path / "dcp").read_metadata()  # small; a clear message here, before DCP wraps it
    except CheckpointError as e:
        raise CheckpointError(f"{path}/dcp/.metadata: {e}") from None
    except Exception as e:  # noqa: BLE001 - garbage makes the unpickler fail in many ways
        raise CheckpointError(f"{path}/dcp/.metadata: unreadable ({type(e).__name__}: {e})") from None
    return meta


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)) + [root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_final_model(train_dir: Path) -> tuple[Llama, dict[str, Any]]:
    """The newest checkpoint of a training run as a plain CPU model (any number of ranks saved it), with
    its meta (step, config, shape). Export and eval never use an older step silently: a damaged newest
    checkpoint is an error."""
    found = list_checkpoints(train_dir / "checkpoints")
    if not found:
        raise CheckpointError(f"{train_dir}/checkpoints: no checkpoint; run `gecko train` first")
    meta = verify(found[-1])
    model = Llama(LlamaConfig(**meta["model"]))
    weights = model.state_dict()
    load_tensors(found[-1] / "dcp", {"model": weights})
    model.load_state_dict(weights)
    return model, meta


# ----------------------------------------------------------------------------------------------------
# Saving and restoring a run


def _layout(tree: Any, prefix: str = "") -> tuple[Any, ...]:
    """(path, shape, dtype) of every tensor in a nested state dict, in order."""
    if isinstance(tree, dict):
        return tuple(item for key in sorted(tree, key=str) for item in _layout(tree[key], f"{prefix}/{key}"))
    if isinstance(tree, torch.Tensor):
        return ((prefix, tuple(tree.shape), tree.dtype),)
    return ((prefix, type(tree).__name__),)


class CheckpointManager:
    """Saves and restores one run's checkpoints. Every rank makes the same calls; rank 0 alone renames,
    marks and prunes folders."""

    def __init__(self, root: Path, keep: int, rank: int = 0, async_save: bool = False) -> None:
        self.root, self.keep, self.rank, self.async_save = root, keep, rank, async_save
        # the background writer coordinates ranks over its own gloo group, never the training group
        self._group = dist.new_group(backend="gloo") if async_save and dist.is_initialized() else None
        self._writer: FileSystemWriter | None = None
        self._layout: tuple[Any, ...] = ()
        """The names, shapes and dtypes the writer's cached buffers were staged for."""
        self._pending: tuple[Future | None, Path, Path] | None = None

    def _writer_for(self, tensors: dict[str, Any]) -> FileSystemWriter:
        """The writer, new when the state's layout changed since the last save: its cached staging buffers
        must match the state exactly (torch raises CompanionMismatch), and the optimizer state grows when a
        train.stages stage unfreezes parameters."""
        layout = _layout(tensors)
        if self._writer is None or layout != self._layout:
            # reused across saves: on CUDA it keeps pinned host buffers, so staging is one fast copy
            cache = self.async_save and torch.cuda.is_available()
            self._writer = FileSystemWriter(self.root, cache_staged_state_dict=cache)
            self._layout = layout
        return self._writer

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        trainer_state: dict[str, Any],
        meta: dict[str, Any],
    ) -> Path:
        """Start writing `step-{step}`; it counts once `COMPLETE` is in it (now, or after `wait`/`poll` when
        saving asynchronously)."""
        self.wait()
        final = self.root / f"step-{step:06d}"
        if (final / COMPLETE).exists():  # resumed at the last step: this state is already on disk
            return final
        partial = final.with_name(final.name + ".partial")
        if self.rank == 0:
            for stale in self.root.glob("step-*.partial"):  # a killed save's leftovers; none is in flight
                shutil.rmtree(stale)
            partial.mkdir(parents=True)
        _barrier()
        write_json(partial / "rng" / f"rank-{self.rank:05d}.json", rng_state())
        tensors: dict[str, Any] = {"model": get_model_state_dict(model)}
        if optimizer.state:  # a fresh optimizer (an import at step 0) has no moments to save
            tensors["optim"] = get_optimizer_state_dict(model, optimizer)["state"]
        if self.rank == 0:
            write_json(partial / "trainer.json", trainer_state)
            write_json(
                partial / "meta.json",
                meta | {"format": FORMAT, "optimizer": "optim" in tensors, "torch": torch.__version__},
            )
        log.debug("%s: state files written", partial.name)
        if self.async_save:
            with _single_process_is_intended():
                future = dcp.async_save(
                    tensors,
                    checkpoint_id=partial / "dcp",
                    storage_writer=self._writer_for(tensors),
                    process_group=self._group,
                )
            assert isinstance(future, Future), (
                "staging is synchronous (default stager): async_save returns a Future"
            )
            self._pending = (future, partial, final)
        else:
            with _single_process_is_intended():
                dcp.save(tensors, checkpoint_id=partial / "dcp", storage_writer=self._writer_for(tensors))
            self._pending = (None, partial, final)
            self._finish()
            _barrier()  # every rank sees the complete folder
        return final

    def poll(self) -> None:
        """Finish a background save that has completed (cheap; called every step)."""
        if self._pending is not None and self._pending[0] is not None and self._pending[0].done():
            self._finish()

    def wait(self) -> None:
        """Block until a background save is written and marked complete."""
        if self._pending is not None:
            self._finish()

    def _finish(self) -> None:
        """Once every rank's shard is on disk (rank 0's DCP call returns only then): mark, rename, prune."""
        assert self._pending is not None, "a save is pending"
        future, partial, final = self._pending
        self._pending = None
        if future is not None:
            try:
                future.result()
            except (Exception, CheckpointException) as e:  # noqa: BLE001 - a failed write must stop the run
                raise CheckpointError(f"{partial}: saving failed: {_one_line(e)}") from None
        if self.rank != 0:
            return
        log.debug("%s: tensors written", partial.name)
        files = {
            p.relative_to(partial).as_posix(): p.stat().st_size
            for p in sorted(partial.rglob("*"))
            if p.is_file()
        }
        _fsync_tree(partial)
        write_json(partial / COMPLETE, {"files": files})
        log.debug("%s: marker written", partial.name)
        partial.rename(final)
        _fsync_dir(self.root)
        log.debug("%s: renamed", final.name)
        for old in list_checkpoints(self.root)[: -self.keep]:
            shutil.rmtree(old)
        log.info("checkpoint %s saved", final)

    def restore(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        prepare: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[Path, dict[str, Any]] | None:
        """Load the newest usable checkpoint into `model` and `optimizer` (resharded to this run's ranks);
        return its folder and trainer state, or None if there is none. An unusable one is reported in one
        line, moved aside as `step-N.corrupt` (kept for inspection) and the previous one is tried.
        `prepare(trainer_state)` runs before the tensors load (to freeze what that step had frozen)."""
        moved = []
        for path in reversed(list_checkpoints(self.root)):
            try:
                state = self._load(path, model, optimizer, prepare)
            except CheckpointError as e:
                moved.append(self._move_aside(path, str(e)))
                continue
            return path, state
        if moved:
            raise CheckpointError(
                f"{self.root}: no usable checkpoint (moved aside: "
                f"{', '.join(p.name for p in moved)}); run again to start from step 0"
            )
        return None

    def _load(
        self,
        path: Path,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        prepare: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        meta, trainer, rng, error = {}, {}, None, None
        try:
            meta = verify(path)
            trainer = _read_json(path / "trainer.json")
            rng_file = path / "rng" / f"rank-{self.rank:05d}.json"
            rng = _read_json(rng_file) if rng_file.exists() else None
        except CheckpointError as e:
            error = str(e)
        _agree(error)  # every rank takes the same branch, or the next collective would hang
        if prepare is not None:
            prepare(trainer)
        tensors: dict[str, Any] = {"model": get_model_state_dict(model)}
        if meta["optimizer"]:
            optim = get_optimizer_state_dict(model, optimizer)
            tensors["optim"] = optim["state"]
        load_tensors(path / "dcp", tensors)
        set_model_state_dict(model, tensors["model"])
        if meta["optimizer"]:
            set_optimizer_state_dict(model, optimizer, optim | {"state": tensors["optim"]})
        else:
            optimizer.state.clear()
        if rng is not None:
            set_rng_state(rng)
        else:
            log.info(
                "rank %d: no saved RNG state (saved by %d ranks); its generators keep their seeded start",
                self.rank,
                meta["world_size"],
            )
        return trainer

    def _move_aside(self, path: Path, reason: str) -> Path:
        _barrier()  # every rank picks the same free name before rank 0 takes it
        target = path.with_name(path.name + ".corrupt")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.corrupt{n}")
        if self.rank == 0:
            path.rename(target)
            log.warning("unusable checkpoint: %s; moved to %s, trying the previous one", reason, target.name)
        _barrier()
        return target


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _agree(error: str | None) -> None:
    """Raise the first rank's error on every rank if any rank had one."""
    errors = [error]
    if dist.is_initialized():
        errors = [None] * dist.get_world_size()
        dist.all_gather_object(errors, error)
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise CheckpointError(first)
