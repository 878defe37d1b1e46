"""Latent diffusion: a prior trained by gl.train on the codes of a frozen VAE; the VAE stays
unchanged, the latent scale is set from the data, and save/load round-trips without the VAE folder."""
import torch

import genlab as gl
from genlab.data import DataInfo, Dataset


def test_latent_diffusion_two_stages(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(256, 4) * torch.tensor([2.0, 1.0, 0.5, 0.1])
    ds = Dataset(x, DataInfo(shape=(4,)))
    vae = gl.create("vae", data=ds, latent_dim=2, hidden=(16,))
    gl.train(vae, ds, steps=20, batch_size=64, progress=False)
    vae.save_pretrained(tmp_path / "vae")
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    for prior in ("ddpm", "flow-matching"):
        m = gl.create("latent-diffusion", data=ds, vae=str(tmp_path / "vae"), prior=prior, T=20, width=16, depth=1)
        run = gl.train(m, ds, steps=10, batch_size=64, progress=False)
        assert run.step == 10
        mu, _ = m.vae.encode(x)
        assert abs(float(m.scale) * mu[:64].std().item() - 1) < 0.5   # scale ≈ 1/std of the codes
        for k, v in m.vae.state_dict().items():
            assert torch.equal(v, before[k]), k                          # the VAE is frozen
        s = m.sample(5, generator=torch.Generator().manual_seed(0), steps=5)
        assert s.shape == (5, 4) and torch.isfinite(s).all()
        m.save_pretrained(tmp_path / prior)
        (tmp_path / "vae" / "model.safetensors").rename(tmp_path / "gone")   # loading must not need it
        m2 = gl.load(tmp_path / prior)
        (tmp_path / "gone").rename(tmp_path / "vae" / "model.safetensors")
        assert torch.equal(m2.sample(5, generator=torch.Generator().manual_seed(0), steps=5), s)
