"""cdropout: fast, deterministic dropout for NumPy arrays."""

import importlib.util as _util

if _util.find_spec("cdropout._kernel") is None:  # pragma: no cover - the message
    raise ImportError(
        "cdropout's compiled kernel (cdropout._kernel) is not built: this is probably "
        f"the source tree ({__path__[0]}). Build it in place with `pip install -e .`, "
        "or install with `pip install .` and import cdropout from another folder."
    )

# _runtime first (it sorts first): it imports the kernel, as it explains
from cdropout import _runtime, reference  # noqa: F401
from cdropout._runtime import openmp_enabled, show_config
from cdropout._version import __version__  # noqa: F401
from cdropout.functional import (
    alpha_dropout,
    draw_seed,
    dropout,
    dropout_mask,
    gaussian_dropout,
)
from cdropout.layers import AlphaDropout, Dropout, GaussianDropout
from cdropout.rescale import rescale_weights

__all__ = [
    "AlphaDropout",
    "Dropout",
    "GaussianDropout",
    "alpha_dropout",
    "draw_seed",
    "dropout",
    "dropout_mask",
    "gaussian_dropout",
    "openmp_enabled",
    "reference",
    "rescale_weights",
    "show_config",
]
