"""Saving and loading models: ``config.json`` + ``model.safetensors``; nothing is unpickled."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from ..data.base import DataInfo
from .base import GenerativeModel, ModelError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ModelError):
    """A weights or config file is missing, corrupt, truncated or belongs to something else."""


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def state_to_safetensors_bytes(state: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    from safetensors.torch import save
    # safetensors refuses shared storage; contiguous clones make every tensor its own.
    return save({k: v.detach().contiguous().clone().cpu() for k, v in state.items()}, metadata=metadata)


def load_safetensors(path: Path, device="cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises several error types for bad headers / truncation
        raise CheckpointError(f"cannot read weights file {path}: it is corrupt, truncated or not a "
                              f"safetensors file ({type(e).__name__}: {e})") from None


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot parse {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def save_model(model: GenerativeModel, path, state_dict: dict | None = None) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    from .. import __version__
    cfg = model.config_dict()
    cfg["genlab_version"] = __version__
    atomic_write_bytes(path / WEIGHTS_NAME, state_to_safetensors_bytes(
        state_dict if state_dict is not None else model.state_dict(), metadata={"genlab_model": model.name}))
    atomic_write_bytes(path / CONFIG_NAME, json.dumps(cfg, indent=2).encode())


def resolve_model_dir(path) -> Path:
    """A model folder, or a run directory (its ``final/``, else its latest ``checkpoint/``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such file or folder: {path}")
    if path.is_file():
        path = path.parent
    for cand in (path, path / "final", path / "checkpoint"):
        if (cand / CONFIG_NAME).is_file():
            return cand
    raise CheckpointError(f"{path} is not a genlab model folder or run directory "
                          f"(no {CONFIG_NAME} in it, in final/ or in checkpoint/)")


def model_from_config(cfg: dict, source: str = "config") -> GenerativeModel:
    from .registry import model_class
    if "genlab_model" not in cfg or "info" not in cfg:
        raise CheckpointError(f"{source} is not a genlab model config (no 'genlab_model'/'info' keys)")
    cls = model_class(cfg["genlab_model"])
    info = DataInfo.from_dict(cfg["info"])
    base = cls.default_config(info)
    known = {f.name for f in dataclasses.fields(base)}
    values = {k: (tuple(v) if isinstance(v, list) and isinstance(getattr(base, k), tuple) else v)
              for k, v in cfg.get("config", {}).items() if k in known}
    return cls(info, dataclasses.replace(base, **values))


def load_model(path, map_location="cpu") -> GenerativeModel:
    d = resolve_model_dir(path)
    cfg = read_json(d / CONFIG_NAME)
    model = model_from_config(cfg, source=str(d / CONFIG_NAME))
    state = load_safetensors(d / WEIGHTS_NAME, device=map_location)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {d / WEIGHTS_NAME} do not fit a {cfg['genlab_model']} with this "
                              f"config: {str(e).splitlines()[0]}") from None
    model.to(map_location)
    model.eval()
    return model


def load_stage(path, embedded_config: str, source: str) -> tuple[GenerativeModel, str]:
    """The frozen first stage of a two-stage hybrid (a VAE under latent diffusion, a VQ-VAE under a
    learned prior). The first time it is loaded from ``path``; its config is then embedded as JSON in
    the hybrid's own Config, so a saved hybrid rebuilds from its config and state_dict alone.
    Returns ``(model, embedded_config)``."""
    if embedded_config:
        return model_from_config(json.loads(embedded_config), source=source), embedded_config
    model = load_model(path)
    return model, json.dumps(model.config_dict())
