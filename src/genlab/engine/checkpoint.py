"""The run directory: ``run.json``, the atomic ``checkpoint/`` and ``final/``.

Layout of a run directory ``out/`` (see docs/engine.md)::

    run.json              model name + config, data source, TrainConfig, versions, seed, world size
    metrics.jsonl/.csv    one record per log_every steps (and validation / sample events)
    samples/step_XXXXXX.png
    checkpoint/           the latest checkpoint, replaced atomically
        config.json           \\ loadable by gl.load(out) (raw, non-EMA weights)
        model.safetensors     /
        ema.safetensors       EMA weights (when ema > 0)
        best.safetensors      the exported weights with the lowest validation loss (keep_best=True)
        optimizer.pt          optimiser states, loaded only with torch.load(weights_only=True)
        rng.safetensors       torch RNG state of every rank (uint8 tensors)
        trainer_state.json    step, data position, world size, size + sha256 of every file above;
                              written last, so its presence marks a complete checkpoint
    final/                save_pretrained of the exported (EMA, if on) model

Atomicity: a checkpoint is written into ``.checkpoint.tmp/`` and swapped in with two renames
(``checkpoint → .checkpoint.old``, ``.checkpoint.tmp → checkpoint``); a crash between them leaves
``.checkpoint.old`` complete, and :func:`find_checkpoint` recovers it. Nothing is unpickled: weights
and RNG states are safetensors, the optimiser file is read with ``weights_only=True``.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..models.io import (CONFIG_NAME, WEIGHTS_NAME, CheckpointError, atomic_write_bytes, file_sha256,
                         load_safetensors, read_json, save_model, state_to_safetensors_bytes)

CHECKPOINT = "checkpoint"
FINAL = "final"
RUN_JSON = "run.json"
STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.pt"
EMA_NAME = "ema.safetensors"
RNG_NAME = "rng.safetensors"
BEST_NAME = "best.safetensors"
_TMP, _OLD = ".checkpoint.tmp", ".checkpoint.old"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(out: Path, model, optimizers: dict[str, dict], ema_state: dict[str, torch.Tensor] | None,
                    rng: dict[str, torch.Tensor], state: dict[str, Any],
                    best_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a complete checkpoint into ``out/checkpoint`` atomically (main process only)."""
    out = Path(out)
    tmp, old, final = out / _TMP, out / _OLD, out / CHECKPOINT
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(model, tmp)
    buf = io.BytesIO()
    torch.save(optimizers, buf)
    atomic_write_bytes(tmp / OPTIMIZER_NAME, buf.getvalue())
    if ema_state is not None:
        atomic_write_bytes(tmp / EMA_NAME, state_to_safetensors_bytes(ema_state))
    atomic_write_bytes(tmp / RNG_NAME, state_to_safetensors_bytes(rng))
    if best_state is not None:
        atomic_write_bytes(tmp / BEST_NAME, state_to_safetensors_bytes(best_state))
    files = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(tmp.iterdir())}
    atomic_write_bytes(tmp / STATE_NAME, json.dumps({**state, "files": files}, indent=2).encode())
    _fsync_dir(tmp)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(out)
    if old.exists():
        shutil.rmtree(old)
    return final


def find_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint folder of run ``out``, or None. Recovers an interrupted swap."""
    out = Path(out)
    final, old = out / CHECKPOINT, out / _OLD
    if (final / STATE_NAME).is_file():
        return final
    if (old / STATE_NAME).is_file():   # crashed between the two renames: the old one is complete
        return old
    if final.exists():
        raise CheckpointError(f"{final} is incomplete (no {STATE_NAME}); delete it to start over")
    return None


def verify_checkpoint(ckpt: Path) -> dict[str, Any]:
    """Read trainer_state.json and check every file's size and sha256; CheckpointError names a bad file."""
    state = read_json(ckpt / STATE_NAME)
    for name, meta in state.get("files", {}).items():
        p = ckpt / name
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {p} is missing; delete {ckpt} to start over")
        size = p.stat().st_size
        if size != meta["bytes"]:
            raise CheckpointError(f"checkpoint file {p} is truncated or corrupt ({size} bytes, expected "
                                  f"{meta['bytes']}); delete {ckpt} to start over")
        if file_sha256(p) != meta["sha256"]:
            raise CheckpointError(f"checkpoint file {p} is corrupt (sha256 differs from the one recorded in "
                                  f"{STATE_NAME}); delete {ckpt} to start over")
    return state


def load_optimizers(path: Path) -> dict[str, dict]:
    """Optimiser states, unpickled with ``weights_only=True`` only (tensors, numbers, lists, dicts)."""
    if not path.is_file():
        raise CheckpointError(f"optimizer file not found: {path}")
    try:
        states = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle opcode, disallowed global
        raise CheckpointError(f"cannot read optimizer file {path}: it is corrupt or truncated "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(states, dict):
        raise CheckpointError(f"optimizer file {path} does not hold a dict of optimizer states")
    return states


def load_checkpoint(ckpt: Path, device="cpu") -> dict[str, Any]:
    """Everything in a checkpoint: ``state``, ``model`` (state dict), ``optimizers``, ``ema``, ``rng``."""
    state = verify_checkpoint(ckpt)
    read_json(ckpt / CONFIG_NAME)
    return {
        "state": state,
        "model": load_safetensors(ckpt / WEIGHTS_NAME, device=device),
        "optimizers": load_optimizers(ckpt / OPTIMIZER_NAME),
        "ema": load_safetensors(ckpt / EMA_NAME, device=device) if (ckpt / EMA_NAME).is_file() else None,
        "rng": load_safetensors(ckpt / RNG_NAME) if (ckpt / RNG_NAME).is_file() else {},
        "best": load_safetensors(ckpt / BEST_NAME, device=device) if (ckpt / BEST_NAME).is_file() else None,
    }


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(Path(path), json.dumps(data, indent=2, default=str).encode())


def config_differences(saved: dict, now: dict) -> list[str]:
    """Human-readable differences between two ``model.config_dict()`` results."""
    diffs = []
    if saved.get("genlab_model") != now.get("genlab_model"):
        diffs.append(f"model: run has {saved.get('genlab_model')!r}, now {now.get('genlab_model')!r}")
    for part in ("config", "info"):
        a, b = saved.get(part, {}) or {}, json.loads(json.dumps(now.get(part, {}) or {}))
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                diffs.append(f"{'' if part == 'config' else 'data '}{k}: run has {a.get(k)!r}, now {b.get(k)!r}")
    return diffs


__all__ = ["CHECKPOINT", "FINAL", "RUN_JSON", "CheckpointError", "save_checkpoint", "find_checkpoint",
           "verify_checkpoint", "load_checkpoint", "load_optimizers", "write_json", "config_differences"]
