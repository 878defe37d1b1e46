"""A short seeded run on a 2-D toy (8gaussians, 2000 points) reaches a stated energy distance to
held-out data for every sampler. Thresholds were measured (see each entry) with about 2× margin;
the untrained models measured 0.75 (flow matching: a near-identity flow of N(0, I)), 20 (ncsn) and
200–313 (ε-networks, whose x̂₀ blows up), so every threshold can fail. Data vs. data: 0.002.
Measured (seed 0): ddpm 0.043, ddim-25 0.120, fm euler-20 0.035, fm dopri5 0.035, sde em 0.041,
pc 0.063, probability-flow heun-25 0.160, ncsn 0.061."""
import pytest
import torch

import genlab as gl

STEPS = 400


def energy_distance(x, y):
    return (2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()).item()


@pytest.fixture(scope="module")
def data():
    return gl.load_dataset("8gaussians", n=2000), gl.load_dataset("8gaussians", split="test", n=800)




CASES = {  # family, config, [(sample options, measured ED → threshold)]
    "ddpm": ("ddpm", dict(T=100), [(dict(sampler="ddpm", steps=100), 0.1),      # measured 0.043
                                    (dict(sampler="ddim", steps=25), 0.25)]),     # 0.120
    "fm": ("flow-matching", {}, [(dict(sampler="euler", steps=20), 0.07),         # 0.035
                                 (dict(sampler="dopri5", rtol=1e-3, atol=1e-3), 0.07)]),   # 0.035
    "sde": ("score-sde", {}, [(dict(sampler="em", steps=100), 0.08),              # 0.041
                              (dict(sampler="pc", steps=50), 0.13),               # 0.063
                              (dict(sampler="heun", steps=25), 0.3)]),            # 0.160 (probability-flow ODE)
    "ncsn": ("ncsn", {}, [(dict(steps=30), 0.13)]),                             # 0.061
}


@pytest.mark.parametrize("case", list(CASES))
def test_toy_samplers_reach_the_data(case, data):
    ds, te = data
    name, kw, runs = CASES[case]
    torch.manual_seed(0)
    m = gl.create(name, data=ds, width=48, depth=2, **kw)
    before = energy_distance(m.sample(800, generator=torch.Generator().manual_seed(0), **runs[0][0]), te.x)
    gl.train(m, ds, steps=STEPS, batch_size=128, lr=3e-3, seed=0, progress=False)
    for opts, thr in runs:
        ed = energy_distance(m.sample(800, generator=torch.Generator().manual_seed(1), **opts), te.x)
        print(case, opts, f"ED {ed:.4f} (untrained {before:.3f}) NFE {m.last_nfe}")
        assert ed < thr < before, (case, opts, ed, before)
