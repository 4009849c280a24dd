"""cdropout: fast, deterministic dropout for NumPy arrays."""

import importlib.util as _util

if _util.find_spec("cdropout._kernel") is None:  # pragma: no cover - the message
    raise ImportError(
        "cdropout's compiled kernel (cdropout._kernel) is not built: this is probably "
        f"the source tree ({__path__[0]}). Build it in place with `pip install -e .`, "
        "or install with `pip install .` and import cdropout from another folder."
    )

# first: the kernel's import loads GNU OpenMP, with the short idle spin _spin explains
from cdropout import _spin  # noqa: F401  # isort: skip
from cdropout import reference
from cdropout._config import openmp_enabled, show_config
from cdropout.functional import (
    alpha_dropout,
    draw_seed,
    dropout,
    dropout_mask,
    gaussian_dropout,
)
from cdropout.layers import AlphaDropout, Dropout, GaussianDropout
from cdropout.rescale import rescale_weights

__version__ = "0.2.0"
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
