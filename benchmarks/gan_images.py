"""Image GAN and EBM quality on digits and mnist5k with the evaluation suite's feature networks.

    nice -n 5 python benchmarks/gan_images.py --runs gan-mnist5k,cgan-mnist5k,ebm-mnist5k --reference --grid
    nice -n 5 python benchmarks/gan_images.py --runs gan-digits --split val --tag lr1e-4 --set lr=1e-4   # tuning
    python benchmarks/gan_images.py --report       # rewrites benchmarks/results/gan_images_mnist5k.md
    python benchmarks/gan_ebm_report.py            # rewrites benchmarks/results/gan_ebm.md

Each run trains through ``gl.train`` on the train split, then ``gl.evaluate`` against the TEST
split with the shipped feature network of the dataset (``genlab.features``: small CNN classifier,
128-d features): Fréchet distance (FD), KID (polynomial-kernel MMD², unbiased), precision/recall/density/coverage
(k = 5), the classifier score and, for the conditional GAN, the class accuracy of samples drawn at
the test labels. n samples = n test images.
Reference rows: the same metrics for held-out real images (the first n_test images of the val
split, resp. a random n_test subset of train) against the test split, i.e. what a perfect model
scores at this n. Appends JSON lines to ``benchmarks/results/gan_images.jsonl``.

Tuning (``--split val``: evaluated against the VALIDATION split, never the test split; ``--set
key=value`` overrides a model option or a training setting, ``--tag`` names the variant) appends to
``benchmarks/results/gan_images_tuning.jsonl`` instead, which ``gan_ebm_report.py`` does not read.
``--grid`` writes a 10×10 sample grid to ``docs/img/gan_images_<run>.png`` (``ebm_<run>.png`` for
the EBM).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab import metrics as M  # noqa: E402
from genlab.features import feature_net_for  # noqa: E402
from gan_common import record, stamp  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"
IMG = Path(__file__).parent.parent / "docs" / "img"
REPORT = RESULTS / "gan_images_mnist5k.md"

# name -> (family, dataset, model overrides, train settings)
RUNS = {
    # unconditional GANs: PacGAN with m = 2 (without packing the digits GAN collapsed to a few modes)
    "gan-digits": ("gan", "digits", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32, pac=2),
                   dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "cgan-digits": ("gan", "digits", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32,
                                          conditional=True),
                    dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "gan-mnist5k": ("gan", "mnist5k", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32, pac=2),
                    dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "cgan-mnist5k": ("gan", "mnist5k", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32,
                                            conditional=True),
                     dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "ebm-digits": ("ebm", "digits", dict(channels=(32, 64), sgld_steps=20, sample_steps=200),
                   dict(steps=500, batch_size=64, lr=1e-4)),
    "ebm-mnist5k": ("ebm", "mnist5k", dict(channels=(32, 64), sgld_steps=20, sample_steps=200),
                    dict(steps=500, batch_size=64, lr=1e-4)),
}
TRAIN_KEYS = ("steps", "batch_size", "lr", "ema", "ema_warmup", "schedule", "warmup", "grad_clip", "betas",
              "weight_decay")


def parse_value(v: str):
    """``--set`` values: Python literals (numbers, tuples, True/None) or plain strings."""
    import ast
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v


def image_metrics(net, ft, x) -> dict:
    fx = net.features(x)
    return {"fd": M.frechet_distance(ft, fx), "kid": M.kid(ft, fx, seed=0)["kid"], "prdc": M.prdc(ft, fx),
            "classifier_score": M.classifier_score(net.probs(x))["score"], "n": len(x)}


def reference(data: str, seed: int = 0, split: str = "test") -> dict:
    """Held-out real images scored like samples against ``split``: another split's first n images and a
    random train subset of the same size."""
    te = gl.load_dataset(data, split=split)
    net = feature_net_for(te.info)
    ft = net.features(te.x)
    out = {}
    other = "val" if split == "test" else "test"
    for name, sp in ((other, other), ("train", "train")):
        ds = gl.load_dataset(data, split=sp)
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:len(te)]
        x = ds.x[idx] if sp == "train" else ds.x[:len(te)]
        out[name] = image_metrics(net, ft, x)
    return {"data": data, "kind": "reference", "split": split, "n_test": len(te), **out,
            "features": net.describe() if hasattr(net, "describe") else None, **stamp()}


def save_grid(model, name: str, family: str, seed: int, sampler: dict | None = None) -> Path:
    """10×10 samples (one row per class for a conditional model) as a small grey PNG in docs/img/."""
    import numpy as np
    from PIL import Image
    from genlab.data.plot import image_grid
    g = torch.Generator().manual_seed(10_000 + seed)
    cond = torch.arange(10).repeat_interleave(10) if getattr(model, "conditional_ok", False) else None
    with torch.no_grad():
        x = model.sample(100, cond=cond, generator=g, **(sampler or {}))
    grid = image_grid(x, model.info, nrow=10)[..., 0]
    img = Image.fromarray((grid * 255).round().astype(np.uint8), "L")
    s = max(1, 32 // model.info.shape[-1])                  # 8×8 digits: 4× nearest-neighbour upscaling
    img = img.resize((img.width * s, img.height * s), Image.NEAREST)
    path = IMG / f"{'ebm' if family == 'ebm' else 'gan_images'}_{name}.png"
    img.save(path, optimize=True)
    return path


def run(name: str, seed: int, steps: int | None, out: Path, split: str = "test", tag: str = "",
        sets: dict | None = None, grid: bool = False, sampler: dict | None = None,
        also_test: Path | None = None) -> dict:
    family, data, over, tcfg = RUNS[name]
    over, tcfg = dict(over), dict(tcfg)
    for k, v in (sets or {}).items():
        (tcfg if k in TRAIN_KEYS else over)[k] = v
    if steps:
        tcfg["steps"] = steps
    tr, te = gl.load_dataset(data, split="train"), gl.load_dataset(data, split=split)
    torch.manual_seed(seed)
    m = gl.create(family, data=tr, **over)
    t0, c0 = time.perf_counter(), time.process_time()
    label = name + (f"-{tag}" if tag else "")
    r = gl.train(m, tr, seed=seed, progress=False, eval_every=-1, sample_every=-1,
                 out=f"runs/gan_images/{label}-s{seed}", overwrite=True, **tcfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    load_train = os.getloadavg()[0]
    metrics = ["fd", "kid", "prdc", "classifier_score"] + (["class_accuracy"] if over.get("conditional") else [])
    stamp_train = {"family": family, "data": data, "seed": seed, "model": over, "train": tcfg,
                   "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1), "load1_train_end": load_train}
    last = {k: v for k, v in (r.history[-1] if r.history else {}).items() if isinstance(v, (int, float))}
    rows = []
    for sp, dest in [(split, out)] + ([("test", also_test)] if also_test and split != "test" else []):
        ev = te if sp == split else gl.load_dataset(data, split=sp)
        t1, c1 = time.perf_counter(), time.process_time()
        rec = gl.evaluate(r.model, ev, metrics=metrics, seed=seed, sampler=sampler)
        ew, ec = time.perf_counter() - t1, time.process_time() - c1
        mt = rec["metrics"]
        row = {"run": name, **stamp_train,
               "fd": mt.get("fd"), "kid": mt.get("kid", {}).get("kid"), "kid_std": mt.get("kid", {}).get("kid_std"),
               "prdc": mt.get("prdc"),
               "classifier_score": mt.get("classifier_score", {}).get("score"),
               "class_accuracy": mt.get("class_accuracy"), "n_samples": rec["protocol"]["n_samples"],
               "split": sp, "sampler": rec["protocol"]["sampler"], "features": rec["protocol"]["features"],
               "eval_wall_s": round(ew, 1), "eval_cpu_s": round(ec, 1),
               "params": rec["model_config"].get("num_parameters"), "last_log": last, "commit": commit(), **stamp()}
        if tag:
            row["tag"] = tag
        if grid and not rows:
            row["grid"] = str(save_grid(r.model, label, family, seed, sampler).relative_to(IMG.parent.parent))
        rows.append(record(row, dest))
    return rows[0]


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()


# ---- report ------------------------------------------------------------------------------------
def _rows(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines() if s.strip()] if path.is_file() else []


def _f(v, fmt=".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _prdc(p) -> list[str]:
    return [_f(p.get(k) if p else None) for k in ("precision", "recall", "density", "coverage")]


def settings(r: dict) -> str:
    """Compact model/training settings of a row (the conv widths are (32, 64) everywhere)."""
    m = {k: v for k, v in r["model"].items() if k not in ("net", "channels")}
    t = {k: v for k, v in r["train"].items() if k not in ("steps",)}
    smp = {k: v for k, v in (r.get("sampler") or {}).items()}
    out = ", ".join(f"{k}={v}" for k, v in {**m, **t}.items())
    return out + (f"; sampler {', '.join(f'{k}={v}' for k, v in smp.items())}" if smp else "")


def table(rs: list[dict]) -> list[str]:
    head = ("| run | data | vs split | n | FD ↓ | KID ↓ | precision | recall | density | coverage | classifier score "
            "| class acc. | steps | train CPU s | train wall s | eval CPU s | load | date | settings |")
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rs:
        if r.get("kind") == "reference":
            for ref in [k for k in ("val", "test", "train") if k in r]:
                x = r[ref]
                out.append(f"| real held-out ({ref} split) | {r['data']} | {r.get('split', 'test')} | {x['n']} | "
                           f"{x['fd']:.2f} | {x['kid']:.3f} | " + " | ".join(_prdc(x.get("prdc"))) +
                           f" | {x['classifier_score']:.2f} | – | – | – | – | – | – | {r.get('date', '–')} | – |")
            continue
        name = r["run"] + (f" [{r['tag']}]" if r.get("tag") else "") + f" (seed {r['seed']})"
        out.append(f"| {name} | {r['data']} | {r.get('split', 'test')} | {r['n_samples']} | {r['fd']:.2f} | "
                   f"{r['kid']:.3f} | " + " | ".join(_prdc(r.get("prdc"))) + f" | {r['classifier_score']:.2f} | "
                   f"{_f(r.get('class_accuracy'), '.3f')} | {r['train']['steps']} | {r['train_cpu_s']:.0f} | "
                   f"{r['train_wall_s']:.0f} | {r['eval_cpu_s']:.0f} | {r['load1']:.1f} | {r['date']} | {settings(r)} |")
    return out


def report():
    notes = RESULTS / "gan_images_notes.md"
    parts = [notes.read_text().rstrip() if notes.is_file() else "# Image GAN / EBM quality", "",
             f"_Tables generated by `python benchmarks/gan_images.py --report` (genlab commit: {commit()})._", ""]
    # this session's rows (with precision/recall/density/coverage); gan_ebm.md keeps the earlier ones
    final = [r for r in _rows(RESULTS / "gan_images.jsonl") if "prdc" in r or "prdc" in r.get("train", {})]
    for data in ("mnist5k", "digits"):
        rs = [r for r in final if r["data"] == data]
        if rs:
            parts += [f"## {data}: against the test split", ""] + table(rs) + [""]
    tune = sorted(_rows(RESULTS / "gan_images_tuning.jsonl"), key=lambda r: (r["data"], r.get("kind") != "reference"))
    if tune:
        parts += ["## Tuning runs (against the validation split; never the test split)", ""] + table(tune) + [""]
    REPORT.write_text("\n".join(parts) + "\n")
    print(REPORT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="gan-mnist5k,cgan-mnist5k,ebm-mnist5k")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, help="override the steps of every run")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override a model option or training setting (tuning)")
    ap.add_argument("--sample", nargs="*", default=[], metavar="KEY=VALUE",
                    help="sampler options passed to model.sample (e.g. from_buffer=True steps=50)")
    ap.add_argument("--tag", default="", help="name of a tuned variant")
    ap.add_argument("--split", default="test", choices=("test", "val"),
                    help="evaluation split; val for tuning (written to gan_images_tuning.jsonl)")
    ap.add_argument("--reference", action="store_true", help="also score held-out real images")
    ap.add_argument("--also-test", action="store_true",
                    help="with --split val: also score the same trained model on the test split (gan_images.jsonl); "
                         "decide on the val row only")
    ap.add_argument("--reference-only", action="store_true", help="score held-out real images, train nothing")
    ap.add_argument("--grid", action="store_true", help="write a 10×10 sample grid to docs/img/")
    ap.add_argument("--report", action="store_true", help=f"only rewrite {REPORT.name} from the saved rows")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.report:
        return report()
    out = Path(a.out or RESULTS / ("gan_images.jsonl" if a.split == "test" else "gan_images_tuning.jsonl"))
    out.parent.mkdir(parents=True, exist_ok=True)
    sets = dict(kv.split("=", 1) for kv in a.set)
    sets = {k: parse_value(v) for k, v in sets.items()}
    sampler = {k: parse_value(v) for k, v in (kv.split("=", 1) for kv in a.sample)}
    if a.reference or a.reference_only:
        for data in sorted({RUNS[r][1] for r in a.runs.split(",")}):
            record(reference(data, split=a.split), out)
    if a.reference_only:
        return
    for seed in map(int, a.seeds.split(",")):
        for name in a.runs.split(","):
            run(name, seed, a.steps, out, a.split, a.tag, sets, a.grid, sampler,
                (Path(a.out).with_suffix(".test.jsonl") if a.out else RESULTS / "gan_images.jsonl") if a.also_test else None)


if __name__ == "__main__":
    main()
