"""The one training loop for every genlab family, built on Hugging Face Accelerate.

``train(model, data, steps=N, out=DIR, val=VAL, resume=False, **TrainConfig fields) -> Run``

One *step* runs every phase of ``model.phases()`` in order, each ``phase.repeats`` times (one batch
and one optimiser update per repeat); most families have a single ``main`` phase, a WGAN has
``critic`` ×5 then ``generator`` ×1. The loss is ``model(batch, phase=name)`` called through the
Accelerate-wrapped model (so DistributedDataParallel's gradient hooks fire), a scalar or a dict
with ``"loss"``. Every gradient of the model is cleared before each update, and only the phase's
optimiser steps, so a phase changes only its own parameters.

Determinism: the b-th batch drawn (b = step·Σrepeats + k) is slice ``b mod E`` of the permutation
of epoch ``b div E`` (E batches per epoch), generated from ``(seed, epoch)``; with W processes
rank r takes the r-th of W equal parts of that global batch. So the step number alone fixes the
data, and a checkpoint only needs the step, the weights, the optimiser and EMA states, and the
torch RNG state of each rank (for the families' own noise). Validation and sample pictures run
under a forked RNG, so they never change the training trajectory.

See docs/engine.md for the run directory, resume, multi-GPU/multi-node launch, threads, bf16, EMA.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import Dataset
from ..models.base import GenerativeModel, ModelError, Phase
from ..models.io import CheckpointError, save_model
from . import checkpoint as ck
from .ema import EMA
from .logger import MetricsLogger, read_history


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite losses, a run directory in the way, a bad resume)."""


@dataclass
class TrainConfig:
    """Settings of the training loop (every field is a keyword of ``gl.train`` / a CLI ``key=value``).

    batch_size is the GLOBAL batch: with W processes each takes batch_size / W examples.
    threads: torch CPU threads per process during training (restored afterwards); 1 by default,
    measured in benchmarks/results/engine.md: on these shared 2-core machines 1 thread is as fast
    as 2 for small models and does not collapse when another process is busy. ``None`` = leave as is.
    eval_every / sample_every: 0 = only at the end, -1 = never. checkpoint_every: 0 = only at the end.
    ema: decay d of θ̄ ← dₙ·θ̄ + (1−dₙ)·θ after every step n (0 = off); the exported model (final/,
    ``Run.model``) then carries the EMA weights, checkpoint/ keeps the raw ones for resuming.
    ema_warmup: dₙ = min(d, (1+n)/(10+n)) (default) so the average forgets the random initial weights;
    False gives dₙ = d from the first step (engine/ema.py).
    precision: "fp32" or "bf16" (autocast of the loss computation; weights and optimiser stay fp32).
    device: "auto" (a GPU when Accelerate finds one), "cpu" or "cuda".
    overwrite: allow starting afresh in an ``out`` that already holds a run (its files are replaced).
    keep_best: early stopping without stopping: needs ``val=`` and a single-phase model; after every
    validation the exported weights (EMA ones when ema > 0) with the lowest validation loss so far are
    kept (in memory and in checkpoint/best.safetensors, so a resumed run keeps them too), and at the
    end the model, final/ and ``Run.model`` carry them; ``Run.best_step`` / ``Run.best_val_loss`` say
    which. Use it with ``eval_every`` > 0 on small data sets that a long run overfits.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0
    warmup: int = 0                     # linear LR warm-up steps
    schedule: str = "constant"          # constant | cosine (to 0 at the last step, after warm-up)
    seed: int = 0
    ema: float = 0.0                    # EMA decay; 0 = off
    ema_warmup: bool = True             # decay min(ema, (1+n)/(10+n)) at step n
    threads: int | None = 1
    precision: str = "fp32"             # fp32 | bf16
    device: str = "auto"                # auto | cpu | cuda
    eval_every: int = 0                 # validation loss every N steps (0 = only at the end, -1 = never)
    sample_every: int = 0               # sample picture every N steps (0 = only at the end, -1 = never)
    num_samples: int | None = None      # samples per picture (default 64 images / 1000 points / 8 sequences)
    checkpoint_every: int = 500         # 0 = only at the end
    log_every: int = 50
    progress: bool = True
    max_nonfinite: int = 10             # abort after this many consecutive non-finite updates
    tensorboard: bool = False
    overwrite: bool = False
    keep_best: bool = False             # export the weights with the lowest validation loss

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not (self.ema == 0 or 0 < self.ema < 1):
            raise ValueError(f"ema must be 0 (off) or a decay in (0, 1), got {self.ema}")
        if self.max_nonfinite < 1:
            raise ValueError(f"max_nonfinite must be >= 1, got {self.max_nonfinite}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")


@dataclass
class Run:
    """What ``train`` returns: the trained (unwrapped; EMA weights if ema > 0) model and its record."""

    model: GenerativeModel
    config: TrainConfig
    out: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    wall_time: float = 0.0              # seconds spent in this call's training loop
    steps_per_s: float = 0.0            # steps this call trained / wall_time
    best_step: int | None = None        # keep_best: the step whose weights the model carries
    best_val_loss: float | None = None  # keep_best: their validation loss

    @property
    def final_loss(self) -> float:
        for r in reversed(self.history):
            if "loss" in r:
                return r["loss"]
        return math.nan


# ---- data order -----------------------------------------------------------------------------------

def seed_for(*ints: int) -> int:
    """A well-mixed 63-bit seed from a tuple of integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(i) & 0xFFFFFFFF for i in ints]).generate_state(2, np.uint64)[0] >> 1)


