"""vq-prior: an autoregressive prior over a frozen VQ-VAE's codes; its bound equals the VQ-VAE's
uniform-prior bound when the learned prior is replaced by the uniform one, and improves on it."""
import math

import torch

import genlab as gl
from genlab.data import DataInfo, Dataset


def test_vq_prior_bound_and_sampling(tmp_path):
    torch.manual_seed(0)
    x = torch.randint(0, 3, (300, 6))
    x[:, 3:] = x[:, :3]                        # structure the prior can learn
    ds = Dataset(x, DataInfo(shape=(6,), kind="discrete", num_levels=3))
    vq = gl.create("vqvae", data=ds, num_codes=8, code_dim=4, num_latents=3, hidden=(32,))
    gl.train(vq, ds, steps=60, batch_size=64, progress=False)
    vq.save_pretrained(tmp_path / "vq")
    m = gl.create("vq-prior", data=ds, vqvae=str(tmp_path / "vq"), prior="gpt",
                  prior_options='{"n_layer": 1, "n_head": 2, "n_embd": 32}')
    k = m.vqvae.encode_indices(x[:50])
    # identity: with log p_ψ replaced by the uniform −n log K the bound is the VQ-VAE's own
    lp_prior = m.prior.log_prob(k)
    assert torch.allclose(m.log_prob(x[:50]) - lp_prior - 3 * math.log(8), vq.log_prob(x[:50]), atol=1e-4)
    before = m.log_prob(x).mean().item()
    gl.train(m, ds, steps=150, batch_size=64, lr=3e-3, progress=False)
    after = m.log_prob(x).mean().item()
    assert after > vq.log_prob(x).mean().item() and after > before, (before, after)
    s = m.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 6) and s.dtype == torch.int64
    m.save_pretrained(tmp_path / "p")
    m2 = gl.load(tmp_path / "p")
    assert torch.allclose(m2.log_prob(x[:20]), m.log_prob(x[:20]), atol=1e-5)
