"""An atheris harness over the public API: random arrays, arguments and seeds.

    pip install atheris
    python tests/fuzz_api.py -max_total_time=300      # from the tests folder's parent

Each input builds a call of cdropout.dropout (or dropout_mask, or a Dropout layer): any
dtype, shape, strides, byte order, p, seed, offset, mode and `out`. A call must either
return exactly the bytes of cdropout.reference, or raise TypeError or ValueError like
the reference, with x and out untouched. Anything else (another exception, a crash,
different bytes) stops the fuzzer with the input that caused it. Coverage guidance comes
from the Python layer (atheris instruments it); the compiled kernel is exercised but not
instrumented.
"""

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    import cdropout
    from cdropout import reference

DTYPES = ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "<i4", "|b1", "<c8", "|O"]
SPECIAL_P = [0.0, 1.0, 0.5, float("nan"), float("inf"), -0.0, 1e-300, 1 - 2**-53]


def _array(data):
    dtype = np.dtype(data.PickValueInList(DTYPES))
    ndim = data.ConsumeIntInRange(0, 3)
    shape = [data.ConsumeIntInRange(0, 6 if ndim > 1 else 300) for _ in range(ndim)]
    steps = [data.PickValueInList([1, 2, -1, -3]) for _ in range(ndim)]
    base_shape = [max(1, n * abs(s)) for n, s in zip(shape, steps, strict=True)]
    base = np.arange(np.prod(base_shape)).reshape(base_shape)
    base = (
        (base * 0.37 - 11).astype(dtype) if dtype.kind != "O" else base.astype(object)
    )
    # (a leading Ellipsis keeps a 0-d array an array rather than a scalar)
    view = base[(Ellipsis, *(slice(None, None, s) for s in steps))]
    return view[(Ellipsis, *(slice(0, n) for n in shape))]


def _argument(data, kind):
    choice = data.ConsumeIntInRange(0, 6)
    if kind == "p":
        values = [data.ConsumeProbability(), data.PickValueInList(SPECIAL_P),
                  data.ConsumeFloat(), "0.5", None, True, np.float32(0.25)]  # fmt: skip
    elif kind == "seed":
        sequence = np.random.SeedSequence(data.ConsumeIntInRange(0, 99))
        values = [data.ConsumeIntInRange(0, 2**64 - 1), data.ConsumeInt(9), None, 1.0,
                  sequence, "7", True]  # fmt: skip
    else:  # offset
        values = [
            0,
            data.ConsumeIntInRange(0, 2**40),
            2**63 - 1,
            -1,
            2**32 - 3,
            1.5,
            None,
        ]
    return values[choice]


def _out(kind, order, x):
    """An `out` of one of six kinds, made alike for the kernel and the reference."""
    if kind == 0 or not isinstance(x, np.ndarray):
        return None
    if kind == 1:
        return x
    if kind == 2:
        return np.zeros(x.shape, x.dtype.newbyteorder(order))
    if kind == 3:
        out = np.zeros(x.shape, x.dtype)
        out.flags.writeable = False
        return out
    if kind == 4:
        return np.zeros(x.shape + (1,), x.dtype)
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)


def _same(a, b):
    """Bit for bit (object arrays: element for element)."""
    return (
        a.tolist() == b.tolist() if a.dtype.kind == "O" else a.tobytes() == b.tobytes()
    )


def _outcome(function, x, out, kwargs):
    try:
        return function(x, out=out, **kwargs), None
    except (TypeError, ValueError) as error:
        return None, type(error)


def test_one_input(raw):
    data = atheris.FuzzedDataProvider(raw)
    x = _array(data)
    kwargs = {
        "p": _argument(data, "p"),
        "seed": _argument(data, "seed"),
        "offset": _argument(data, "offset"),
        "mode": data.PickValueInList(["inverted", "classic", "other"]),
        "training": data.PickValueInList([True, False, 1]),
    }
    x_ref = x.copy()
    kind, order = data.ConsumeIntInRange(0, 5), data.PickValueInList(["<", ">"])
    out, out_ref = _out(kind, order, x), _out(kind, order, x_ref)
    x_before, out_before = x.copy(), None if out is None else out.copy()
    desired, desired_error = _outcome(reference.dropout, x_ref, out_ref, kwargs)
    actual, actual_error = _outcome(cdropout.dropout, x, out, kwargs)
    if actual_error != desired_error:
        raise AssertionError(f"errors differ: {actual_error} and {desired_error}")
    if actual_error is not None:
        assert _same(x, x_before), "a refused call changed x"
        if out is not None and out is not x:
            assert _same(out, out_before), "a refused call changed out"
        return
    if (actual.shape, actual.dtype.kind) != (desired.shape, desired.dtype.kind):
        raise AssertionError("shape or dtype differs from the reference")
    fresh_entropy = kwargs["seed"] is None and kwargs["training"] is True
    if not fresh_entropy and actual.tobytes() != desired.astype(actual.dtype).tobytes():
        raise AssertionError("bytes differ from the reference")


def main():
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
