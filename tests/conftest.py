import numpy as np
import pytest


def assert_same_bytes(actual, desired):
    """Equal dtype, shape and bit patterns: -0.0 and NaN payloads cannot hide."""
    assert actual.dtype == desired.dtype, (actual.dtype, desired.dtype)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    view = {2: np.uint16, 4: np.uint32, 8: np.uint64, 1: np.uint8}[
        actual.dtype.itemsize
    ]
    a = np.ascontiguousarray(actual).view(view)
    d = np.ascontiguousarray(desired).view(view)
    if not np.array_equal(a, d):
        bad = np.flatnonzero(a.reshape(-1) != d.reshape(-1))
        pytest.fail(
            f"{bad.size} of {a.size} elements differ, first at flat index {bad[0]}"
        )


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)
