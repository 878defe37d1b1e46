"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage
(Naeem et al. 2020) from k-nearest-neighbour balls in feature space."""
from __future__ import annotations

import torch

from ._util import as_features, cdist, chunk_rows, chunks, common_dtype, kth_nn_distance, same_dim


def prdc(real, fake, k: int = 5) -> dict:
    """Precision, recall, density and coverage with k-NN radii.

    Let r_i = distance from real point x_i to its k-th nearest other real point, and
    f_j = the same for fake point y_j among the fakes; B(c, r) = the open ball.

        precision = (1/M) Σ_j 1[∃i: y_j ∈ B(x_i, r_i)]                (Kynkäänniemi 2019, eq. 1)
        recall    = (1/N) Σ_i 1[∃j: x_i ∈ B(y_j, f_j)]
        density   = (1/(kM)) Σ_j Σ_i 1[y_j ∈ B(x_i, r_i)]             (Naeem 2020, eq. 3)
        coverage  = (1/N) Σ_i 1[∃j: y_j ∈ B(x_i, r_i)]                (Naeem 2020, eq. 4)

    Implemented exactly as the authors' reference code (``prdc`` package, Naeem et al.): strict
    inequality, self excluded from the radii, Euclidean distances computed in chunks.
    Reference (ANCHORS.md): two independent N(0, I) sets, 10 000 each, d = 1000, k = 5 give
    P ≈ 0.477, R ≈ 0.471, D ≈ 1.056, C ≈ 0.974.
    """
    x = as_features(real, "real")
    y = as_features(fake, "fake")
    same_dim(x, y, ("real", "fake"))
    x, y = common_dtype(x, y)
    r = kth_nn_distance(x, k)          # (N,)
    f = kth_nn_distance(y, k)          # (M,)
    n = x.shape[0]
    in_real_ball = torch.zeros(y.shape[0], dtype=torch.bool)   # precision numerator
    n_real_balls = torch.zeros(y.shape[0], dtype=torch.float64)  # density numerator
    recalled = torch.zeros(n, dtype=torch.bool)
    covered = torch.zeros(n, dtype=torch.bool)
    for sl in chunks(y.shape[0], chunk_rows(n)):
        d = cdist(x, y[sl])                                   # (N, c)
        inside = d < r[:, None]
        in_real_ball[sl] = inside.any(0)
        n_real_balls[sl] = inside.sum(0, dtype=torch.float64)
        recalled |= (d < f[sl][None, :]).any(1)
        covered |= inside.any(1)
    return {"precision": float(in_real_ball.double().mean()), "recall": float(recalled.double().mean()),
            "density": float(n_real_balls.mean() / k), "coverage": float(covered.double().mean()), "k": k}
