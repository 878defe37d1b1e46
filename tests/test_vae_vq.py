"""VQ-VAE: nearest codes, straight-through gradients, EMA update and restarts by hand, the bound."""
import math

import torch

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.models.vae import decoder_log_prob
from genlab.models.vqvae import VectorQuantizer


def test_nearest_code_and_straight_through_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3, beta=0.0, ema=False)
    z = torch.randn(20, 3, requires_grad=True)
    zst, idx, st = vq(z)
    brute = torch.cdist(z.detach(), vq.codebook.detach()).argmin(1)
    assert torch.equal(idx, brute)
    torch.testing.assert_close(zst, vq.codebook[idx])                 # forward value is z_q
    w = torch.randn(20, 3)
    (zst * w).sum().backward()
    torch.testing.assert_close(z.grad, w)                               # gradient passes straight through
    # codebook loss moves the codes, commitment moves the encoder
    vq2 = VectorQuantizer(8, 3, beta=0.5, ema=False)
    z2 = torch.randn(20, 3, requires_grad=True)
    _, i2, st2 = vq2(z2)
    (st2["commit"] + st2["codebook"]).backward()
    torch.testing.assert_close(z2.grad, 0.5 * 2 * (z2 - vq2.codebook[i2]).detach() / z2.numel())
    assert vq2.codebook.grad.abs().sum() > 0


def test_straight_through_reaches_the_encoder_in_the_model():
    info = DataInfo(shape=(1, 6, 6), kind="discrete", num_levels=5, modality="image")
    m = gl.create("vqvae", data=info, hidden=(16,), num_codes=8, code_dim=4, num_latents=2, beta=0.0)
    x = torch.randint(0, 5, (10, 1, 6, 6))
    # with β = 0 and EMA codes the encoder gets gradient only through the straight-through path
    m.loss({"x": x})["loss"].backward()
    g = sum(float(p.grad.abs().sum()) for p in m.encoder.parameters() if p.grad is not None)
    assert g > 0


def test_ema_update_restart_and_perplexity_by_hand():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, ema=True, decay=0.9, restart_threshold=0.0)
    cb0, cnt0, sum0 = vq.codebook.clone(), vq.ema_count.clone(), vq.ema_sum.clone()
    z = torch.randn(12, 2)
    _, idx, st = vq(z)
    n = torch.bincount(idx, minlength=4).float()
    cnt = 0.9 * cnt0 + 0.1 * n
    s = 0.9 * sum0 + 0.1 * torch.stack([z[idx == j].sum(0) for j in range(4)])
    tot = cnt.sum()
    smooth = (cnt + 1e-5) / (tot + 4 * 1e-5) * tot
    torch.testing.assert_close(vq.ema_count, cnt)
    torch.testing.assert_close(vq.codebook, s / smooth[:, None])
    p = n / 12
    ref = math.exp(-sum(float(q * math.log(q)) for q in p if q > 0))
    assert abs(float(st["perplexity"]) - ref) < 1e-5
    assert not torch.equal(vq.codebook, cb0)
    # all inputs at one code: perplexity 1; a dead code is restarted at an input
    vq2 = VectorQuantizer(4, 2, ema=True, decay=0.5, restart_threshold=0.3)
    with torch.no_grad():
        vq2.codebook.copy_(torch.tensor([[0.0, 0.0], [9.0, 9.0], [-9.0, 9.0], [9.0, -9.0]]))
    zz = 0.01 * torch.randn(16, 2)
    _, i3, st3 = vq2(zz)
    assert (i3 == 0).all() and abs(float(st3["perplexity"]) - 1.0) < 1e-5
    assert float(st3["restarted"]) == 0                       # counts 0.5 ≥ 0.3 after one step
    _, _, st4 = vq2(zz)
    assert float(st4["restarted"]) == 3                       # 0.25 < 0.3: three dead codes restarted
    assert (vq2.codebook[1:].norm(dim=1) < 0.2).all()         # now near the data


def test_bound_training_and_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (64, 1, 6, 6), generator=g)
    ds = Dataset(x=x, info=DataInfo(shape=(1, 6, 6), kind="discrete", num_levels=2, modality="image"))
    m = gl.create("vqvae", data=ds, hidden=(32,), num_codes=8, code_dim=4, num_latents=3)
    run = gl.train(m, ds, steps=5, batch_size=16, progress=False)
    assert {"perplexity", "used", "commit"} <= set(run.history[-1])
    lp = m.log_prob(x[:5])
    idx = m.encode_indices(x[:5])
    assert idx.shape == (5, 3)
    params = m.decode(m.quantizer.codebook[idx])
    torch.testing.assert_close(lp, decoder_log_prob("bernoulli", params, x[:5]) - 3 * math.log(8))
    s = m.sample(4, generator=torch.Generator().manual_seed(1))
    assert s.shape == (4, 1, 6, 6) and s.dtype == torch.int64
    assert torch.equal(s, m.sample(4, generator=torch.Generator().manual_seed(1)))
    m.save_pretrained(tmp_path / "v")
    r = gl.load(tmp_path / "v")
    torch.testing.assert_close(r.log_prob(x[:5]), lp)
    torch.testing.assert_close(r.quantizer.ema_count, m.quantizer.ema_count)
