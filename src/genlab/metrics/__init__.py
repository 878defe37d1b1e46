"""genlab.metrics — pure functions of samples, features and log-likelihoods (no training).

    import genlab as gl
    gl.metrics.mmd(x, y); gl.metrics.frechet_distance(fx, fy); gl.metrics.prdc(real, fake, k=5)
    gl.list_metrics()   # names used by gl.evaluate(..., metrics=[...])

Each function's docstring gives its formula and source. Inputs: (N, ...) torch tensors or numpy
arrays (flattened per example); outputs: floats, or dicts of floats for multi-part metrics.
"""
from ._util import MetricError
from .c2st import c2st
from .classifier import class_conditional_accuracy, classifier_score
from .distances import (energy_distance, feature_stats, frechet_distance, frechet_distance_from_stats, kid,
                        median_heuristic, mmd, trace_sqrt_product, wasserstein)
from .likelihood import (bits_per_char, bits_per_dim_to_nats, dequantisation_offset, kl_gap,
                         nats_to_bits_per_dim, nll, perplexity)
from .memorisation import memorisation
from .modes import mode_coverage
from .prdc import prdc
from .registry import METRICS, MetricSpec, get_metric, list_metrics

fd = frechet_distance
energy = energy_distance

__all__ = ["MetricError", "c2st", "class_conditional_accuracy", "classifier_score", "energy_distance", "energy",
           "feature_stats", "frechet_distance", "fd", "frechet_distance_from_stats", "kid", "median_heuristic", "mmd",
           "trace_sqrt_product", "wasserstein", "bits_per_char", "bits_per_dim_to_nats", "dequantisation_offset",
           "kl_gap", "nats_to_bits_per_dim", "nll", "perplexity", "memorisation", "mode_coverage", "prdc",
           "METRICS", "MetricSpec", "get_metric", "list_metrics"]
