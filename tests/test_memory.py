"""Memory, measured with tracemalloc (which sees NumPy's data buffers): in place nothing
extra, a new output the output only, backward the gradient only."""

import numpy as np
import pytest

import cdropout
from cdropout import _timing

SMALL = 1024  # bytes of Python objects (a result header, a small int) around a call


def _peak(call):
    call()  # once untraced: the first call of a process imports and caches
    return _timing.peak_bytes(call)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [None, 1, 2])
def test_in_place_allocates_nothing_and_a_new_output_only_the_output(dtype, n_threads):
    x = np.ones(1_000_000, dtype)
    in_place = _peak(
        lambda: cdropout.dropout(x, 0.5, seed=1, out=x, n_threads=n_threads)
    )
    assert in_place < SMALL
    new = _peak(lambda: cdropout.dropout(x, 0.5, seed=1, n_threads=n_threads))
    assert x.nbytes <= new < x.nbytes + SMALL


def test_mask_allocates_the_mask_only():
    peak = _peak(lambda: cdropout.dropout_mask(1_000_000, 0.5, seed=1))
    assert 1_000_000 <= peak < 1_000_000 + SMALL


def test_backward_allocates_the_gradient_only():
    layer = cdropout.Dropout(0.5, seed=1)
    x = np.ones(1_000_000, np.float32)
    layer(x)
    peak = _peak(lambda: layer.backward(x))
    assert x.nbytes <= peak < x.nbytes + SMALL
