"""The ``genlab`` command line: the same operations as the Python API (DESIGN §1).

    genlab list [models|datasets|metrics]
    genlab train MODEL --data DATASET [--steps N] [--out DIR] [--seed S] [--resume] [key=value ...]
    genlab sample RUN_DIR --n 64 [--out samples.png|.npy|.txt] [--steps K --sampler NAME --guidance W ...]
    genlab evaluate RUN_DIR [--metrics nll,mmd,...] [--json]
    genlab bench [SUITE] [--out DIR]
    genlab rate create|serve|analyze ...

``key=value`` pairs set any hyper-parameter: a field of the model's Config (``hidden=256``), of the
training config (``lr=3e-4``, ``batch_size=128``, ``ema=0.999``), or of the dataset loader with a
``data.`` prefix (``data.block_size=256``).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="genlab: train, sample and evaluate deep generative models the same way.\n\n"
                       "Start with `genlab list`, then e.g. `genlab train realnvp --data moons --steps 2000 "
                       "--out runs/rnvp`, `genlab sample runs/rnvp --n 1000 --out s.png`, "
                       "`genlab evaluate runs/rnvp`.")

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _say(msg: str) -> None:
    """Print once per job: under torchrun / accelerate launch only rank 0 speaks."""
    import os
    if os.environ.get("RANK", "0") == "0":
        typer.echo(msg)


def _fail(msg: str, code: int = 2):
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def parse_overrides(args: List[str]) -> dict[str, str]:
    out = {}
    for a in args:
        if "=" not in a or a.startswith("-"):
            _fail(f"unexpected argument {a!r}: hyper-parameters are given as key=value (e.g. hidden=256)")
        k, v = a.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def split_overrides(overrides: dict[str, str]):
    """Route key=value pairs to the training config, the dataset loader (data.*) or the model."""
    from .engine import TrainConfig
    from .models.registry import coerce
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    train_kw, data_kw, model_kw = {}, {}, {}
    for k, v in overrides.items():
        if k.startswith("data."):
            data_kw[k[5:]] = _auto(v)
        elif k in train_fields:
            try:
                train_kw[k] = coerce(v, train_fields[k].type, k)
            except ValueError as e:
                _fail(str(e))
        else:
            model_kw[k] = v
    return train_kw, data_kw, model_kw


def _auto(v: str):
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


@app.command("list")
def list_(what: str = typer.Argument("all", help="models, datasets, metrics or all")):
    """List the registered models, datasets and metrics."""
    import genlab as gl
    groups = {"models": gl.list_models, "datasets": gl.list_datasets, "metrics": gl.list_metrics}
    if what != "all" and what not in groups:
        _fail(f"unknown list {what!r}: choose models, datasets or metrics")
    for name, fn in groups.items():
        if what in ("all", name):
            try:
                items = fn()
            except ImportError as e:
                items = {"(unavailable)": str(e)}
            typer.echo(f"{name}:")
            width = max((len(k) for k in items), default=0)
            for k, desc in items.items():
                typer.echo(f"  {k:<{width}}  {desc}")


@app.command(context_settings=EXTRA)
def train(ctx: typer.Context,
          model: str = typer.Argument(..., help="model name (see `genlab list models`)"),
          data: str = typer.Option(..., "--data", "-d", help="dataset name, or a .npy/.npz/.csv/text file or folder"),
          steps: int = typer.Option(2000, help="training steps"),
          out: Optional[Path] = typer.Option(None, help="run directory (default runs/MODEL-DATA)"),
          seed: int = typer.Option(0, help="random seed (data order, initialisation, sampling)"),
          resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
          batch_size: Optional[int] = typer.Option(None, help="batch size (default: the trainer's)"),
          lr: Optional[float] = typer.Option(None, help="learning rate (default: the trainer's)")):
    """Train MODEL on a dataset; key=value pairs override any hyper-parameter."""
    import genlab as gl
    from .data.base import DataError
    from .models.base import ModelError
    train_kw, data_kw, model_kw = split_overrides(parse_overrides(ctx.args))
    if batch_size is not None:
        train_kw["batch_size"] = batch_size
    if lr is not None:
        train_kw["lr"] = lr
    steps = train_kw.pop("steps", steps)
    out = out or Path("runs") / f"{model}-{Path(data).stem}"
    try:
        ds = gl.load_dataset(data, split="train", **data_kw)
        val = gl.load_dataset(data, split="val", **data_kw)
        import torch
        torch.manual_seed(seed)  # the model's initialisation is part of the run's seed
        m = gl.create(model, data=ds, **model_kw)
    except (DataError, ModelError, TypeError) as e:
        _fail(str(e))
    _say(f"training {model} ({m.num_parameters():,} parameters) on {ds} for {steps} steps -> {out}")
    from .engine.trainer import TrainingError
    try:
        run = gl.train(m, ds, steps=steps, out=out, val=val, seed=seed, resume=resume, **train_kw)
    except (TrainingError, ModelError, TypeError) as e:
        _fail(str(e))
    _say(f"done: {run.step} steps in {run.wall_time:.1f}s; final loss {run.final_loss:.4f}; saved to {out}")
    if run.best_step is not None:
        _say(f"keep_best: the saved model is the one of step {run.best_step} "
             f"(validation loss {run.best_val_loss:.4f})")


@app.command(context_settings=EXTRA)
def sample(ctx: typer.Context,
           run_dir: Path = typer.Argument(..., help="a run directory or saved model folder"),
           n: int = typer.Option(64, "--n", help="number of samples"),
           out: Optional[Path] = typer.Option(None, help="output file: .png (picture), .npy (array) or .txt (text)"),
           seed: int = typer.Option(0, help="sampling seed"),
           steps: Optional[int] = typer.Option(None, help="sampler steps / NFE (diffusion, flow matching)"),
           sampler: Optional[str] = typer.Option(None, help="sampler name, e.g. ddpm, ddim, euler, heun, rk4"),
           guidance: Optional[float] = typer.Option(None, help="guidance weight w (conditional models)"),
           cond: Optional[str] = typer.Option(None, help="condition: a class label, or comma-separated values"),
           prompt: Optional[str] = typer.Option(None, help="text prompt (language models)"),
           temperature: Optional[float] = typer.Option(None, help="sampling temperature (language models)"),
           top_k: Optional[int] = typer.Option(None, "--top-k", help="keep the k most likely tokens"),
           top_p: Optional[float] = typer.Option(None, "--top-p", help="nucleus sampling mass"),
           max_new_tokens: Optional[int] = typer.Option(None, help="tokens to generate after the prompt")):
    """Draw samples from a trained model and save them as a picture, an array or text."""
    import numpy as np
    import torch

    import genlab as gl
    from .models.base import ModelError
    from .models.io import CheckpointError
    try:
        model = gl.load(run_dir)
    except (CheckpointError, ModelError) as e:
        _fail(str(e))
    opts = {k: v for k, v in dict(steps=steps, sampler=sampler, guidance=guidance, prompt=prompt,
                                  temperature=temperature, top_k=top_k, top_p=top_p,
                                  max_new_tokens=max_new_tokens).items() if v is not None}
    opts.update({k: _auto(v) for k, v in parse_overrides(ctx.args).items()})
    c = None
    if cond is not None:
        vals = [float(v) for v in cond.split(",")]
        if model.info.cond == "label":
            c = torch.full((n,), int(vals[0]), dtype=torch.long)
        else:
            c = torch.tensor(vals, dtype=torch.float32).expand(n, -1).clone()
    g = torch.Generator().manual_seed(seed)
    try:
        x = model.sample(n, cond=c, generator=g, **opts)
    except TypeError as e:
        _fail(f"{model.name} does not take these sampler options {sorted(opts)}: {e}")
    except (ModelError, ValueError) as e:
        _fail(str(e))
    out = out or Path(run_dir) / "samples" / f"cli_n{n}_seed{seed}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))
    elif out.suffix == ".txt":
        if not isinstance(x, (list, tuple)) and not model.info.vocab:
            _fail("only text models can write .txt samples; use .png or .npy")
        from .data.plot import decode_text
        texts = x if isinstance(x, (list, tuple)) else decode_text(x, model.info, n=len(x))
        out.write_text("\n\n".join(texts))
    else:
        from .data.plot import save_samples
        save_samples(x, model.info, out)
    typer.echo(f"wrote {n} samples to {out}")


@app.command()
def evaluate(run_dir: Path = typer.Argument(..., help="a run directory"),
             metrics: Optional[str] = typer.Option(None, help="comma-separated metric names (default: by data kind)"),
             data: Optional[str] = typer.Option(None, help="dataset to evaluate on (default: the run's dataset)"),
             split: str = typer.Option("test", help="split to evaluate on"),
             n_samples: Optional[int] = typer.Option(None, help="samples drawn for sample-based metrics"),
             seed: int = typer.Option(0, help="evaluation seed"),
             as_json: bool = typer.Option(False, "--json", help="print the record as JSON")):
    """Evaluate a trained model on its dataset's test split and store the record in the run directory."""
    import genlab as gl
    from .data.base import DataError
    from .models.base import ModelError
    from .models.io import CheckpointError
    try:
        model = gl.load(run_dir)
    except (CheckpointError, ModelError) as e:
        _fail(str(e))
    source = {}
    rj = Path(run_dir) / "run.json"
    if rj.is_file():
        source = dict(json.loads(rj.read_text()).get("data", {}))
    if data is None and "name" not in source:
        _fail(f"{run_dir} does not say which dataset it was trained on; pass --data NAME")
    name = data or source.pop("name")
    source.pop("split", None)
    try:
        test = gl.load_dataset(name, split=split, **({} if data else source))
        train_ds = gl.load_dataset(name, split="train", **({} if data else source))
    except DataError as e:
        _fail(str(e))
    from .evaluation import format_table, write_record
    names = [m.strip() for m in metrics.split(",")] if metrics else None
    try:
        record = gl.evaluate(model, test, metrics=names, n_samples=n_samples, seed=seed, train_data=train_ds)
    except (ModelError, ValueError, KeyError) as e:
        _fail(str(e))
    path = write_record(record, run_dir)
    typer.echo(json.dumps(record, indent=2, default=str) if as_json else format_table(record))
    typer.echo(f"record written to {path}", err=True)


@app.command()
def bench(suite: str = typer.Argument("quick", help="quick, toy2d, digits, mnist5k or text"),
          out: Path = typer.Option(Path("runs/bench"), help="output folder for runs and the report"),
          steps: Optional[int] = typer.Option(None, help="training steps per family (default: the suite's)"),
          families: Optional[str] = typer.Option(None, help="comma-separated subset of the suite's families")):
    """Train and compare families on a suite under one protocol; writes a Markdown and HTML report."""
    from .apps.bench import SUITES, run_bench
    if suite not in SUITES:
        _fail(f"unknown bench suite {suite!r}; known: {', '.join(SUITES)}")
    path = run_bench(suite, out, steps=steps, families=families.split(",") if families else None)
    typer.echo(f"report: {path}")


def _mount_rate():
    try:
        from .apps.rate.cli import rate_app
    except ImportError:
        return
    app.add_typer(rate_app, name="rate", help="Subjective evaluation: build, serve and analyse listening/viewing tests.")


_mount_rate()


def main():
    app()


if __name__ == "__main__":
    main()
