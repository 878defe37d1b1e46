"""Imports every family module so each registers itself. Add one line per family."""
from . import vae  # noqa: F401
from . import realnvp  # noqa: F401
