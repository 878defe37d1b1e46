"""PRDC against its definitions: hand-made cases, a brute-force implementation, and a stated
reference computed once by that brute force (run ``python tests/test_metrics_prdc.py`` to redo it)."""
import numpy as np
import pytest
import torch

from genlab.metrics import prdc


def _dist_row(a, X):
    return np.sqrt(((X - a) ** 2).sum(1))


def prdc_bruteforce(real, fake, k):
    """Slow, independent: one point at a time, plain numpy, full sorts, python any/sum."""
    N, M = len(real), len(fake)
    r = np.array([np.sort(np.delete(_dist_row(real[i], real), i))[k - 1] for i in range(N)])
    f = np.array([np.sort(np.delete(_dist_row(fake[j], fake), j))[k - 1] for j in range(M)])
    prec = dens = 0.0
    for j in range(M):
        d = _dist_row(fake[j], real)
        prec += any(d[i] < r[i] for i in range(N))
        dens += sum(d[i] < r[i] for i in range(N))
    rec = cov = 0.0
    for i in range(N):
        d = _dist_row(real[i], fake)
        rec += any(d[j] < f[j] for j in range(M))
        cov += d.min() < r[i]
    return prec / M, rec / N, dens / (k * M), cov / N


def reference_sets(n=2000, d=500, seed=2026):
    g = np.random.default_rng(seed)
    return g.standard_normal((n, d)), g.standard_normal((n, d))


# Computed once (19 s) by prdc_bruteforce(*reference_sets(), k=5): two independent N(0, I) sets,
# n = 2000 each, d = 500, numpy default_rng(2026). The authors' own package (`pip install prdc==0.2`,
# compute_prdc(real, fake, 5)) gives the same four numbers on these sets. (At n = 10 000, d = 1000 Naeem et al. report
# P 0.477 R 0.471 D 1.056 C 0.974; see benchmarks/results/metrics.md for genlab's run at that size.)
REFERENCE = {"precision": 0.57, "recall": 0.5575, "density": 1.1422, "coverage": 0.9805}


def test_prdc_matches_stated_bruteforce_reference():
    real, fake = reference_sets()
    out = prdc(real, fake, k=5)
    for key, val in REFERENCE.items():
        assert out[key] == pytest.approx(val, abs=1e-9), key


def test_prdc_matches_bruteforce_small():
    g = np.random.default_rng(1)
    real = g.standard_normal((150, 6))
    fake = g.standard_normal((120, 6)) * 1.3 + 0.4
    for k in (1, 3, 7):
        out = prdc(torch.from_numpy(real), torch.from_numpy(fake), k=k)
        ref = prdc_bruteforce(real, fake, k)
        assert [out["precision"], out["recall"], out["density"], out["coverage"]] == pytest.approx(ref, abs=1e-12)


def test_prdc_hand_made():
    # real points on a line at 0, 1, 2, 3; k = 1 → radii 1, 1, 1, 1
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    # fakes: 0.5 lies in balls of 0 and 1; 10 and 11 lie in none (and are each other's 1-NN, radius 1)
    fake = torch.tensor([[0.5], [10.0], [11.0]], dtype=torch.float64)
    out = prdc(real, fake, k=1)
    assert out["precision"] == pytest.approx(1 / 3)          # only 0.5 is inside a real ball
    assert out["density"] == pytest.approx(2 / 3)            # 0.5 is inside two balls: (2 + 0 + 0) / (1·3)
    assert out["coverage"] == pytest.approx(2 / 4)           # balls of 0 and 1 hold a fake
    # fake radii: 0.5 → 9.5 (its 1-NN is 10), 10 → 1, 11 → 1; every real point lies within 9.5 of 0.5
    assert out["recall"] == pytest.approx(1.0)


def test_prdc_identical_sets():
    x = torch.randn(300, 5, dtype=torch.float64)
    out = prdc(x, x.clone(), k=5)
    assert out["precision"] == 1 and out["recall"] == 1 and out["coverage"] == 1
    assert out["density"] == pytest.approx(1.0, abs=1e-12)   # each real ball holds itself + k−1 others


def test_prdc_needs_enough_points():
    with pytest.raises(ValueError, match="nearest neighbours"):
        prdc(torch.randn(4, 2), torch.randn(10, 2), k=5)


if __name__ == "__main__":
    import time
    t = time.time()
    print(prdc_bruteforce(*reference_sets(), k=5), f"{time.time() - t:.0f} s")
