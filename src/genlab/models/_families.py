"""Imports every family module so each registers itself, in the order of the syllabus. Add one line per family."""
from . import mdn  # noqa: F401  mixture density networks
from . import made, pixelcnn, wavenet, rnn, gpt  # noqa: F401,E401  autoregressive and language models
from . import realnvp, glow, maf, nsf  # noqa: F401,E401  normalising flows (maf registers maf and iaf)
from . import vae, hvae, gumbel, vqvae  # noqa: F401,E401  latent-variable models
from . import gan  # noqa: F401  adversarial
from . import ebm  # noqa: F401  energy-based
from . import ddpm, score, flow_matching  # noqa: F401,E401  diffusion, score-based, flow matching
from . import latent_diffusion, vq_prior  # noqa: F401,E401  hybrids
