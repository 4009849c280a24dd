"""More than 2**31 elements in one call: 64-bit indices everywhere (slow: ~9 GB)."""

import numpy as np
import pytest

import cdropout
from cdropout import reference
from cdropout.testing import assert_same_bytes


@pytest.mark.slow
def test_one_call_over_more_than_2_to_31_elements():
    n = 2**31 + 4099
    x = np.ones(n, np.float32)
    cdropout.dropout(x, 0.5, seed=21, out=x)
    for start in (0, 2**31 - 3000, n - 5000):
        window = np.ones(5000, np.float32)
        desired = reference.dropout(window, 0.5, seed=21, offset=start)
        assert_same_bytes(x[start : start + 5000], desired)
    kept = np.count_nonzero(x)
    assert abs(kept - n / 2) < 6 * np.sqrt(n / 4)
