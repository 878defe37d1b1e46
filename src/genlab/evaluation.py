"""``gl.evaluate``: score a model on data with one protocol, and write/print the record.

    rec = gl.evaluate(model, gl.load_dataset("moons", split="test"))          # default metrics
    rec = gl.evaluate(model, test, metrics=["nll", "mmd", "c2st"], n_samples=2000, seed=1)
    write_record(rec, "runs/realnvp-moons"); print(format_table(rec))

Every record carries its protocol (DESIGN §4): dataset name + split, n, likelihood kind and units,
dequantisation, sampler options, feature network name + SHA-256, seed, genlab version, date.
Defaults by data kind: ``nll`` when the model has a likelihood; ``mmd`` + ``energy`` for vectors;
``kl_gap`` when the data's true entropy is known; ``mode_coverage`` when the data carry modes;
``fd``/``kid``/``prdc``/``classifier_score`` on a feature network's features for images;
``memorisation`` when ``train_data`` is given.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

from . import metrics as M
from .data.base import Dataset
from .metrics._util import MetricError
from .models.base import NoLikelihoodError

SAMPLE_METRICS = ("fd", "kid", "prdc", "mmd", "energy", "wasserstein", "c2st", "memorisation", "mode_coverage",
                  "classifier_score", "class_accuracy")
FEATURE_METRICS = ("fd", "kid", "prdc")
MODE_PROTOCOL_N = 2500


def default_metrics(model, data: Dataset, train_data=None) -> list[str]:
    info = data.info
    out = []
    if getattr(model, "likelihood", "none") != "none":
        out.append("nll")
        if data.entropy is not None:
            out.append("kl_gap")
    if info.modality == "image":
        out += ["fd", "kid", "prdc", "classifier_score"]
        if getattr(model, "conditional_ok", False) and info.cond == "label":
            out.append("class_accuracy")
    elif info.modality == "vector" and info.kind == "continuous":
        out += ["mmd", "energy"]
    if "modes" in data.extras:
        out.append("mode_coverage")
    if train_data is not None and info.modality in ("vector", "image"):
        out.append("memorisation")
    return out


def _load_data(data, split="test") -> Dataset:
    if isinstance(data, Dataset):
        return data
    from .data import load_dataset
    return load_dataset(data, split=split)


def _resolve_features(features, info):
    """None → the shipped net for this dataset (images) or raw values; "raw" → raw values;
    a path (.safetensors / TorchScript .pt) or a FeatureNet-like object with .features()."""
    from . import features as F
    if features is None:
        if info.modality != "image":
            return None
        net = F.feature_net_for(info)
        return net
    if isinstance(features, str) and features in ("raw", "none"):
        return None
    if isinstance(features, (str, Path)):
        p = Path(features)
        if p.suffix == ".safetensors" or not p.suffix:
            return F.load_feature_net(features)
        return F.InceptionFeatures(p, num_levels=info.num_levels or 256)
    if not hasattr(features, "features"):
        raise MetricError("features must be None, 'raw', a file path or an object with a .features(x) method")
    return features


def _describe_features(net) -> dict:
    if net is None:
        return {"name": "raw"}
    if hasattr(net, "describe"):
        return net.describe()
    return {"name": getattr(net, "name", type(net).__name__), "sha256": getattr(net, "sha256", None)}


def _batched_samples(model, n, cond, seed, batch, sampler):
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            m = min(batch, n - i)
            c = None if cond is None else cond[i:i + m]
            out.append(model.sample(m, cond=c, generator=g, **sampler).cpu())
    return torch.cat(out)


def _batched_log_prob(model, data: Dataset, batch, options):
    out = []
    use_cond = data.y is not None and getattr(model, "conditional_ok", False) and model.info.cond is not None
    with torch.no_grad():
        for i in range(0, len(data), batch):
            c = data.y[i:i + batch] if use_cond else None
            out.append(model.log_prob(data.x[i:i + batch], cond=c, **options).detach().cpu())
    return torch.cat(out)


def evaluate(model, data, metrics=None, n_samples: int | None = None, seed: int = 0, train_data=None,
             features=None, sampler: dict | None = None, log_prob_options: dict | None = None,
             batch_size: int = 1000, progress: bool = False, **opts) -> dict:
    """Evaluate ``model`` on ``data`` (a Dataset, usually the test split, or a dataset name).

    metrics:      names from ``gl.list_metrics()``; ``None`` = defaults by data kind (module doc).
    n_samples:    model samples to draw (default: as many as data examples, ≥ 2500 for mode_coverage).
    seed:         seeds the sampler's generator and the metrics' own randomness.
    train_data:   the training set, for ``memorisation``.
    features:     None (the shipped feature net for genlab image datasets, raw values otherwise),
                  ``"raw"``, a feature-net ``.safetensors`` path, a TorchScript Inception path, or an
                  object with ``.features(x)`` (and ``.probs(x)`` for classifier scores).
    sampler:      options passed to ``model.sample`` (e.g. steps, temperature), recorded.
    **opts:       per-metric keyword arguments, e.g. ``mmd={"scales": (0.5, 1, 2)}``, ``prdc={"k": 3}``.
    Returns a JSON-able record ``{"model", "metrics", "protocol", "notes", "timings"}``.
    """
    from . import __version__
    data = _load_data(data)
    info = data.info
    if tuple(model.info.shape) != tuple(info.shape):
        raise MetricError(f"model was built for data of shape {model.info.shape} but the evaluation data have "
                          f"shape {info.shape}")
    if train_data is not None and not isinstance(train_data, Dataset):
        train_data = _load_data(train_data, split="train")
    names = list(metrics) if metrics else default_metrics(model, data, train_data)
    if isinstance(metrics, str):
        names = [m.strip() for m in metrics.split(",") if m.strip()]
    for nm in names:
        M.get_metric(nm)                                      # unknown names fail before any work
    sampler = dict(sampler or {})
    log_prob_options = dict(log_prob_options or {})
    notes: list[str] = []
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}
    torch.manual_seed(seed)

    # ---- likelihood ------------------------------------------------------------------------
    lp = None
    lik = model.likelihood_info(**log_prob_options) if hasattr(model, "likelihood_info") else {
        "kind": model.likelihood, "units": "nats/example"}
    if any(nm in ("nll", "kl_gap") for nm in names):
        if model.likelihood == "none":
            for nm in ("nll", "kl_gap"):
                if nm in names:
                    names.remove(nm)
                    notes.append(f"{nm} skipped: model {model.name!r} has no likelihood (likelihood='none')")
        else:
            t = time.perf_counter()
            try:
                lp = _batched_log_prob(model, data, batch_size, log_prob_options)
            except (NoLikelihoodError, NotImplementedError) as e:
                notes.append(f"nll skipped: {e}")
                names = [nm for nm in names if nm not in ("nll", "kl_gap")]
            timings["log_prob"] = time.perf_counter() - t
    if "nll" in names:
        tpe = info.shape[0] if info.modality == "text" else None
        results["nll"] = M.nll(lp, dim=info.dim, kind=lik.get("kind", model.likelihood), tokens_per_example=tpe)
    if "kl_gap" in names:
        if data.entropy is None:
            notes.append(f"kl_gap skipped: dataset {info.name!r} has no known entropy")
        else:
            results["kl_gap"] = M.kl_gap(lp, data.entropy)

    # ---- samples ---------------------------------------------------------------------------
    sample_names = [nm for nm in names if nm in SAMPLE_METRICS]
    feat_net = None
    n = None
    if sample_names:
        n = int(n_samples) if n_samples else len(data)
        if "mode_coverage" in sample_names and not n_samples:
            n = max(n, MODE_PROTOCOL_N)
        cond = None
        if getattr(model, "conditional_ok", False) and data.y is not None and model.info.cond is not None:
            reps = math.ceil(n / len(data))
            cond = data.y.repeat(reps, *([1] * (data.y.ndim - 1)))[:n]   # the test conditions, in order
        t = time.perf_counter()
        try:
            xs = _batched_samples(model, n, cond, seed, batch_size, sampler)
        except NotImplementedError:
            notes.append(f"sample-based metrics skipped: model {model.name!r} cannot sample")
            sample_names, xs = [], None
        timings["sample"] = time.perf_counter() - t
        if sample_names:
            needs_feat = [nm for nm in sample_names if nm in FEATURE_METRICS + ("classifier_score", "class_accuracy")]
            if needs_feat:
                feat_net = _resolve_features(features, info)
                if info.modality == "image" and feat_net is None:
                    notes.append(f"no feature network for {info.name!r}: fd/kid/prdc use raw pixel values")
            real = data.x
            if cond is not None and info.cond == "continuous":
                # conditional densities (e.g. an MDN's p(x | t)): compare the joint (t, x) pairs, with
                # samples drawn at the test conditions, not only the marginal of x
                real = torch.cat([data.y.reshape(len(data), -1).float(), data.x.reshape(len(data), -1).float()], 1)
                xs = torch.cat([cond.reshape(len(xs), -1).float(), xs.reshape(len(xs), -1).float()], 1)
                notes.append("continuous conditions: sample metrics compare joint (condition, x) pairs")
            t = time.perf_counter()
            if feat_net is not None:
                fx, fr = feat_net.features(xs), feat_net.features(real)
            else:
                fx, fr = xs, real
            timings["features"] = time.perf_counter() - t
            for nm in sample_names:
                t = time.perf_counter()
                kw = dict(opts.get(nm, {}))
                try:
                    results[nm] = _sample_metric(nm, xs, real, fx, fr, data, train_data, feat_net, cond, seed, kw,
                                                 notes)
                except MetricError as e:
                    notes.append(f"{nm} failed: {e}")
                timings[nm] = time.perf_counter() - t
            results = {k: v for k, v in results.items() if v is not None}

    protocol = {
        "dataset": info.name, "split": data.split, "source": data.source, "n_data": len(data), "n_samples": n,
        "data_kind": info.kind, "num_levels": info.num_levels, "dim": info.dim,
        "likelihood": lik, "dequantization": lik.get("dequantization", "none"),
        "sampler": sampler, "log_prob_options": log_prob_options, "features": _describe_features(feat_net),
        "seed": seed, "genlab_version": __version__, "torch_version": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(), "metric_options": {k: v for k, v in opts.items() if k in names},
    }
    return {"model": getattr(model, "name", type(model).__name__), "model_config": _model_config(model),
            "metrics": _jsonable(results), "protocol": _jsonable(protocol), "notes": notes,
            "timings": {k: round(v, 3) for k, v in timings.items()}}


def _model_config(model):
    try:
        d = model.config_dict()
        d["num_parameters"] = model.num_parameters()
        return _jsonable(d)
    except Exception:  # noqa: BLE001  (a user object without config_dict)
        return {}


def _sample_metric(nm, xs, real, fx, fr, data, train_data, feat_net, cond, seed, kw, notes):
    if nm == "fd":
        if fx.shape[0] <= fx.reshape(fx.shape[0], -1).shape[1]:
            notes.append(f"fd: n={fx.shape[0]} ≤ feature dim {fx.reshape(fx.shape[0], -1).shape[1]}: singular "
                         "covariance, FD is biased upward; prefer kid")
        return M.frechet_distance(fr, fx)
    if nm == "kid":
        return M.kid(fr, fx, seed=seed, **kw)
    if nm == "prdc":
        return M.prdc(fr, fx, **kw)
    if nm == "mmd":
        return M.mmd(real, xs, seed=seed, **kw)
    if nm == "energy":
        return M.energy_distance(real, xs)
    if nm == "wasserstein":
        from .metrics.distances import wasserstein_method
        method = wasserstein_method(len(real), len(xs), real[0].numel(), kw.get("method", "auto"),
                                    kw.get("max_exact", 3000))
        return {"wasserstein": M.wasserstein(real, xs, seed=seed, **kw), "method": method, "p": kw.get("p", 1)}
    if nm == "c2st":
        return M.c2st(real, xs, seed=seed, **kw)
    if nm == "mode_coverage":
        if "modes" not in data.extras:
            notes.append(f"mode_coverage skipped: dataset {data.info.name!r} has no modes")
            return None
        return M.mode_coverage(xs[:MODE_PROTOCOL_N], data.extras["modes"], **kw)
    if nm == "memorisation":
        if train_data is None:
            notes.append("memorisation skipped: pass train_data=")
            return None
        ft = feat_net.features(train_data.x) if feat_net is not None else train_data.x
        out = M.memorisation(fx, ft, **kw)
        # baseline: the same statistic for held-out real data (what "no memorisation" looks like)
        out["heldout_near_copy_fraction"] = M.memorisation(fr, ft, **kw)["near_copy_fraction"]
        return out
    if nm in ("classifier_score", "class_accuracy"):
        if feat_net is None or not hasattr(feat_net, "probs"):
            notes.append(f"{nm} skipped: needs a feature network that is a classifier")
            return None
        probs = feat_net.probs(xs)
        if nm == "classifier_score":
            out = M.classifier_score(probs, **kw)
            out["data_score"] = M.classifier_score(feat_net.probs(real), **kw)["score"]
            return out
        if cond is None:
            notes.append("class_accuracy skipped: the model was not sampled class-conditionally")
            return None
        return M.class_conditional_accuracy(probs, cond)
    raise MetricError(f"{nm} is not a sample metric")


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)                                          # "inf"/"nan": strict JSON has no infinities
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def write_record(record: dict, run_dir) -> Path:
    """Write ``run_dir/evaluations/<UTC timestamp>-<metrics>.json``; returns the path."""
    d = Path(run_dir) / "evaluations"
    d.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    names = "+".join(record.get("metrics", {})) or "none"
    path = d / f"{stamp}-{names[:80]}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False))
    tmp.replace(path)
    return path


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary(record: dict) -> dict[str, Any]:
    """Flat {metric[.part]: number} of a record's headline values (for tables and leaderboards)."""
    out = {}
    for k, v in record.get("metrics", {}).items():
        if isinstance(v, dict):
            for part, x in v.items():
                if part in ("n", "k", "kind", "units", "note", "subsets", "subset_size", "counts", "closest_pairs",
                            "threshold", "threshold_sigma", "classifier", "n_train", "n_test", "splits",
                            "num_classes", "dim", "num_modes") or not isinstance(x, (int, float, str)):
                    continue
                out[f"{k}.{part}" if part != k else k] = x
        else:
            out[k] = v
    return out


def format_table(record: dict) -> str:
    """A plain-text table of a record: metric, value, then the protocol and notes."""
    p = record.get("protocol", {})
    lik = p.get("likelihood", {})
    rows = list(summary(record).items())
    w = max([len(k) for k, _ in rows] + [6])
    lines = [f"{record.get('model', '?')} on {p.get('dataset')}/{p.get('split')} "
             f"(n_data={p.get('n_data')}, n_samples={p.get('n_samples')}, seed={p.get('seed')})"]
    lines += [f"  {k:<{w}}  {_fmt(v)}" for k, v in rows]
    lines.append(f"  likelihood: {lik.get('kind')} [{lik.get('units')}], dequantisation: {p.get('dequantization')}; "
                 f"features: {p.get('features', {}).get('name')}"
                 + (f" sha256 {str(p['features'].get('sha256'))[:12]}" if p.get("features", {}).get("sha256") else ""))
    if p.get("sampler"):
        lines.append(f"  sampler: {p['sampler']}")
    lines += [f"  note: {n}" for n in record.get("notes", [])]
    return "\n".join(lines)
