"""cdropout: fast, deterministic dropout for NumPy arrays."""

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

__version__ = "0.1.0"
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
