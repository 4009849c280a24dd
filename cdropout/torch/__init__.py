"""cdropout for PyTorch: CPU tensors through cdropout's kernel as real PyTorch operators
(torch.library, with autograd, torch.compile and torch.export), drop-in modules for
torch.nn's dropout in both conventions, and model conversion between the conventions.

Needs the torch extra: ``pip install "cdropout[torch]"``.
"""

from cdropout import _extras

_extras.require("torch", "PyTorch and ml_dtypes", "torch", "ml_dtypes")

from cdropout.torch.attention import scaled_dot_product_attention  # noqa: E402
from cdropout.torch.convert import convert_mode, swap_dropout  # noqa: E402
from cdropout.torch.functional import (  # noqa: E402
    alpha_dropout,
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    feature_alpha_dropout,
    leaky_relu_dropout,
    relu_dropout,
)
from cdropout.torch.interception import checkpoint_context, intercept  # noqa: E402
from cdropout.torch.modules import (  # noqa: E402
    AlphaDropout,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    FeatureAlphaDropout,
    MultiheadAttention,
)

__all__ = [
    "AlphaDropout",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "MultiheadAttention",
    "alpha_dropout",
    "checkpoint_context",
    "convert_mode",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "intercept",
    "leaky_relu_dropout",
    "relu_dropout",
    "scaled_dot_product_attention",
    "swap_dropout",
]
