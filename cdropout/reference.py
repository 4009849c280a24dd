"""The pure NumPy twin of the kernel: the same stream, the same arithmetic, readable.

Every result of cdropout.dropout and cdropout.dropout_mask equals this module's byte for
byte. The stream (written out in cdropout/_xorshift.h too):

    key        = mix64(seed + GAMMA)                  mix64: splitmix64's finaliser
    block      = (offset + flat C index) // BLOCK
    block_key  = mix64(key ^ fmix64(block))          fmix64: MurmurHash3's finaliser
    w[k]       = mix64(block_key + (k + 1) * GAMMA),  k = 0 .. 31
    lane l     = xoshiro128++ seeded (lo w[2l], hi w[2l], lo w[2l+1], hi w[2l+1])
    element j of a block takes output j // LANES of lane j % LANES
    dropped    iff that 32-bit output < T = round(p * 2**32)

It works on NumPy uint64 and uint32 arrays, vectorised over blocks and lanes, so that
wraparound is silent and 1e6 elements take a fraction of a second.
"""

import numpy as np

from cdropout import _params
from cdropout._eval import evaluate

BLOCK = 4096  # elements per block, each with its own generator state
LANES = 16  # xoshiro128++ generators per block, interleaved element by element
GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment, 2**64 / golden ratio
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_LOW32 = np.uint64(0xFFFFFFFF)


def mix64(z):
    """splitmix64's finaliser (Stafford's Mix13) on a uint64 array."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def fmix64(z):
    """MurmurHash3's finaliser on a uint64 array: the hash of the block index."""
    z = (z ^ (z >> np.uint64(33))) * _FMIX1
    z = (z ^ (z >> np.uint64(33))) * _FMIX2
    return z ^ (z >> np.uint64(33))


