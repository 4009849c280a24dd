"""bfloat16 in NumPy as its 16-bit words: the twin of cdropout/src/half_floats.h.

bfloat16 is the upper half of a float32. NumPy has no such dtype of its own; arrays of
ml_dtypes.bfloat16 (JAX's NumPy type) are recognised by their dtype's name, and
PyTorch's bfloat16 tensors reach cdropout as uint16 views of their words.
"""

import numpy as np


def is_bfloat16(dtype):
    """Whether `dtype` is a bfloat16 (ml_dtypes'), by name: ml_dtypes is optional.
    (The kind first: NumPy computes dtype.name in Python, a microsecond a call.)"""
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def to_float32(words):
    """The float32 values of bfloat16 words (uint16), exact, as a new C-ordered array
    (the kernels that take it trust C order)."""
    wide = np.asarray(words, np.uint16).astype(np.uint32, order="C")
    return (wide << np.uint32(16)).view(np.float32)


def from_float32(values):
    """float32 values rounded to bfloat16 words, to nearest, ties to even; a NaN stays a
    quiet NaN with its sign (as the kernel's cdr_f32_to_bf16)."""
    u = np.asarray(values, np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> 16
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet = (u >> np.uint32(16)) | np.uint32(0x0040)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def words(x):
    """The uint16 view of a bfloat16 array (same shape and strides)."""
    return x.view(np.uint16)