class BatchOrder:
    """Batch b (counting from 0 over the whole run) = part ``rank`` of the W equal parts of slice
    ``b mod E`` of the epoch-``b div E`` permutation of range(n), seeded by (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.batch_size = min(batch_size, n)
        self.per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, None

    def epoch_perm(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, 0x5EED, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm

    def indices(self, b: int) -> torch.Tensor:
        epoch, k = divmod(b, self.per_epoch)
        glob = self.epoch_perm(epoch)[k * self.batch_size:(k + 1) * self.batch_size]
        return torch.tensor_split(glob, self.world)[self.rank]

    def position(self, b: int) -> dict[str, int]:
        return {"batches_drawn": b, "epoch": b // self.per_epoch, "batch_in_epoch": b % self.per_epoch}


def batch_at(data: Dataset, idx: torch.Tensor, device=None) -> dict[str, torch.Tensor]:
    b = {"x": data.x[idx]}
    if data.y is not None:
        b["y"] = data.y[idx]
    if device is not None:
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
    return b


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then constant or cosine decay to 0 at ``steps``."""
    if cfg.warmup and step <= cfg.warmup:
        return step / cfg.warmup
    if cfg.schedule == "cosine":
        span = max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup) / span)))
    return 1.0


def _split_loss(out) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, dict):
        if "loss" not in out:
            raise ModelError(f"the model's loss returned a dict without a 'loss' entry (keys: {list(out)})")
        return out["loss"], {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in out.items()
                             if k != "loss" and (isinstance(v, (int, float)) or
                                                 (isinstance(v, torch.Tensor) and v.numel() == 1))}
    return out, {}


# ---- helpers run on the main process ----------------------------------------------------------------

def _phase_losses(module: GenerativeModel, batch, phases: list[Phase]) -> dict[str, float]:
    out = {}
    for ph in phases:
        try:
            with torch.no_grad():
                loss, _ = _split_loss(module(batch, phase=ph.name))
        except RuntimeError:          # losses that need autograd inside (gradient penalty, score matching)
            with torch.enable_grad():
                loss, _ = _split_loss(module(batch, phase=ph.name))
        out[ph.name] = float(loss.detach())
    return out


def validation_loss(module: GenerativeModel, val: Dataset, phases: list[Phase], cfg: TrainConfig,
                    device) -> dict[str, float]:
    """Mean loss over the whole ``val`` set in batches of ``batch_size`` (model.eval(), no grad,
    a fixed seed for the loss's own noise so successive evaluations are comparable)."""
    was = module.training
    module.eval()
    sums: dict[str, float] = {}
    n = len(val)
    with torch.random.fork_rng(devices=[]), _fork_cuda_rng(device):
        torch.manual_seed(seed_for(cfg.seed, 0xE7A1))
        for i in range(0, n, cfg.batch_size):
            idx = torch.arange(i, min(n, i + cfg.batch_size))
            with _autocast(device, cfg):
                losses = _phase_losses(module, batch_at(val, idx, device), phases)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
    module.train(was)
    if len(phases) == 1:
        return {"val_loss": sums[phases[0].name] / n}
    return {f"val_loss/{k}": v / n for k, v in sums.items()}