def _rotl(x, k):
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def raw_stream(seed, offset, n):
    """The generator's 32-bit words of stream elements [offset, offset + n)."""
    if n == 0:
        return np.empty(0, np.uint32)
    first_block, last_block = offset // BLOCK, (offset + n - 1) // BLOCK
    blocks = np.arange(first_block, last_block + 1, dtype=np.uint64)
    key = mix64(np.array([seed], np.uint64) + GAMMA)
    block_key = mix64(key ^ fmix64(blocks))
    k = np.arange(1, 2 * LANES + 1, dtype=np.uint64)
    words = mix64(block_key[:, None] + k * GAMMA)  # (blocks, 2 * LANES)
    a, b = words[:, 0::2], words[:, 1::2]  # (blocks, LANES): lane l gets w[2l], w[2l+1]
    s0, s1 = (a & _LOW32).astype(np.uint32), (a >> np.uint64(32)).astype(np.uint32)
    s2, s3 = (b & _LOW32).astype(np.uint32), (b >> np.uint64(32)).astype(np.uint32)
    out = np.empty((blocks.size, BLOCK // LANES, LANES), np.uint32)
    for step in range(BLOCK // LANES):  # xoshiro128++, all blocks and lanes at once
        out[:, step] = _rotl(s0 + s3, 7) + s0
        t = s1 << np.uint32(9)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 11)
    start = offset - first_block * BLOCK
    return out.reshape(-1)[start : start + n]


def _keep(seed, p, offset, n):
    """The flat keep decisions of stream elements [offset, offset + n)."""
    words = raw_stream(seed, offset, n).astype(np.uint64)
    return words >= np.uint64(_params.threshold(p)) if p < 1.0 else np.zeros(n, bool)


def dropout(
    x,
    p=0.5,
    *,
    seed=None,
    training=True,
    mode="inverted",
    out=None,
    offset=0,
    n_threads=None,
    noise_shape=None,
):
    """Pure NumPy twin of cdropout.dropout: the same arguments and the same bytes.

    It works on a C-ordered native copy of `x`: the 32-bit words of the stream are
    compared with the threshold, kept elements multiplied by the scale in the dtype's
    arithmetic (float32 for float16, rounded once) and dropped ones set to +0.0. With a
    noise_shape, the decisions are those of the mask's own elements, broadcast to x.
    `n_threads` is checked, then ignored. See cdropout.dropout for the parameters.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.ones(8, np.float32)
    >>> cdropout.reference.dropout(x, 0.5, seed=7)
    array([2., 2., 0., 0., 2., 0., 0., 2.], dtype=float32)
    >>> bool(np.array_equal(_, cdropout.dropout(x, 0.5, seed=7)))
    True
    """
    from cdropout._threads import resolve_threads

    x, p, training, mode, out, offset = _params.dropout_args(
        x, p, training, mode, out, offset
    )
    noise = _params.noise_shape(noise_shape, x.shape)
    resolve_threads(n_threads)
    if not training:
        _params.check_seed(seed)
        return evaluate(x, p, mode, out)
    seed = _params.seed_value(seed)
    flat = np.array(x, dtype=x.dtype.newbyteorder("="), order="C").reshape(-1)
    if p > 0.0:  # p = 0 is an exact copy: not even a multiply by 1
        keep = _keep(seed, p, offset, int(np.prod(noise, dtype=np.int64)))
        keep = np.broadcast_to(keep.reshape(noise), x.shape).reshape(-1)
        if p < 1.0:
            scale = _params.training_scale(p, mode, x.dtype)
            with np.errstate(over="ignore", invalid="ignore"):  # inf, as in the kernel
                if x.dtype.itemsize == 2:  # float16: float32 arithmetic, rounded once
                    kept = (flat.astype(np.float32) * np.float32(scale)).astype(
                        np.float16
                    )
                else:
                    kept = flat * flat.dtype.type(scale)
        else:
            kept = flat  # nothing is kept
        flat = np.where(keep, kept, flat.dtype.type(0.0))
    result = flat.reshape(x.shape)
    if out is None:
        return result
    out[...] = result
    return out


def alpha_dropout(x, p=0.5, *, seed=None, training=True, out=None, offset=0,
                  n_threads=None):  # fmt: skip
    """Pure NumPy twin of cdropout.alpha_dropout: the same arguments and the same bytes.

    Kept elements become x * a + b (a multiply, then an add, in the dtype's arithmetic:
    float32 for float16, rounded once), dropped ones the constant c.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.linspace(-1, 1, 5)
    >>> bool(np.array_equal(cdropout.reference.alpha_dropout(x, 0.3, seed=2),
    ...                     cdropout.alpha_dropout(x, 0.3, seed=2)))
    True
    """
    from cdropout._threads import resolve_threads

    x, p, training, _, out, offset = _params.dropout_args(
        x, p, training, "inverted", out, offset
    )
    resolve_threads(n_threads)
    if not training:
        _params.check_seed(seed)
        return evaluate(x, p, "inverted", out)
    seed = _params.seed_value(seed)
    flat = np.array(x, dtype=x.dtype.newbyteorder("="), order="C").reshape(-1)
    if p > 0.0 and _params.threshold(p) == _params.THRESHOLD_ALL:
        flat = np.zeros_like(flat)
    elif p > 0.0:  # p = 0 is an exact copy
        keep = _keep(seed, p, offset, flat.size)
        a, b, c = _params.alpha_constants(p, x.dtype)
        compute = np.float32 if x.dtype.itemsize <= 4 else np.float64
        with np.errstate(over="ignore", invalid="ignore"):
            kept = flat.astype(compute) * compute(a) + compute(b)
        flat = np.where(keep, kept, compute(c)).astype(flat.dtype)
    result = flat.reshape(x.shape)
    if out is None:
        return result
    out[...] = result
    return out


def dropout_mask(shape, p=0.5, *, seed=None, offset=0):
    """Pure NumPy twin of cdropout.dropout_mask: the same arguments and the same bytes.

    Examples
    --------
    >>> import cdropout
    >>> cdropout.reference.dropout_mask(8, 0.5, seed=7)
    array([ True,  True, False, False,  True, False, False,  True])
    """
    shape = _params.shape(shape)
    p = _params.probability(p)
    size = int(np.prod(shape, dtype=np.int64))
    offset = _params.offset(offset, size)
    seed = _params.seed_value(seed)
    return _keep(seed, p, offset, size).reshape(shape)
