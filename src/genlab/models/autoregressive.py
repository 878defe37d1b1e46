"""What the sequence autoregressive families (GPT, RNN/LSTM/GRU, WaveNet) share.

Chain rule:  p(x) = Π_{t=0}^{T-1} p(x_t | x_<t),   log p(x) = Σ_t log p(x_t | x_<t)   (exact).

Every model here reads a *shifted* input  u = [START, x_0, …, x_{T-2}]  with a network whose
output at t depends only on u_{≤t} (= START and x_<t), and outputs

- discrete data (text, digit levels, binarised pixels): logits over the V levels of x_t;
- continuous data (real-valued sequences (T,) or (T, C)): a Gaussian mixture
  (:class:`~genlab.models.mdn.MixtureDensityHead`) over x_t.

START is an extra token (index V) for discrete data and a flag channel for continuous data. On text
windows cut at random offsets START means "the context starts here", so a model can slide its
window when generating longer text. Images are flattened in raster order.

A family implements ``core(u, c, state) -> (out (B, L, F), state)``: ``u`` holds the *new* inputs
(B, L) (discrete) or (B, L, C+1) (continuous), ``c`` an optional class embedding (B, E), and
``state`` what the family carries between calls (key/value cache, hidden state, history; ``None``
first). Sampling and decoding (greedy, temperature, top-k, top-p, beam search, prompts) then come
from :mod:`genlab.sampling.decoding` for every family alike.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo
from ..sampling import decoding
from .base import GenerativeModel, ModelError
from .mdn import MixtureDensityHead

__all__ = ["SequenceARModel"]


class SequenceARModel(GenerativeModel):
    likelihood = "exact"
    conditional_ok = True

    # ---- layout ---------------------------------------------------------------------------------
    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if not info.discrete and info.modality not in ("sequence", "vector"):
            raise ModelError(f"{cls.name}: continuous {info.modality} data are not supported; it models discrete "
                             "data (text, image levels) and real-valued sequences (T,) or (T, C)")
        if not info.discrete and len(info.shape) > 2:
            raise ModelError(f"{cls.name}: real-valued sequences must have shape (T,) or (T, C), got {info.shape}")

    def _setup_layout(self, feature_dim: int, components: int, min_std: float = 1e-3, class_dim: int = 0):
        """Call from ``__init__`` after building the core: sets sizes, START handling and the output head."""
        info = self.info
        self.discrete = info.discrete
        if self.discrete:
            self.V = info.num_levels
            self.T = info.dim                                         # images / windows flattened
            self.C = 1
            self.head = nn.Linear(feature_dim, self.V) if feature_dim else None
        else:
            self.V = None
            self.T = info.shape[0]
            self.C = info.shape[1] if len(info.shape) == 2 else 1
            self.head = MixtureDensityHead(feature_dim, self.C, components, min_std)
        self.class_emb = nn.Embedding(info.num_classes, class_dim) if (class_dim and info.cond == "label") else None
        self.conditional_ok = self.class_emb is not None   # unconditional: cond= is refused

    @property
    def input_size(self) -> int:
        """Number of input tokens (discrete: V levels + START) or input channels (continuous: C + flag)."""
        return self.info.num_levels + 1 if self.info.discrete else (self.info.shape[1] if len(self.info.shape) == 2 else 1) + 1

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1) if self.discrete else x.reshape(len(x), self.T, self.C)

    def _start(self, B: int) -> torch.Tensor:
        if self.discrete:
            return torch.full((B, 1), self.V, dtype=torch.long, device=self.device)
        u = torch.zeros(B, 1, self.C + 1, device=self.device)
        u[..., -1] = 1.0
        return u

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        """Values x (B, L[, C]) → inputs (discrete: same tokens; continuous: add a zero flag channel)."""
        return x if self.discrete else F.pad(x, (0, 1))

    def shifted_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """u = [START, x_0, …, x_{T-2}]."""
        xf = self._flat(x)
        return torch.cat([self._start(len(x)), self._as_input(xf[:, :-1])], 1)

    def _class(self, cond, B: int):
        if cond is None:
            if self.class_emb is not None:
                raise ModelError(f"{self.name} is class-conditional (class_cond=true): pass cond= (labels)")
            return None
        if self.info.cond != "label":
            raise ModelError(f"{self.name}: cond= is only supported for labelled data (class-conditional)")
        if self.class_emb is None:      # an unconditional model of labelled data: p(x), labels ignored
            return None
        cond = torch.as_tensor(cond, dtype=torch.long, device=self.device).reshape(-1)
        if len(cond) == 1:
            cond = cond.expand(B)
        if len(cond) != B:
            raise ModelError(f"{self.name}: cond has {len(cond)} labels for {B} examples")
        return self.class_emb(cond)

    # ---- the family's network ---------------------------------------------------------------------
    def core(self, u: torch.Tensor, c: torch.Tensor | None, state):
        raise NotImplementedError

    def outputs(self, x: torch.Tensor, cond=None):
        """Teacher-forced outputs for every position: logits (B, T, V) or mixture params (B, T, ·)."""
        h, _ = self.core(self.shifted_inputs(x), self._class(cond, len(x)), None)
        return self.head(h) if self.head is not None else h

    # ---- likelihood ---------------------------------------------------------------------------------
    def token_log_probs(self, x: torch.Tensor, cond=None) -> torch.Tensor:
        """log p(x_t | x_<t) for every position: (B, T)."""
        out = self.outputs(x, cond)
        xf = self._flat(x)
        if self.discrete:
            return torch.gather(F.log_softmax(out, -1), -1, xf[..., None]).squeeze(-1)
        return MixtureDensityHead.log_prob(out, xf)

    def log_prob(self, x, cond=None, **options):
        """Exact log p(x) = Σ_t log p(x_t | x_<t), nats per example."""
        self.check_input(x, cond)
        return self.token_log_probs(x, cond).sum(1)

    def loss(self, batch, phase="main"):
        lp = self.token_log_probs(batch["x"], batch.get("y") if self.class_emb is not None else None)
        nll_tok = -lp.mean()
        return {"loss": nll_tok, "nll": nll_tok.detach() * lp.shape[1], "nll_after_first": -lp[:, 1:].detach().mean()}

    # ---- text helpers ---------------------------------------------------------------------------------
    def encode(self, text: str) -> torch.Tensor:
        """Characters → token ids (1-D int64), using the vocabulary saved with the model."""
        vocab = self.info.vocab
        if not vocab:
            raise ModelError(f"{self.name}: prompts need a text model (this one was trained on {self.info.name!r} "
                             "without a vocabulary)")
        index = {ch: i for i, ch in enumerate(vocab)}
        bad = sorted({ch for ch in text if ch not in index})
        if bad:
            raise ModelError(f"prompt has characters outside the vocabulary: {''.join(bad)!r}")
        return torch.tensor([index[ch] for ch in text], dtype=torch.long)

    def decode(self, tokens) -> list[str]:
        """Token ids (N, L) → list of N strings."""
        if not self.info.vocab:
            raise ModelError(f"{self.name}: decode needs a text model with a vocabulary")
        tokens = torch.as_tensor(tokens).reshape(len(tokens), -1)
        return ["".join(self.info.vocab[i] for i in row.tolist()) for row in tokens]

    def _step_fn(self, c):
        def step(u, state):
            h, state = self.core(u, c, state)
            return self.head(h) if self.head is not None else h, state
        return step

    # ---- sampling -------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, prompt=None, max_new_tokens: int | None = None,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               greedy: bool = False, beam_width: int | None = None, **options):
        """Draw ``n`` sequences by ancestral sampling, x_t ~ p(x_t | x_<t).

        Discrete data: ``temperature`` (0 = greedy), ``top_k``, ``top_p`` (nucleus), ``greedy``,
        ``beam_width`` (beam search; returns the ``n`` best beams of one prompt). Text models take a
        ``prompt`` string (prefix conditioning) and ``max_new_tokens`` (default: the training
        window length); they return token ids (n, len(prompt) + max_new_tokens) — turn them into
        strings with ``model.decode``. Without a prompt or ``max_new_tokens``, the result is shaped
        like the data. Continuous data: ``temperature`` scales the mixture's standard deviations.
        ``cond``: class labels (n,) or one label for class-conditional models.
        """
        if options:
            raise ModelError(f"{self.name}.sample: unknown option(s) {', '.join(options)}; options are "
                             f"{', '.join(decoding.DECODING_OPTIONS)}")
        was_training = self.training
        self.eval()
        try:
            c = self._class(cond, n)
            if not self.discrete:
                return self._sample_continuous(n, c, generator, temperature, max_new_tokens)
            return self._sample_discrete(n, c, generator, prompt, max_new_tokens, temperature, top_k, top_p,
                                         greedy, beam_width)
        finally:
            self.train(was_training)

    def _sample_discrete(self, n, c, generator, prompt, max_new_tokens, temperature, top_k, top_p, greedy, beam_width):
        decoding.check_decoding_options(temperature, top_k, top_p)
        if prompt is not None and self.info.modality != "text":
            raise ModelError(f"{self.name}: prompt= is for text models; this one models {self.info.modality} data")
        p = self.encode(prompt).to(self.device) if prompt else torch.zeros(0, dtype=torch.long, device=self.device)
        new = max_new_tokens if max_new_tokens is not None else self.T
        if self.info.modality != "text" and max_new_tokens is not None and max_new_tokens != self.T:
            raise ModelError(f"{self.name}: max_new_tokens is for text models; images/sequences have {self.T} values")
        if new < 1:
            raise ModelError(f"max_new_tokens must be >= 1, got {new}")
        prefix = torch.cat([self._start(1), p[None]], 1)
        if beam_width:
            if c is not None and len(c) > 1 and not torch.equal(c, c[:1].expand_as(c)):
                raise ModelError("beam search decodes one condition at a time: pass a single label")
            if n > beam_width:
                raise ModelError(f"beam search returns at most beam_width={beam_width} sequences; n={n}")
            seqs, _ = decoding.beam_search(self._step_fn(None if c is None else c[:1]), prefix, new, beam_width)
            out = seqs[:n, 1:]
        else:
            out = decoding.generate(self._step_fn(c), prefix.expand(n, -1), new, temperature, top_k, top_p,
                                    greedy, generator)[:, 1:]
        return out.reshape(n, *self.info.shape) if out.shape[1] == self.T else out

    def _sample_continuous(self, n, c, generator, temperature, max_new_tokens):
        T = max_new_tokens or self.T
        u, state, xs = self._start(n), None, []
        for t in range(T):
            h, state = self.core(u, c, state)
            x_t = MixtureDensityHead.sample(self.head(h[:, -1]), generator, temperature)   # (n, C)
            xs.append(x_t)
            u = self._as_input(x_t[:, None])
        x = torch.stack(xs, 1)
        return x.reshape(n, *self.info.shape) if T == self.T else (x if len(self.info.shape) == 2 else x[..., 0])

    @torch.no_grad()
    def generate_text(self, prompt: str = "", max_new_tokens: int = 200, **options) -> str:
        """One string: the prompt followed by ``max_new_tokens`` sampled characters."""
        return self.decode(self.sample(1, prompt=prompt or None, max_new_tokens=max_new_tokens, **options))[0]

    def likelihood_info(self, **options):
        return {"kind": "exact", "units": "nats/example", "tokens_per_example": self.T}


def dilations_for(length: int, kernel_size: int = 2, max_layers: int = 12) -> tuple[int, ...]:
    """Dilations 1, 2, 4, … until the receptive field 1 + Σ (k−1)d covers ``length``."""
    ds, rf = [], 1
    while rf < length and len(ds) < max_layers:
        d = 2 ** len(ds)
        ds.append(d)
        rf += (kernel_size - 1) * d
    return tuple(ds) or (1,)

