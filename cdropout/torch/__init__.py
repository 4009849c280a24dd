"""cdropout for PyTorch: CPU tensors through cdropout's kernel as real PyTorch operators
(torch.library, with autograd, torch.compile and torch.export), drop-in modules for
torch.nn's dropout in both conventions, and model conversion between the conventions.

Needs the torch extra: ``pip install "cdropout[torch]"``.
"""


def _require_the_extra() -> None:
    try:
        import ml_dtypes  # noqa: F401 - bfloat16 tensors travel as its arrays
        import torch  # noqa: F401
    except ImportError as error:  # pragma: no cover - the message is the point
        raise ImportError(
            f"cdropout.torch needs PyTorch and ml_dtypes ({error}): install the "
            'torch extra, pip install "cdropout[torch]"'
        ) from error


_require_the_extra()

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
from cdropout.torch.modules import (  # noqa: E402
    AlphaDropout,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
    FeatureAlphaDropout,
)

__all__ = [
    "AlphaDropout",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "alpha_dropout",
    "convert_mode",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "leaky_relu_dropout",
    "relu_dropout",
    "swap_dropout",
]
