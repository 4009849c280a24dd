"""docs/stream.md, the stream's specification: its known answers hold for the kernel,
the reference and the pure-Python implementation alike."""

import re
from pathlib import Path

import numpy as np
import pytest

import cdropout
from cdropout import _kernel, _params, reference
from cdropout.testing import GAMMA, call_seed, mix64, word

SPEC = Path(__file__).resolve().parent.parent / "docs" / "stream.md"
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason="needs the source tree")


def _table_rows(heading_words):
    """The rows of the first table after the line that contains heading_words."""
    lines = SPEC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if heading_words in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def test_the_known_words_hold_for_every_implementation():
    rows = _table_rows("Words `u(i)`")
    assert len(rows) >= 10
    for seed, index, expected in ((int(a), int(b), int(c)) for a, b, c in rows):
        assert word(seed, index) == expected
        assert int(_kernel.raw_stream(seed, index, 1)[0]) == expected
        assert int(reference.raw_stream(seed, index, 1)[0]) == expected


def test_the_counter_streams_known_words_hold_everywhere_and_in_pytorchs_operations():
    rows = _table_rows("Words `u(i)` of the counter stream")
    assert len(rows) >= 10
    counter = _kernel.STREAMS["counter"]
    for seed, index, expected in ((int(a), int(b), int(c)) for a, b, c in rows):
        assert word(seed, index, "counter") == expected
        assert int(_kernel.raw_stream(seed, index, 1, 1, counter)[0]) == expected
        assert int(reference.raw_stream(seed, index, 1, "counter")[0]) == expected
    torch = pytest.importorskip("torch")
    from cdropout.torch import _traced

    def int64(value):
        return value - 2**64 if value >= 2**63 else value

    keys = torch.tensor([int64(int(seed)) for seed, _, _ in rows])
    indices = torch.tensor([int64(int(index)) for _, index, _ in rows])
    pairs = zip(keys, indices, strict=True)
    words = torch.stack([_traced.words(key, index) for key, index in pairs])
    assert words.tolist() == [int(expected) for _, _, expected in rows]


def test_the_derived_values_hold():
    values = {row[0]: row[1] for row in _table_rows("Derived values")}
    key = values["`mix64(0 + GAMMA)`, the key of seed 0"].strip("`")
    assert mix64(GAMMA) == int(key, 16)
    t_half, t_tenth = (int(v) for v in values["`T` for p = 0.5 / 0.1"].split(" / "))
    assert (_params.threshold(0.5), _params.threshold(0.1)) == (t_half, t_tenth)
    seeds = [int(v) for v in values["`call_seed(7, k)`, k = 0, 1, 2"].split(", ")]
    assert [call_seed(7, k) for k in range(3)] == seeds
    assert [_kernel.call_seed(7, k) for k in range(3)] == seeds
    shown = values["`dropout(ones(8, float32), 0.5, seed=7)`"].strip("`").split()
    y = cdropout.dropout(np.ones(8, np.float32), 0.5, seed=7)
    assert y.tolist() == [float(v) for v in shown]
    shown = values["the same, `stream=\"counter\"`"].strip("`").split()
    y = cdropout.dropout(np.ones(8, np.float32), 0.5, seed=7, stream="counter")
    assert y.tolist() == [float(v) for v in shown]
    z = re.findall(r"-?\d+\.\d+", values["`z(0..3)` for seed 3"])
    assert np.allclose(reference.standard_normal(3, 0, 4), [float(v) for v in z],
                       atol=5e-8, rtol=0)  # fmt: skip
    factors = cdropout.gaussian_dropout(np.ones(4), 0.5, seed=3)  # sigma = 1
    assert np.array_equal(factors, 1.0 + reference.standard_normal(3, 0, 4))


def test_the_attention_known_answers_hold_for_the_reference_and_the_attention():
    rows = _table_rows("| seed | (G, L, S) |")
    assert len(rows) >= 6
    threshold = _params.threshold(0.5)
    small = []  # rows whose attention is computed whole, with PyTorch
    for seed, shape, place, element, expected, kept in rows:
        (groups, length, size), (g, i, j) = eval(shape), eval(place)  # noqa: S307
        index = (g * length + i) * size + j
        assert index == int(element)
        assert word(int(seed), index, "counter") == int(expected)
        assert (int(expected) >= threshold) == (kept == "kept")
        assert bool(reference._keep(int(seed), 0.5, index, 1, "counter")[0]) == (
            kept == "kept"
        )
        if groups * length * size <= 10**7:  # (4.9e9 probabilities: too long here)
            small.append((int(seed), groups, length, size, g, i, j, kept == "kept"))
    torch = pytest.importorskip("torch")
    from cdropout.torch import scaled_dot_product_attention

    for seed, groups, length, size, g, i, j, kept in small:
        q = torch.zeros(groups, length, 1, dtype=torch.float64)
        k = torch.zeros(groups, size, 1, dtype=torch.float64)
        v = torch.zeros(groups, size, 1, dtype=torch.float64)
        v[:, j, 0] = 1.0  # the output is the dropped probability of key j
        out = scaled_dot_product_attention(q, k, v, dropout_p=0.5, seed=seed)
        assert bool(out[g, i, 0] != 0) == kept
