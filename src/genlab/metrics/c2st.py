"""Classifier two-sample test (Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests")."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._util import MetricError, as_features


def _classifier(name, seed, dim):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(name, str):
        return name                                         # any sklearn-style estimator
    if name == "mlp":
        h = max(32, min(10 * dim, 256))                     # sbi's c2st uses 10·dim units
        clf = MLPClassifier(hidden_layer_sizes=(h, h), max_iter=300, early_stopping=True,
                            n_iter_no_change=10, random_state=seed)
    elif name == "logistic":
        clf = LogisticRegression(max_iter=1000)
    elif name == "knn":
        clf = KNeighborsClassifier(n_neighbors=15)
    else:
        raise MetricError(f"classifier must be 'mlp', 'logistic', 'knn' or an sklearn estimator, got {name!r}")
    return make_pipeline(StandardScaler(), clf)


def c2st(x, y, classifier="mlp", test_fraction: float = 0.5, confidence: float = 0.95, seed: int = 0,
         max_samples: int | None = 20_000) -> dict:
    """Classifier two-sample test: train a classifier to tell x (label 0) from y (label 1) on one
    half, report its held-out accuracy on the other half.

        acc = (1/n_test) Σ 1[ĉ(z_i) = ℓ_i];   under H0 (same distribution), n_test·acc ~ Bin(n_test, ½)

    Accuracy ≈ 0.5 means indistinguishable; 1.0 means fully separable. Returns the accuracy, an
    exact Clopper–Pearson ``confidence`` interval, and the one-sided binomial p-value of
    acc > ½ (Lopez-Paz & Oquab 2017, §2). The two sets are balanced by subsampling the larger.
    """
    from sklearn.model_selection import train_test_split

    x = as_features(x, "x").double().numpy()
    y = as_features(y, "y").double().numpy()
    if x.shape[1] != y.shape[1]:
        raise MetricError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    r = np.random.default_rng(seed)
    n = min(len(x), len(y), (max_samples or 10**12) // 2)
    if n < 10:
        raise MetricError(f"c2st needs at least 10 examples per set, got {min(len(x), len(y))}")
    x = x[r.permutation(len(x))[:n]]
    y = y[r.permutation(len(y))[:n]]
    z = np.concatenate([x, y])
    lab = np.concatenate([np.zeros(n, dtype=int), np.ones(n, dtype=int)])
    ztr, zte, ltr, lte = train_test_split(z, lab, test_size=test_fraction, stratify=lab, random_state=seed)
    clf = _classifier(classifier, seed, z.shape[1])
    clf.fit(ztr, ltr)
    correct = int((clf.predict(zte) == lte).sum())
    nt = len(lte)
    bt = stats.binomtest(correct, nt, 0.5, alternative="greater")
    ci = stats.binomtest(correct, nt).proportion_ci(confidence_level=confidence, method="exact")
    return {"accuracy": correct / nt, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "p_value": float(bt.pvalue), "n_test": nt, "n_train": len(ltr),
            "classifier": classifier if isinstance(classifier, str) else type(classifier).__name__}
