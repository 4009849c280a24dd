"""The types of cdropout's public signatures (for annotations and the stubs)."""

from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal, TypeAlias, Union

import numpy as np
import numpy.typing as npt

# a float16, float32, float64 or bfloat16 array (results keep the input's dtype)
FloatArray: TypeAlias = npt.NDArray[Any]
# what numpy.random.default_rng takes, the legacy sources, or None (OS entropy)
Seed: TypeAlias = Union[
    None,
    int,
    np.integer[Any],
    Sequence[int],
    npt.NDArray[np.integer[Any]],
    np.random.SeedSequence,
    np.random.BitGenerator,
    np.random.Generator,
    np.random.RandomState,
    ModuleType,  # the numpy.random module itself
]
Mode: TypeAlias = Literal["inverted", "classic"]
Stream: TypeAlias = Literal["xoshiro", "counter"]
NoiseShape: TypeAlias = Sequence[Union[int, None]]
Shape: TypeAlias = Union[int, Sequence[int]]
Probability: TypeAlias = Union[float, np.floating[Any]]
