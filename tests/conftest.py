import numpy as np
import pytest


def assert_same_bytes(actual, desired):
    """Equal dtype, shape and bit patterns: -0.0 and NaN payloads cannot hide."""
    assert actual.dtype == desired.dtype, (actual.dtype, desired.dtype)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    size = actual.dtype.itemsize  # element by element, as rows of bytes
    a = np.frombuffer(actual.tobytes(), np.uint8).reshape(-1, size)
    d = np.frombuffer(desired.tobytes(), np.uint8).reshape(-1, size)
    if not np.array_equal(a, d):
        bad = np.flatnonzero(np.any(a != d, axis=1))
        pytest.fail(
            f"{bad.size} of {a.size} elements differ, first at flat index {bad[0]}"
        )


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)
