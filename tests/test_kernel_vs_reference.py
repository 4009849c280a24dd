"""The core test: the kernel equals cdropout.reference byte for byte, over both
streams, dtypes, sizes around the block length, p, seeds, thread counts, offsets and
memory layouts."""

import numpy as np
import pytest

import cdropout
from cdropout import _kernel, reference
from cdropout.testing import assert_same_bytes

B = _kernel.BLOCK
DTYPES = [np.float16, np.float32, np.float64]
SIZES = [0, 1, 15, 17, B - 1, B, B + 1, 3 * B + 7]
PS = [0.0, 1e-9, 0.1, 0.5, 0.9, 1.0]
OFFSETS = [0, B - 1, 2**31 - 5, 2**32 - 5]  # the last two cross 2**31 and 2**32
SEEDS = [0, 2**64 - 1, 987654321]


def _data(size, dtype):
    # signed values, with inf, -inf, NaN and -0.0 among them where the size allows
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)
    x[1::97] = np.inf
    x[2::89] = -np.inf
    x[3::83] = np.nan
    x[4::79] = -0.0
    return x


@pytest.mark.parametrize("stream", ["xoshiro", "counter"])
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_equals_reference(dtype, size, p, offset, stream):
    x = _data(size, dtype)
    for seed in SEEDS:
        for mode in ("inverted", "classic"):
            desired = reference.dropout(
                x, p, seed=seed, offset=offset, mode=mode, stream=stream
            )
            for n_threads in (1, 2, 3):
                actual = cdropout.dropout(
                    x, p, seed=seed, offset=offset, mode=mode, n_threads=n_threads,
                    stream=stream,
                )
                assert_same_bytes(actual, desired)
    in_place = x.copy()
    result = cdropout.dropout(in_place, p, seed=SEEDS[0], offset=offset, out=in_place,
                              stream=stream)  # fmt: skip
    assert result is in_place
    desired = reference.dropout(x, p, seed=SEEDS[0], offset=offset, stream=stream)
    assert_same_bytes(in_place, desired)


@pytest.mark.parametrize("stream", ["xoshiro", "counter"])
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("size", SIZES)
def test_mask_equals_reference(size, p, offset, stream):
    for seed in SEEDS:
        assert_same_bytes(
            cdropout.dropout_mask(size, p, seed=seed, offset=offset, stream=stream),
            reference.dropout_mask(size, p, seed=seed, offset=offset, stream=stream),
        )


def _layouts(dtype):
    """(name, array) pairs of one logical 2-D array in many memory layouts."""
    base = _data(7 * 1200, dtype).reshape(7, 1200)
    swapped = base.astype(base.dtype.newbyteorder("S"))
    raw = np.zeros(base.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, base.dtype, base.size, offset=1).reshape(
        base.shape
    )
    misaligned[...] = base
    big = _data(14 * 3600, dtype).reshape(14, 3600)
    return [
        ("c", base),
        ("fortran", np.asfortranarray(base)),
        ("strided", big[::2, ::3]),
        ("negative", big[::-2, ::-3]),
        ("transposed", big[:7, :1200].T),
        ("non-native", swapped),
        ("misaligned", misaligned),
        ("0-d", np.array(dtype(1.5))),
        ("column", big[:, 5]),
    ]


@pytest.mark.parametrize("offset", [0, B - 1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_layout_gives_the_bytes_of_its_contiguous_native_copy(dtype, offset):
    for name, x in _layouts(dtype):
        contiguous = np.array(x, x.dtype.newbyteorder("="), order="C")
        desired = reference.dropout(contiguous, 0.4, seed=3, offset=offset)
        actual = cdropout.dropout(x, 0.4, seed=3, offset=offset, n_threads=2)
        assert_same_bytes(actual, desired), name
        assert actual.flags.c_contiguous and actual.dtype.isnative, name


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_on_a_view_writes_only_the_view(dtype):
    for name, view_of in [
        ("strided", np.s_[::2, ::3]),
        ("negative", np.s_[::-3, ::-2]),
    ]:
        base = _data(14 * 3600, dtype).reshape(14, 3600)
        before = base.copy()
        view = base[view_of]
        desired = reference.dropout(view, 0.4, seed=8)
        assert cdropout.dropout(view, 0.4, seed=8, out=view) is view
        assert_same_bytes(view, desired)
        untouched = np.ones(base.shape, bool)
        untouched[view_of] = False
        assert_same_bytes(base[untouched], before[untouched]), name


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_on_non_native_and_misaligned_arrays(dtype):
    for name, x in _layouts(dtype):
        if name not in ("non-native", "misaligned", "fortran"):
            continue
        desired = reference.dropout(x, 0.6, seed=4)
        assert cdropout.dropout(x, 0.6, seed=4, out=x) is x
        assert_same_bytes(np.array(x, x.dtype.newbyteorder("="), order="C"), desired)


@pytest.mark.parametrize("kind", ["far", "near"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_prefetch_choices_give_the_references_bytes_out_of_cache(kind, dtype):
    # above the 16 MiB under which blocks run in pairs, so the prefetching loop runs,
    # and between 1 and 16 MiB, where a separate output leaves the pairs for the near
    # prefetch's loop
    from cdropout import _kernel

    before = _kernel.prefetch_kind()
    try:
        _kernel.use_prefetch(kind)
        assert _kernel.prefetch_kind() == kind
        for size in (300_013, 4_500_013):
            x = np.random.default_rng(1).standard_normal(size).astype(dtype)
            desired = reference.dropout(x, 0.3, seed=9, offset=5)
            for out in (None, x.copy()):
                y = cdropout.dropout(x if out is None else out, 0.3, seed=9, offset=5,
                                     out=out, n_threads=2)  # fmt: skip
                assert_same_bytes(y, desired)
    finally:
        _kernel.use_prefetch(before)


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("p", [0.1, 1 / 3, 0.5, 0.999])
def test_float16_every_bit_pattern_rounds_as_the_reference(p, mode):
    # the kernel converts float16 itself (F16C on the AVX2 and AVX-512 paths, bit
    # arithmetic on the baseline one): every one of the 65,536 patterns (subnormals,
    # infinities, NaN payloads) and products that round to subnormals, to even and
    # past 65504 to inf must give NumPy's float32 round trip
    patterns = np.arange(2**16, dtype=np.uint16).view(np.float16)
    for offset in (0, 5):
        actual = cdropout.dropout(patterns, p, seed=7, mode=mode, offset=offset)
        desired = reference.dropout(patterns, p, seed=7, mode=mode, offset=offset)
        assert_same_bytes(actual, desired)
