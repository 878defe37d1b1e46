"""Variational autoencoders: ELBO, β-VAE with KL warm-up, IWAE, conditional VAE.

Kingma & Welling (2014), Rezende et al. (2014); Burda et al. (2016) for IWAE; Higgins et al.
(2017) for β; Bowman et al. (2016) / Sønderby et al. (2016) for KL warm-up; Sohn et al. (2015)
for the conditional VAE. Encoder q(z|x) = N(μ(x), diag σ²(x)); decoder p(x|z) one of

- ``bernoulli``    (binary data, num_levels = 2),
- ``categorical``  (a softmax over the num_levels levels of each pixel; Tomczak's digits VAE),
- ``logistic``     (discretised mixture of logistics, Salimans et al. 2017, per element),
- ``gaussian``     (continuous data; mean from the network, a learned per-dimension σ).

ELBO (Kingma & Welling 2014, eq. 3):
    L(x) = E_q[log p(x|z)] − β · KL(q(z|x) ‖ p(z))
with the KL in closed form for the standard-normal prior (``kl="analytic"``),
    KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²),
or by Monte Carlo with the same z, log q(z|x) − log p(z) (``kl="mc"``, and always for the
mixture, VampPrior and flow priors). β is multiplied by min(1, step / warmup) during the first
``warmup`` training steps. The engine does not pass the step to the model, so the model keeps a
``step`` buffer (checkpointed) that ``loss()`` increments on every training call.

IWAE bound (Burda et al. 2016, eq. 8), used as the training objective when ``iwae_k > 1`` and
by ``log_prob(x, num_samples=K)`` as the importance-weighted likelihood estimate:
    L_K(x) = E[ log (1/K) Σ_k p(x, z_k) / q(z_k|x) ],  z_k ~ q(z|x),
L_1 = ELBO ≤ L_K ≤ L_{K+1} → log p(x) as K → ∞.

``log_prob(x)`` (num_samples=1) returns the ELBO (kind "bound"); ``log_prob(x, num_samples=K)``
with K > 1 returns L_K (kind "estimate", K recorded by ``likelihood_info(num_samples=K)``),
batched over examples and chunked over K so K = 5000 runs on a CPU.

Decoder log-likelihoods (``decoder_log_prob``) use the shared ``models/likelihood.py`` for the
categorical and discretised-logistic cases.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo
from ..nn.conv import ConvDecoder, ConvEncoder
from ..nn.mlp import MLP
from . import likelihood
from .base import GenerativeModel, ModelError
from .priors import PRIORS, StandardNormal, make_prior, normal_log_prob
from .registry import register

DECODERS = ("bernoulli", "categorical", "logistic", "gaussian")


# --------------------------------------------------------------------------------------------
# decoder distributions p(x | params); params shaped (B, P, *shape), x shaped (B, *shape)
# --------------------------------------------------------------------------------------------
def decoder_params_per_element(kind: str, num_levels: int | None, mixtures: int) -> int:
    return {"bernoulli": 1, "categorical": num_levels or 0, "logistic": 3 * mixtures, "gaussian": 1}[kind]


def _split_logistic(params: torch.Tensor):
    """(B, 3M, *shape) → mixture logits, means, log-scales, each (B, *shape, M)."""
    m = params.shape[1] // 3
    p = params.movedim(1, -1)
    return p[..., :m], p[..., m:2 * m], p[..., 2 * m:].clamp(min=-7.0)


def decoder_log_prob(kind: str, params: torch.Tensor, x: torch.Tensor, num_levels: int | None = None,
                     logstd: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x | params) summed over all elements of one example → (B,)."""
    if kind == "bernoulli":
        lp = -F.binary_cross_entropy_with_logits(params[:, 0], x.to(params.dtype), reduction="none")
    elif kind == "categorical":
        lp = likelihood.categorical_log_prob(params.movedim(1, -1), x)
    elif kind == "logistic":
        # Salimans et al. (2017): P(k) = σ((x̃+δ−μ)/s) − σ((x̃−δ−μ)/s), x̃ = 2k/(L−1) − 1, δ = 1/(L−1),
        # edge bins extended to ∓∞; a mixture of M components per element (shared likelihood module).
        logit_pi, mu, log_s = _split_logistic(params)
        lp = likelihood.discretized_mix_logistic_log_prob(x, logit_pi, mu, log_s, num_levels)
    elif kind == "gaussian":
        mean = params[:, 0]
        ls = logstd.expand_as(mean)
        lp = -0.5 * math.log(2 * math.pi) - ls - 0.5 * ((x - mean) * torch.exp(-ls)) ** 2
    else:
        raise ValueError(kind)
    return lp.reshape(lp.shape[0], -1).sum(1)