def save_sample_picture(module: GenerativeModel, data: Dataset, cfg: TrainConfig, path: Path, device) -> bool:
    """Draw ``num_samples`` samples with a generator seeded by ``seed`` (the same noise every time,
    so pictures along a run are comparable) and save them with ``genlab.data.plot.save_samples``."""
    try:
        from ..data.plot import save_samples
    except ImportError:
        return False
    info = module.info
    n = cfg.num_samples or {"image": 64, "vector": 1000}.get(info.modality, 8)
    cond = None
    if not getattr(module, "conditional_ok", False):
        pass  # an unconditional model of labelled data: sample without conditions
    elif info.cond == "label":
        cond = torch.arange(n, device=device) % info.num_classes
    elif info.cond == "continuous" and data.y is not None:
        cond = data.y[torch.arange(n) % len(data)].to(device)
    was = module.training
    module.eval()
    try:
        with torch.random.fork_rng(devices=[]), _fork_cuda_rng(device):
            gen = torch.Generator(device=device).manual_seed(seed_for(cfg.seed, 0x5A3))
            x = module.sample(n, cond=cond, generator=gen)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_samples(x.detach().cpu(), info, path, cond=None if cond is None else cond.cpu(),
                     title=f"{module.name}, {path.stem.replace('_', ' ')}")
        return True
    finally:
        module.train(was)


def _fork_cuda_rng(device):
    if torch.device(device).type == "cuda":
        return torch.random.fork_rng(devices=[torch.device(device)])
    return contextlib.nullcontext()


def _autocast(device, cfg: TrainConfig):
    if cfg.precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _prepare_out(out: Path, resume: bool, overwrite: bool, model: GenerativeModel) -> Path | None:
    """Checks (every rank; read-only) before the main process touches ``out``; returns the checkpoint
    to resume from, or None."""
    existing = (out / ck.CHECKPOINT).exists() or (out / ck.FINAL).exists() or (out / ".checkpoint.old").exists()
    if resume:
        if (out / ck.RUN_JSON).is_file():
            saved = ck.read_json(out / ck.RUN_JSON).get("model", {})
            diffs = ck.config_differences(saved, model.config_dict())
            if diffs:
                raise TrainingError(
                    f"cannot resume {out}: the model differs from the one this run was started with "
                    f"({'; '.join(diffs)}). Create the model with the run's options (see {out / ck.RUN_JSON}), "
                    f"or train into a new out directory.")
        return ck.find_checkpoint(out)
    if existing and not overwrite:
        raise TrainingError(f"{out} already holds a run (checkpoint/ or final/). Pass resume=True (CLI: --resume) "
                            f"to continue it, overwrite=True to start it afresh, or choose another out directory.")
    return None


