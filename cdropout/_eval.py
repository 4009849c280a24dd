"""Dropout at evaluation time (training=False): no randomness, no stream consumed.

Shared by cdropout.functional and cdropout.reference: there is no kernel to check here.
inverted: the identity. classic: x * (1 - p), in float32 arithmetic for float16 inputs.
"""

import numpy as np

from cdropout import _bfloat16, _params


def evaluate(x, p, mode, out):
    """The evaluation-time output of dropout, written into out (or a new array)."""
    dst = _params.new_output(x) if out is None else out
    if mode == "inverted" or p == 0.0:
        if dst is not x:
            np.copyto(dst, x)
    elif p == 1.0:
        dst[...] = 0.0  # +0.0 everywhere, even where x holds inf or NaN
    elif _bfloat16.is_bfloat16(x.dtype):
        values = _bfloat16.to_float32(_bfloat16.words(x)) * np.float32(1.0 - p)
        _bfloat16.words(dst)[...] = _bfloat16.from_float32(values)
    else:
        compute = np.float32 if x.dtype.itemsize <= 4 else np.float64
        np.multiply(x, compute(1.0 - p), out=dst, dtype=compute, casting="same_kind")
    return dst