def decoder_mean(kind: str, params: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
    """E[x | params] (in level units for discrete data, float) — for pictures and reconstructions."""
    if kind == "bernoulli":
        return torch.sigmoid(params[:, 0])
    if kind == "categorical":
        levels = torch.arange(params.shape[1], dtype=params.dtype, device=params.device)
        return (torch.softmax(params, 1) * levels.view(1, -1, *[1] * (params.dim() - 2))).sum(1)
    if kind == "logistic":
        m = params.shape[1] // 3
        pi, mu = torch.softmax(params[:, :m], 1), params[:, m:2 * m]
        return ((mu.clamp(-1, 1) + 1) / 2 * (num_levels - 1) * pi).sum(1)
    return params[:, 0]


def decoder_sample(kind: str, params: torch.Tensor, num_levels: int | None = None, logstd=None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """x ~ p(x | params): integer levels for discrete decoders, floats for the Gaussian."""
    dev = params.device

    def rand(shape):
        return torch.rand(shape, generator=generator).to(dev)

    if kind == "bernoulli":
        return (rand(params[:, 0].shape) < torch.sigmoid(params[:, 0])).long()
    if kind == "categorical":
        g = -torch.log((-torch.log(rand(params.shape).clamp(1e-20, 1))).clamp_min(1e-20))   # Gumbel-max
        return (params + g).argmax(1)
    if kind == "logistic":
        logit_pi, mu, log_s = _split_logistic(params)
        return likelihood.sample_discretized_mix_logistic(logit_pi.cpu(), mu.cpu(), log_s.cpu(), num_levels,
                                                          generator=generator).to(dev)
    mean = params[:, 0]
    return mean + torch.exp(logstd) * torch.randn(mean.shape, generator=generator).to(dev)


def default_decoder(info: DataInfo) -> str:
    if not info.discrete:
        return "gaussian"
    return "bernoulli" if info.num_levels == 2 else "categorical"


def cond_dim(info: DataInfo) -> int:
    if info.cond == "label":
        return int(info.num_classes)
    if info.cond == "continuous":
        return int(math.prod(info.cond_shape or (1,)))
    return 0


def cond_features(info: DataInfo, y: torch.Tensor, device) -> torch.Tensor:
    """One-hot labels or flattened continuous conditions, as float features."""
    if info.cond == "label":
        return F.one_hot(y.long().to(device), info.num_classes).float()
    return y.float().reshape(y.shape[0], -1).to(device)


@register("vae")
class VAE(GenerativeModel):
    """Variational autoencoder: ELBO / β-VAE with warm-up / IWAE, Gaussian latents, optional prior and labels."""

    likelihood = "bound"

    @dataclass
    class Config:
        latent_dim: int = 16
        hidden: tuple[int, ...] = (256, 256)     # MLP widths (encoder; decoder mirrors)
        net: str = "mlp"                         # mlp | conv (images)
        channels: tuple[int, ...] = (32, 64)     # conv widths per stride-2 level
        act: str = "silu"
        decoder: str = "auto"                    # auto | bernoulli | categorical | logistic | gaussian
        mixtures: int = 3                        # components of the discretised logistic
        prior: str = "normal"                    # normal | mog | vamp | flow
        prior_components: int = 10               # mog components / VampPrior pseudo-inputs
        beta: float = 1.0
        warmup: int = 0                          # KL warm-up steps (β·min(1, step/warmup))
        kl: str = "analytic"                     # analytic (normal prior only) | mc
        iwae_k: int = 1                          # >1: train on the IWAE bound with K samples
        conditional: bool = False                # condition encoder and decoder on y
        dropout: float = 0.0                     # dropout after each hidden MLP layer (small data overfit)

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if info.modality == "image" and len(info.shape) != 3:
            raise ModelError(f"vae: images must be (C, H, W), got shape {info.shape}")

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        c = self.config
        self.decoder_kind = default_decoder(info) if c.decoder == "auto" else c.decoder
        self._validate(info, c)
        self.conditional_ok = c.conditional
        self.cdim = cond_dim(info) if c.conditional else 0
        self.P = decoder_params_per_element(self.decoder_kind, info.num_levels, c.mixtures)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.build_networks()
        self.prior = make_prior(c.prior, c.latent_dim, self.info.shape, c.prior_components)
        self.logstd = nn.Parameter(torch.zeros(info.shape)) if self.decoder_kind == "gaussian" else None

    def _validate(self, info, c):
        if c.decoder not in DECODERS + ("auto",):
            raise ModelError(f"vae: decoder={c.decoder!r}; choose from auto, {', '.join(DECODERS)}")
        k = self.decoder_kind
        if k == "bernoulli" and info.num_levels != 2:
            raise ModelError("vae: decoder='bernoulli' needs binary data (num_levels=2); use 'categorical' "
                             "or 'logistic' for more levels (mnist5k: pass binarize=True)")
        if k in ("categorical", "logistic") and not info.discrete:
            raise ModelError(f"vae: decoder={k!r} needs discrete data; use decoder='gaussian' for continuous data")
        if k == "gaussian" and info.discrete:
            raise ModelError("vae: decoder='gaussian' needs continuous data; use 'categorical' or 'logistic'")
        if c.prior not in PRIORS:
            raise ModelError(f"vae: prior={c.prior!r}; choose from {', '.join(PRIORS)}")
        if c.kl not in ("analytic", "mc"):
            raise ModelError(f"vae: kl={c.kl!r}; choose 'analytic' or 'mc'")
        if c.net not in ("mlp", "conv"):
            raise ModelError(f"vae: net={c.net!r}; choose 'mlp' or 'conv'")
        if c.net == "conv" and len(info.shape) != 3:
            raise ModelError(f"vae: net='conv' needs images (C, H, W), got shape {info.shape}; use net='mlp'")
        if c.conditional and info.cond is None:
            raise ModelError("vae: conditional=True but the data have no labels/conditions")
        if c.conditional and c.prior == "vamp":
            raise ModelError("vae: the VampPrior is unconditional; use prior='normal' with conditional=True")
        if c.iwae_k < 1:
            raise ModelError("vae: iwae_k must be >= 1")

    def build_networks(self):
        c, info = self.config, self.info
        D, d = info.dim, c.latent_dim
        if c.net == "conv":
            self.encoder = ConvEncoder(info.shape, 2 * d, c.channels, c.act, extra_in=self.cdim)
            self.decoder = ConvDecoder(d + self.cdim, info.shape, c.channels, c.act,
                                       out_channels=self.P * info.shape[0])
        else:
            self.encoder = MLP(D + self.cdim, 2 * d, c.hidden, c.act, dropout=c.dropout)
            self.decoder = MLP(d + self.cdim, self.P * D, tuple(reversed(c.hidden)), c.act, dropout=c.dropout)

    # ---- networks ----------------------------------------------------------------------------
    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder input: discrete levels mapped to [0, 1]; continuous data unchanged."""
        dt = next(self.decoder.parameters()).dtype
        if self.info.discrete:
            return x.to(dt) / (self.info.num_levels - 1)
        return x.to(dt)

    def _cond(self, y, n):
        if not self.cdim:
            return None
        if y is None:
            raise ModelError(f"{self.name}: this model is conditional; pass cond= (labels or conditions)")
        return cond_features(self.info, y, self.device)

    def encode(self, x: torch.Tensor, y=None, scaled: bool = False):
        """(μ, log σ²) of q(z | x[, y]); ``scaled=True`` if x is already the encoder's input."""
        h = x if scaled else self.scale_input(x)
        cf = self._cond(y, h.shape[0])
        if self.config.net == "conv":
            out = self.encoder(h, cf)
        else:
            h = h.reshape(h.shape[0], -1)
            out = self.encoder(h if cf is None else torch.cat([h, cf], 1))
        mu, logvar = out.chunk(2, -1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor, cf: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder parameters, shaped (B, P, *data shape)."""
        if cf is not None:
            z = torch.cat([z, cf], 1)
        return self.decoder(z).reshape(z.shape[0], self.P, *self.info.shape)

    def _encode_scaled(self, u):
        return self.encode(u, None, scaled=True)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(z, encode=self._encode_scaled)

    def log_px(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return decoder_log_prob(self.decoder_kind, params, x, self.info.num_levels, self.logstd)

    # ---- objectives ---------------------------------------------------------------------------
    def beta_now(self) -> float:
        c = self.config
        if c.warmup <= 0:
            return c.beta
        return c.beta * min(1.0, float(self.step) / c.warmup)

    def elbo_terms(self, x, y=None, generator=None):
        """(log p(x|z), KL) per example with one reparameterised z ~ q(z|x)."""
        mu, logvar = self.encode(x, y)
        eps = torch.randn(mu.shape, generator=generator).to(mu) if generator is not None else torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps                       # reparameterisation trick
        rec = self.log_px(x, self.decode(z, self._cond(y, len(x))))
        if self.config.kl == "analytic" and isinstance(self.prior, StandardNormal):
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(-1)   # KL(N(μ,σ²) ‖ N(0,I))
        else:
            kl = normal_log_prob(z, mu, logvar) - self.prior_log_prob(z)  # one-sample MC KL
        return rec, kl

    def elbo(self, x, y=None, generator=None) -> torch.Tensor:
        rec, kl = self.elbo_terms(x, y, generator)
        return rec - kl

    def log_weights(self, x, y=None, k: int = 1, generator=None) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x); shape (B, k)."""
        mu, logvar = self.encode(x, y)
        B, d = mu.shape
        eps = (torch.randn((B, k, d), generator=generator).to(mu) if generator is not None
               else torch.randn(B, k, d, device=mu.device, dtype=mu.dtype))
        z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps
        cf = self._cond(y, B)
        zf = z.reshape(B * k, d)
        params = self.decode(zf, None if cf is None else cf.repeat_interleave(k, 0))
        lpx = self.log_px(x.repeat_interleave(k, 0), params).reshape(B, k)
        return lpx + self.prior_log_prob(z) - normal_log_prob(z, mu[:, None], logvar[:, None])

    def loss(self, batch, phase: str = "main"):
        x, y = batch["x"], batch.get("y")
        if self.training:
            self.step += 1
        D = self.info.dim
        if self.config.iwae_k > 1:
            lw = self.log_weights(x, y, self.config.iwae_k)
            bound = torch.logsumexp(lw, 1) - math.log(self.config.iwae_k)
            return {"loss": -bound.mean() / D, "iwae": bound.mean().detach()}
        rec, kl = self.elbo_terms(x, y)
        beta = self.beta_now()
        # loss per dimension (nats/dim) keeps gradient norms moderate under the engine's clipping
        loss = -(rec - beta * kl).mean() / D
        return {"loss": loss, "elbo": (rec - kl).mean().detach(), "rec": rec.mean().detach(),
                "kl": kl.mean().detach(), "beta": torch.tensor(beta)}

    # ---- likelihood ------------------------------------------------------------------------------
    @torch.no_grad()
    def log_prob(self, x, cond=None, num_samples: int = 1, batch_size: int = 64, max_rows: int = 32768,
                 generator: torch.Generator | None = None, progress: bool = False, **options):
        """ELBO (num_samples=1) or the importance-weighted estimate L_K (num_samples=K>1), nats/example.

        Examples are processed ``batch_size`` at a time and K in chunks of ``max_rows // batch_size``
        samples; L_K = logsumexp over all chunks − log K, so memory does not grow with K.
        """
        self.check_input(x, cond)
        if self.cdim and cond is None:
            raise ModelError(f"{self.name}: this model is conditional; pass cond=")
        was = self.training
        self.eval()
        K = int(num_samples)
        out = []
        it = range(0, x.shape[0], batch_size)
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, desc=f"{self.name} log_prob K={K}")
        for i in it:
            xb = x[i:i + batch_size].to(self.device)
            yb = None if cond is None else cond[i:i + batch_size]
            if K == 1:
                out.append(self.elbo(xb, yb, generator).cpu())
                continue
            chunk = max(1, max_rows // xb.shape[0])
            parts, done = [], 0
            while done < K:
                k = min(chunk, K - done)
                parts.append(torch.logsumexp(self.log_weights(xb, yb, k, generator), 1))
                done += k
            out.append((torch.logsumexp(torch.stack(parts, 1), 1) - math.log(K)).cpu())
        self.train(was)
        return torch.cat(out)

    def likelihood_info(self, num_samples: int = 1, **options):
        if int(num_samples) > 1:
            return {"kind": "estimate", "units": "nats/example", "method": "importance-weighted (IWAE)",
                    "num_samples": int(num_samples)}
        return {"kind": "bound", "units": "nats/example", "method": "ELBO", "num_samples": 1}

    # ---- sampling ---------------------------------------------------------------------------------
    def _labels(self, n, cond):
        if not self.cdim:
            if cond is not None:
                raise ModelError(f"{self.name} is not conditional; do not pass cond=")
            return None
        if cond is None:
            raise ModelError(f"{self.name}: this model is conditional; pass cond= (n labels or one label)")
        cond = torch.as_tensor(cond)
        if cond.ndim == 0 or (self.info.cond == "continuous" and cond.ndim == len(self.info.cond_shape or (1,))):
            cond = cond.unsqueeze(0).expand(n, *cond.shape)
        if cond.shape[0] != n:
            raise ModelError(f"{self.name}: cond has {cond.shape[0]} rows, expected {n}")
        return cond

    def sample_latent(self, n: int, generator=None) -> torch.Tensor:
        dt = next(self.decoder.parameters()).dtype
        return self.prior.sample(n, generator=generator, device=self.device, encode=self._encode_scaled).to(self.device, dt)

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator: torch.Generator | None = None, mean: bool = False,
               z: torch.Tensor | None = None, **options) -> torch.Tensor:
        """x ~ p(x|z), z ~ p(z). ``mean=True`` returns E[x|z] (float, level units) for pictures."""
        y = self._labels(n, cond)
        z = self.sample_latent(n, generator) if z is None else z.to(self.device)
        params = self.decode(z, None if y is None else cond_features(self.info, y, self.device))
        if mean:
            return decoder_mean(self.decoder_kind, params, self.info.num_levels)
        return decoder_sample(self.decoder_kind, params, self.info.num_levels, self.logstd, generator)


# ------------------------------------------------------------------------------------------------
# diagnostics (functions returning tensors; benchmarks/vae_figures.py draws them)
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def active_units(model: VAE, x: torch.Tensor, cond=None, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Active units (Burda et al. 2016): A_u = Cov_x(E_q[u|x]) > threshold. Returns (count, variances).
    A count near 0 signals posterior collapse."""
    mu, _ = model.encode(x.to(model.device), cond)
    var = mu.var(0)
    return int((var > threshold).sum()), var.cpu()


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor, cond=None) -> torch.Tensor:
    """E[x | z = μ(x)]: reconstructions (level units for discrete data) to show next to the inputs."""
    mu, _ = model.encode(x.to(model.device), cond)
    cf = None if cond is None or not model.cdim else cond_features(model.info, cond, model.device)
    return decoder_mean(model.decoder_kind, model.decode(mu, cf), model.info.num_levels)


@torch.no_grad()
def interpolate(model: VAE, xa: torch.Tensor, xb: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Decoded means along the straight line between the posterior means of xa and xb → (steps, *shape)."""
    ma, _ = model.encode(xa.unsqueeze(0).to(model.device))
    mb, _ = model.encode(xb.unsqueeze(0).to(model.device))
    t = torch.linspace(0, 1, steps, device=model.device)[:, None]
    return decoder_mean(model.decoder_kind, model.decode(ma + t * (mb - ma)), model.info.num_levels)


@torch.no_grad()
def traverse(model: VAE, x: torch.Tensor, dims=None, values=None) -> torch.Tensor:
    """Latent traversal: decode μ(x) with dimension j set to each value → (len(dims), len(values), *shape)."""
    mu, _ = model.encode(x.unsqueeze(0).to(model.device))
    dims = range(mu.shape[1]) if dims is None else dims
    values = torch.linspace(-3, 3, 7) if values is None else torch.as_tensor(values, dtype=torch.float32)
    rows = []
    for j in dims:
        z = mu.repeat(len(values), 1)
        z[:, j] = values.to(z)
        rows.append(decoder_mean(model.decoder_kind, model.decode(z), model.info.num_levels))
    return torch.stack(rows)


__all__ = ["VAE", "active_units", "reconstruct", "interpolate", "traverse", "decoder_log_prob", "decoder_mean",
           "decoder_sample", "DECODERS"]