def _clear_run_files(out: Path) -> None:
    for name in (ck.CHECKPOINT, ck.FINAL, ".checkpoint.old", ".checkpoint.tmp", "samples", "tensorboard"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in ("metrics.jsonl", "metrics.csv", ck.RUN_JSON):
        if (out / name).exists():
            (out / name).unlink()


def _rng_state(device) -> dict[str, torch.Tensor]:
    st = {"torch": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return st


# ---- the loop ----------------------------------------------------------------------------------------

def train(model: GenerativeModel, data: Dataset, *, steps: int = 2000, out=None, val: Dataset | None = None,
          resume: bool = False, **kwargs) -> Run:
    """Train ``model`` on ``data`` for ``steps`` steps; keywords are :class:`TrainConfig` fields.

    With ``out``, the run directory gets run.json, metrics.jsonl/.csv, sample pictures, an atomic
    checkpoint/ every ``checkpoint_every`` steps and final/ (``gl.load(out)`` loads it).
    ``resume=True`` continues from out/checkpoint (or starts afresh if there is none yet); the
    resumed run equals an uninterrupted one with the same seed.
    Runs unchanged under ``torchrun`` / ``accelerate launch`` (DistributedDataParallel).
    """
    if not isinstance(model, GenerativeModel):
        raise TypeError(f"train() needs a genlab GenerativeModel, got {type(model).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"train() needs a genlab Dataset as data, got {type(data).__name__} "
                        "(wrap arrays with gl.load_dataset(array))")
    unknown = set(kwargs) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        import difflib
        hints = [k + (f" (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(k, [f.name for f in dataclasses.fields(TrainConfig)], 1)) else "")
                 for k in sorted(unknown)]
        raise TypeError(f"unknown training option(s): {', '.join(hints)}")
    defaults = dict(getattr(model, "train_defaults", {}) or {})
    bad = set(defaults) - {f.name for f in dataclasses.fields(TrainConfig)}
    if bad:
        raise ModelError(f"{type(model).__name__}.train_defaults names unknown training options {sorted(bad)}")
    cfg = TrainConfig(steps=steps, **{**defaults, **kwargs})
    if cfg.keep_best:
        if val is None:
            raise TrainingError("keep_best=True needs validation data: pass val=")
        if cfg.eval_every < 0:
            raise TrainingError("keep_best=True needs validation: eval_every must be >= 0 (e.g. 100)")
        n_phases = len(list(model.phases()))
        if n_phases != 1:
            raise TrainingError(f"keep_best=True needs a single-phase model; {model.name} trains "
                                f"{n_phases} phases whose losses do not measure fit")
    if len(data) == 0:
        raise TrainingError("the training data set is empty")
    if data.info != model.info and tuple(data.info.shape) != tuple(model.info.shape):
        raise TrainingError(f"data shape {data.info.shape} does not match the model's {model.info.shape}")
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(model, data, cfg, Path(out) if out is not None else None, val, resume)
    finally:
        if cfg.threads:
            torch.set_num_threads(old_threads)


def _train(model: GenerativeModel, data: Dataset, cfg: TrainConfig, out: Path | None, val: Dataset | None,
           resume: bool) -> Run:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, gather_object

    phases = [dataclasses.replace(ph, params=list(ph.params)) for ph in model.phases()]  # iterators → lists
    if not phases:
        raise ModelError(f"{model.name}.phases() returned no phases")
    for ph in phases:
        if ph.repeats < 1:
            raise ModelError(f"phase {ph.name!r} of {model.name} has repeats={ph.repeats}; it must be >= 1")
        if not ph.params:
            raise ModelError(f"phase {ph.name!r} of {model.name} has no parameters to train")

    cpu = cfg.device == "cpu" or not torch.cuda.is_available()
    if cfg.device == "cuda" and cpu:
        raise TrainingError("device='cuda' but torch finds no CUDA GPU; use device='auto' or 'cpu'")
    acc = Accelerator(cpu=cpu, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=len(phases) > 1)])
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    device = acc.device

    ckpt_dir = _prepare_out(out, resume, cfg.overwrite, model) if out is not None else None
    acc.wait_for_everyone()
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and cfg.overwrite:
            _clear_run_files(out)
    acc.wait_for_everyone()

    order = BatchOrder(len(data), cfg.batch_size, cfg.seed, rank, world)
    if order.batch_size < world:
        raise TrainingError(f"batch_size {order.batch_size} is smaller than the number of processes ({world})")
    if order.batch_size % world:
        warnings.warn(f"batch_size {order.batch_size} is not divisible by {world} processes: the ranks' "
                      "batches differ in size by one", stacklevel=3)
    draws_per_step = sum(ph.repeats for ph in phases)

    # optimisers: one AdamW per phase (its own lr / betas / weight decay, else the trainer's)
    opts = [torch.optim.AdamW(ph.params, lr=ph.lr if ph.lr is not None else cfg.lr,
                              betas=tuple(ph.betas) if ph.betas is not None else cfg.betas,
                              weight_decay=cfg.weight_decay if ph.weight_decay is None else ph.weight_decay)
            for ph in phases]
    model.train()
    # Only the model is prepared (device, DDP). The optimisers stay plain torch ones: Accelerate's
    # wrapper adds nothing without fp16 scaling / accumulation / XLA, and costs ~1 ms per step.
    wrapped = acc.prepare(model)
    module: GenerativeModel = acc.unwrap_model(wrapped)
    base_lrs = [[g["lr"] for g in o.param_groups] for o in opts]
    ema = EMA(module, cfg.ema, cfg.ema_warmup) if cfg.ema else None

    # ---- start or resume ----
    start, history = 0, []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None     # (val loss, step, exported weights)
    if ckpt_dir is not None:
        ckpt = ck.load_checkpoint(ckpt_dir, device=device)
        st = ckpt["state"]
        names = [ph.name for ph in phases]
        if st.get("phases", names) != names:
            raise TrainingError(f"cannot resume: the checkpoint has phases {st.get('phases')}, the model {names}")
        try:
            module.load_state_dict(ckpt["model"], strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"weights in {ckpt_dir} do not fit this model: {str(e).splitlines()[0]}") from None
        for ph, o in zip(phases, opts):
            if ph.name not in ckpt["optimizers"]:
                raise CheckpointError(f"{ckpt_dir / ck.OPTIMIZER_NAME} has no state for phase {ph.name!r}")
            o.load_state_dict(ckpt["optimizers"][ph.name])
        if ema is not None:
            if ckpt["ema"] is None:
                warnings.warn(f"{ckpt_dir} has no EMA weights; the EMA restarts from the current weights")
                ema = EMA(module, cfg.ema, cfg.ema_warmup)
            else:
                ema.load_state_dict(ckpt["ema"])
        start = int(st["step"])
        if cfg.keep_best and st.get("best_step") is not None and ckpt.get("best") is not None:
            best = (float(st["best_val_loss"]), int(st["best_step"]), ckpt["best"])
        rng = ckpt["rng"]
        if f"torch.rank{rank}" in rng and st.get("world_size", 1) == world:
            torch.set_rng_state(rng[f"torch.rank{rank}"].cpu())
            if f"cuda.rank{rank}" in rng and device.type == "cuda":
                torch.cuda.set_rng_state(rng[f"cuda.rank{rank}"].cpu(), device)
        else:
            if main:
                warnings.warn(f"resuming a run saved by {st.get('world_size')} process(es) on {world}: the data "
                              "order is kept, the families' random noise is reseeded from (seed, step, rank)")
            torch.manual_seed(seed_for(cfg.seed, 0x7A5, start, rank))
        if st.get("seed", cfg.seed) != cfg.seed or st.get("batch_size", cfg.batch_size) != cfg.batch_size:
            warnings.warn("resuming with a different seed or batch_size than the checkpoint's: the data order "
                          "changes, so the result will not equal an uninterrupted run")
        history = read_history(out, upto_step=start) if main else []
    else:
        torch.manual_seed(seed_for(cfg.seed, 0x7A5, 0, rank))

    if out is not None and main:
        run_info = {"model": module.config_dict(), "data": dict(getattr(data, "source", {}) or {}),
                    "data_repr": repr(data), "train": dataclasses.asdict(cfg), "seed": cfg.seed,
                    "world_size": world, "device": str(device), **_versions()}
        if resume and (out / ck.RUN_JSON).is_file():
            prev = ck.read_json(out / ck.RUN_JSON)
            run_info["started"] = prev.get("started")
            run_info["resumed"] = prev.get("resumed", []) + [{"step": start, "world_size": world, "time": _now()}]
        else:
            run_info["started"] = _now()
        ck.write_json(out / ck.RUN_JSON, run_info)
    logger = MetricsLogger(out if main else None, history, tensorboard=cfg.tensorboard and main)

    run = Run(module, cfg, out, logger.history, start)
    show = cfg.progress and main and (sys.stderr.isatty() or "ipykernel" in sys.modules)
    from tqdm import tqdm
    bar = tqdm(total=cfg.steps, initial=start, disable=not show, desc=f"train {module.name}", unit="step",
               dynamic_ncols=True)

    # ---- the loop ----
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    streak, last_bad = 0, ""
    skipped = 0
    t0 = time.perf_counter()
    t_log, step_log = t0, start
    step = start
    wrapped.train()
    try:
        for step in range(start + 1, cfg.steps + 1):
            f = lr_factor(step, cfg)
            for o, lrs in zip(opts, base_lrs):
                for g, lr in zip(o.param_groups, lrs):
                    g["lr"] = lr * f
            b = (step - 1) * draws_per_step
            for ph, opt in zip(phases, opts):
                for _ in range(ph.repeats):
                    batch = batch_at(data, order.indices(b), device)
                    b += 1
                    with _autocast(device, cfg):
                        loss, ext = _split_loss(wrapped(batch, phase=ph.name))
                    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                        raise ModelError(f"{module.name}.loss(phase={ph.name!r}) must return a scalar tensor, "
                                         f"got {getattr(loss, 'shape', type(loss).__name__)}")
                    loss = loss.float()
                    what = _nonfinite(loss, "loss", acc, world)
                    if what is None:
                        module.zero_grad(set_to_none=True)       # every parameter: other phases' too
                        acc.backward(loss)
                        gnorm = _grad_norm(ph.params, cfg.grad_clip, acc)
                        what = None if math.isfinite(gnorm) else f"gradient norm is {gnorm}"
                    if what is not None:
                        module.zero_grad(set_to_none=True)
                        streak += 1
                        skipped += 1
                        last_bad = f"{what} at step {step} (phase {ph.name})"
                        warnings.warn(f"{last_bad}; update skipped", RuntimeWarning, stacklevel=2)
                        if streak >= cfg.max_nonfinite:
                            lr_now = opt.param_groups[0]["lr"]
                            raise TrainingError(
                                f"{streak} consecutive non-finite updates (last: {last_bad}); training stopped. "
                                f"Try a lower lr (now {lr_now:g}), gradient clipping (grad_clip={cfg.grad_clip}; "
                                f"e.g. grad_clip=1.0), precision='fp32', or check the data for NaN/inf or "
                                f"extreme values and the model's options.")
                        continue
                    streak = 0
                    opt.step()
                    sfx = "" if len(phases) == 1 else f"/{ph.name}"
                    _add(sums, counts, "loss" + sfx, float(loss.detach()))
                    _add(sums, counts, "grad_norm" + sfx, gnorm)
                    for k, v in ext.items():
                        _add(sums, counts, k, v)
            if ema is not None:
                ema.update(module, step)

            record: dict[str, Any] = {}
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                record.update(_reduce_logs(sums, counts, len(phases), acc, world))
                record["lr"] = opts[0].param_groups[0]["lr"]
                record["steps_per_s"] = (step - step_log) / max(now - t_log, 1e-9)
                if skipped:
                    record["skipped"] = skipped
                sums, counts, skipped = {}, {}, 0
                t_log, step_log = now, step
                if "loss" in record:
                    bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
                elif any(k.startswith("loss/") for k in record):
                    bar.set_postfix({k[5:]: f"{v:.3f}" for k, v in record.items() if k.startswith("loss/")},
                                    refresh=False)
            last = step == cfg.steps
            if main and val is not None and cfg.eval_every >= 0 and \
                    ((cfg.eval_every and step % cfg.eval_every == 0) or last):
                record.update(validation_loss(module, val, phases, cfg, device))
                if ema is not None:
                    record.update({k.replace("val_loss", "val_loss_ema"): v
                                   for k, v in validation_loss(ema.model, val, phases, cfg, device).items()})
                if cfg.keep_best:
                    v = record["val_loss_ema" if ema is not None else "val_loss"]
                    if math.isfinite(v) and (best is None or v < best[0]):
                        src = ema.model if ema is not None else module
                        best = (v, step, {k: t.detach().clone() for k, t in src.state_dict().items()})
                        record["best_step"] = step
            if main and out is not None and cfg.sample_every >= 0 and \
                    ((cfg.sample_every and step % cfg.sample_every == 0) or last):
                path = out / "samples" / f"step_{step:06d}.png"
                try:
                    if save_sample_picture(ema.model if ema is not None else module, data, cfg, path, device):
                        record["samples"] = str(path.relative_to(out))
                except Exception as e:   # a picture must never stop training
                    warnings.warn(f"could not save sample picture at step {step}: {type(e).__name__}: {e}")
            if record and main:
                logger.log({"step": step, **record})
            if out is not None and ((cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last):
                _save(out, module, phases, opts, ema, order, step, draws_per_step, cfg, acc, world, device,
                      gather_object, best)
            bar.update(1)
    finally:
        bar.close()
        logger.close()
    wall = time.perf_counter() - t0
    run.step = step if cfg.steps > start else start
    run.wall_time = wall
    run.steps_per_s = (run.step - start) / wall if wall > 0 else 0.0

    if ema is not None:
        module.load_state_dict(ema.state_dict())          # export the averaged weights
    if best is not None:
        module.load_state_dict(best[2])                   # keep_best: the weights that validated best
        run.best_val_loss, run.best_step = best[0], best[1]
        if main and out is not None and (out / ck.RUN_JSON).is_file():
            info = ck.read_json(out / ck.RUN_JSON)
            info["best"] = {"step": best[1], "val_loss": best[0]}
            ck.write_json(out / ck.RUN_JSON, info)
    module.eval()
    if out is not None and main:
        save_model(module, out / ck.FINAL)
    acc.wait_for_everyone()
    return run


def _nonfinite(loss: torch.Tensor, name: str, acc, world: int) -> str | None:
    """None if the loss is finite on every rank, else what went wrong (all ranks agree, so they skip
    the update together and DistributedDataParallel's collectives stay in step)."""
    bad = torch.logical_not(torch.isfinite(loss.detach()))
    if world > 1:
        flag = acc.reduce(bad.float().reshape(1), reduction="sum")
        if float(flag) > 0:
            return f"{name} is {float(loss.detach())}" if bool(bad) else f"{name} is non-finite on another process"
        return None
    return f"{name} is {float(loss.detach())}" if bool(bad) else None


def _grad_norm(params, clip: float | None, acc) -> float:
    if clip:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))   # DDP grads are already averaged
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


