"""Imports every family module so each registers itself. Add one line per family."""
from . import vae  # noqa: F401
from . import realnvp  # noqa: F401
from . import mdn  # noqa: F401
from . import made  # noqa: F401
from . import pixelcnn  # noqa: F401
from . import wavenet  # noqa: F401
from . import rnn  # noqa: F401
from . import gpt  # noqa: F401
from . import gan  # noqa: F401
from . import maf  # noqa: F401
from . import nsf  # noqa: F401
from . import glow  # noqa: F401
from . import ddpm  # noqa: F401
from . import flow_matching  # noqa: F401
from . import score  # noqa: F401
from . import hvae  # noqa: F401
from . import vqvae  # noqa: F401
