"""Metric registry: names, one-line descriptions and what each metric needs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable
    description: str
    needs: tuple[str, ...]      # samples | log_prob | features | data | train_data | modes | entropy | classifier
    higher_is_better: bool | None = False


def _specs() -> dict[str, MetricSpec]:
    import sys
    from . import c2st, classifier, distances, likelihood, memorisation, modes, prdc  # noqa: F401
    mod = lambda m: sys.modules[f"{__package__}.{m}"]  # noqa: E731  (modules; the package re-exports functions of the same names)
    _c, _cl, _d, _l, _m, _mo, _p = map(mod, ("c2st", "classifier", "distances", "likelihood", "memorisation",
                                           "modes", "prdc"))
    specs = [
        MetricSpec("nll", _l.nll, "negative log-likelihood (nats/example; bits/dim, bits/char, perplexity)",
                   ("log_prob", "data")),
        MetricSpec("kl_gap", _l.kl_gap, "test NLL minus the data's true entropy (nats): KL(p_data||p_model)",
                   ("log_prob", "data", "entropy")),
        MetricSpec("fd", _d.frechet_distance, "Frechet distance between Gaussian fits of features (FID formula)",
                   ("samples", "data", "features")),
        MetricSpec("kid", _d.kid, "kernel inception distance: unbiased cubic-kernel MMD^2 over subsets",
                   ("samples", "data", "features")),
        MetricSpec("prdc", _p.prdc, "precision/recall (Kynkaanniemi 2019) and density/coverage (Naeem 2020)",
                   ("samples", "data", "features"), None),
        MetricSpec("mmd", _d.mmd, "unbiased MMD^2 with Gaussian kernels, median-heuristic bandwidth",
                   ("samples", "data")),
        MetricSpec("energy", _d.energy_distance, "energy distance (Szekely & Rizzo)", ("samples", "data")),
        MetricSpec("wasserstein", _d.wasserstein, "p-Wasserstein (exact via POT for small n, sliced otherwise)",
                   ("samples", "data")),
        MetricSpec("c2st", _c.c2st, "classifier two-sample test: held-out accuracy (0.5 = indistinguishable)",
                   ("samples", "data")),
        MetricSpec("mode_coverage", _mo.mode_coverage,
                   "modes captured, % high-quality samples, reverse KL (PacGAN/VEEGAN protocol)",
                   ("samples", "modes"), None),
        MetricSpec("memorisation", _m.memorisation,
                   "fraction of near-copies of training examples (distance relative to train NN distance)",
                   ("samples", "train_data")),
        MetricSpec("classifier_score", _cl.classifier_score,
                   "Inception-score formula with a genlab domain classifier", ("samples", "classifier"), True),
        MetricSpec("class_accuracy", _cl.class_conditional_accuracy,
                   "accuracy of a domain classifier on class-conditional samples", ("samples", "classifier"), True),
    ]
    return {s.name: s for s in specs}


METRICS: dict[str, MetricSpec] = {}


def get_metric(name: str) -> MetricSpec:
    if not METRICS:
        METRICS.update(_specs())
    if name not in METRICS:
        import difflib
        close = difflib.get_close_matches(name, list(METRICS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        from ._util import MetricError
        raise MetricError(f"unknown metric {name!r}.{hint} Known: {', '.join(sorted(METRICS))}")
    return METRICS[name]


def list_metrics() -> dict[str, str]:
    """Metric names → ``description [needs: ...]`` (what ``gl.evaluate`` must supply)."""
    get_metric("nll")
    return {k: f"{s.description} [needs: {', '.join(s.needs)}]" for k, s in sorted(METRICS.items())}