def _add(sums: dict, counts: dict, key: str, value: float) -> None:
    sums[key] = sums.get(key, 0.0) + value
    counts[key] = counts.get(key, 0) + 1


def _reduce_logs(sums, counts, n_phases, acc, world) -> dict[str, float]:
    """Means over the logging interval and over ranks (one collective; every rank has the same keys,
    since non-finite updates are skipped on all ranks together)."""
    keys = sorted(sums)
    vals = torch.tensor([sums[k] for k in keys] + [float(counts[k]) for k in keys], dtype=torch.float64)
    if world > 1:
        vals = acc.reduce(vals.to(acc.device), reduction="sum").cpu()
    rec = {k: float(vals[i] / vals[len(keys) + i]) for i, k in enumerate(keys)}
    if n_phases > 1 and any(k.startswith("loss/") for k in rec):
        rec["loss"] = sum(v for k, v in rec.items() if k.startswith("loss/"))
    return rec


def _save(out, module, phases, opts, ema, order, step, draws_per_step, cfg, acc, world, device, gather_object,
          best=None):
    rngs = gather_object([_rng_state(device)]) if world > 1 else [_rng_state(device)]
    if acc.is_main_process:
        rng = {}
        for r, st in enumerate(rngs):
            for k, v in st.items():
                rng[f"{k}.rank{r}"] = v
        state = {"step": step, **order.position(step * draws_per_step), "draws_per_step": draws_per_step,
                 "phases": [ph.name for ph in phases], "world_size": world, "seed": cfg.seed,
                 "batch_size": cfg.batch_size, "ema": cfg.ema, "time": _now(), **_versions()}
        if best is not None:
            state.update(best_val_loss=best[0], best_step=best[1])
        ck.save_checkpoint(out, module, {ph.name: o.state_dict() for ph, o in zip(phases, opts)},
                           ema.state_dict() if ema is not None else None, rng, state,
                           best_state=best[2] if best is not None else None)
    acc.wait_for_everyone()


def _versions() -> dict[str, str]:
    from .. import __version__
    import accelerate
    return {"genlab_version": __version__, "torch_version": torch.__version__,
            "accelerate_version": accelerate.__version__}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = ["TrainConfig", "Run", "TrainingError", "train", "BatchOrder", "lr_factor", "seed_for"]
