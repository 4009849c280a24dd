"""The pure NumPy twin of the kernel: the same stream, the same arithmetic, readable.

Every result of cdropout.dropout and cdropout.dropout_mask equals this module's byte for
byte. The streams (docs/stream.md; in C, cdropout/src/stream.h), element i being the
offset plus the flat C index, and key = mix64(seed + GAMMA)::

    "xoshiro":
        block      = i // BLOCK
        block_key  = mix64(key ^ fmix64(block))          fmix64: MurmurHash3's finaliser
        w[k]       = mix64(block_key + (k + 1) * GAMMA),  k = 0 .. 31
        lane l     = xoshiro128++ seeded (lo w[2l], hi w[2l], lo w[2l+1], hi w[2l+1])
        element j of a block takes output j // LANES of lane j % LANES
    "counter" (java.util.SplittableRandom's stream):
        gamma      = mix_gamma(seed + 2 GAMMA)
        u(i)       = the low (i even) or high (i odd) half of
                     mix64(key + (i // 2 + 1) gamma)

and element i is dropped iff its 32-bit word u(i) < T = round(p * 2**32).

It works on NumPy uint64 and uint32 arrays, vectorised over blocks and lanes, so that
wraparound is silent and 1e6 elements take a fraction of a second.
"""

import math

import numpy as np

from cdropout import _bfloat16, _call, _params
from cdropout._threads import resolve_threads

BLOCK = 4096  # elements per block, each with its own generator state
LANES = 16  # xoshiro128++ generators per block, interleaved element by element
GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment, 2**64 / golden ratio
_TWO_GAMMA = np.uint64(2 * 0x9E3779B97F4A7C15 % 2**64)
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


def mix_gamma(z):
    """java.util.SplittableRandom's mixGamma on a uint64 array: fmix64, made odd, with
    at least 24 changes between neighbouring bits."""
    z = fmix64(z) | np.uint64(1)
    transitions = np.bitwise_count(z ^ (z >> np.uint64(1)))
    return np.where(transitions < 24, z ^ np.uint64(0xAAAAAAAAAAAAAAAA), z)


def _rotl(x, k):
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def raw_stream(seed, offset, n, stream="xoshiro"):
    """The stream's 32-bit words of elements [offset, offset + n)."""
    if n == 0:
        return np.empty(0, np.uint32)
    if _params.stream(stream) == "counter":
        return _counter_words(seed, offset, n)
    return _xoshiro_words(seed, offset, n)


def _counter_words(seed, offset, n):
    seed = np.array([seed], np.uint64)
    key, gamma = mix64(seed + GAMMA), mix_gamma(seed + _TWO_GAMMA)
    first_pair, last_pair = offset // 2, (offset + n - 1) // 2
    pairs = np.arange(first_pair, last_pair + 1, dtype=np.uint64)
    z = mix64(key + (pairs + np.uint64(1)) * gamma)
    halves = np.stack([z & _LOW32, z >> np.uint64(32)], axis=1).astype(np.uint32)
    start = offset - 2 * first_pair  # 0, or 1 when offset is odd
    return halves.reshape(-1)[start : start + n]


def _xoshiro_words(seed, offset, n):
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


def _keep(seed, p, offset, n, stream):
    """The flat keep decisions of stream elements [offset, offset + n)."""
    words = raw_stream(seed, offset, n, stream).astype(np.uint64)
    return words >= np.uint64(_params.threshold(p)) if p < 1.0 else np.zeros(n, bool)


def _flat_native_copy(x):
    """x as a flat, C-ordered copy in native byte order: what every twin computes on."""
    return np.array(x, dtype=x.dtype.newbyteorder("="), order="C").reshape(-1)


def _as_float32(values):
    """Values of a float array as float32 (exact for float16 and bfloat16)."""
    if _bfloat16.is_bfloat16(values.dtype):
        return _bfloat16.to_float32(_bfloat16.words(values))
    return values.astype(np.float32)


def _as_compute(values, compute):
    return _as_float32(values) if compute == np.float32 else values.astype(compute)


def _rounded(values, dtype):
    """float32 or float64 values rounded once to `dtype` (bfloat16 as the kernel)."""
    if _bfloat16.is_bfloat16(dtype):
        return _bfloat16.from_float32(values).view(dtype)
    return values.astype(dtype)


def _broadcast_flat(values, noise, shape):
    """Values of the mask's elements (C order), broadcast to x's shape, flat."""
    return np.broadcast_to(values.reshape(noise), shape).reshape(-1)


def _written(flat, call):
    """The flat result written into the call's output (out, or a new array)."""
    call.dst[...] = flat.reshape(call.x.shape)
    return call.dst


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
    stream="xoshiro",
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
    call = _call.checked(_call.DROPOUT, x, p, seed, training, mode, out, offset,
                         n_threads, noise_shape, stream)  # fmt: skip
    if not isinstance(call, _call.Call):
        return call  # evaluation
    x, p, seed, offset, noise = call.x, call.p, call.key, call.offset, call.noise
    flat = _flat_native_copy(x)
    if p > 0.0:  # p = 0 is an exact copy: not even a multiply by 1
        words = _keep(seed, p, offset, math.prod(noise), call.stream)
        keep = _broadcast_flat(words, noise, x.shape)
        if p < 1.0:
            scale = _params.training_scale(p, call.mode, x.dtype)
            with np.errstate(over="ignore", invalid="ignore"):  # inf, as in the kernel
                if x.dtype.itemsize == 2:  # float32 arithmetic, rounded once
                    kept = _rounded(_as_float32(flat) * np.float32(scale), flat.dtype)
                else:
                    kept = flat * flat.dtype.type(scale)
        else:
            kept = flat  # nothing is kept
        flat = np.where(keep, kept, flat.dtype.type(0.0))
    return _written(flat, call)


def alpha_dropout(x, p=0.5, *, seed=None, training=True, out=None, offset=0,
                  n_threads=None, noise_shape=None, stream="xoshiro"):  # fmt: skip
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
    call = _call.checked(_call.ALPHA, x, p, seed, training, "inverted", out, offset,
                         n_threads, noise_shape, stream)  # fmt: skip
    if not isinstance(call, _call.Call):
        return call  # evaluation: the identity
    x, p, seed, offset, noise = call.x, call.p, call.key, call.offset, call.noise
    flat = _flat_native_copy(x)
    if p > 0.0 and _params.threshold(p) == _params.THRESHOLD_ALL:
        flat = np.zeros_like(flat)
    elif p > 0.0:  # p = 0 is an exact copy
        words = _keep(seed, p, offset, math.prod(noise), call.stream)
        keep = _broadcast_flat(words, noise, x.shape)
        a, b, c = _params.alpha_constants(p, x.dtype)
        compute = np.float32 if x.dtype.itemsize <= 4 else np.float64
        with np.errstate(over="ignore", invalid="ignore"):
            kept = _as_compute(flat, compute) * compute(a) + compute(b)
        flat = _rounded(np.where(keep, kept, compute(c)), flat.dtype)
    return _written(flat, call)


_LN2 = 0.6931471805599453
_HALF_PI = 1.5707963267948966
_SQRT_HALF = 0.7071067811865476
# (-1)**k / (2k+1)! from k = 8 down, and (-1)**k / (2k)! from k = 9 down
_SIN_COEF = [1.0 / 355687428096000.0, -1.0 / 1307674368000.0, 1.0 / 6227020800.0,
             -1.0 / 39916800.0, 1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0,
             1.0]  # fmt: skip
_COS_COEF = [-1.0 / 6402373705728000.0, 1.0 / 20922789888000.0, -1.0 / 87178291200.0,
             1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0,
             1.0 / 24.0, -1.0 / 2.0, 1.0]  # fmt: skip


def _log_unit(u):
    """ln u for u in (0, 1], as src/gauss.h computes it: frexp, then 2 atanh(s)."""
    m, e = np.frexp(u)
    small = m < _SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = np.where(small, e - 1, e)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    t = np.full_like(s, 1.0 / 23.0)
    for k in range(21, 0, -2):
        t = t * s2 + 1.0 / k
    return e.astype(np.float64) * _LN2 + 2.0 * s * t


def _sincos_turn(w):
    """sin and cos of 2 pi w / 2**32, as src/gauss.h computes them."""
    n = (w.astype(np.uint64) + np.uint64(1 << 29)) >> np.uint64(30)
    f = (w.astype(np.int64) - n.astype(np.int64) * (1 << 30)) / 1073741824.0
    psi = f * _HALF_PI
    p2 = psi * psi
    sn = np.full_like(psi, _SIN_COEF[0])
    for c in _SIN_COEF[1:]:
        sn = sn * p2 + c
    cs = np.full_like(psi, _COS_COEF[0])
    for c in _COS_COEF[1:]:
        cs = cs * p2 + c
    sn = sn * psi
    quarter = (n & np.uint64(3)).astype(np.int64)
    sine = np.choose(quarter, [sn, cs, -sn, -cs])
    cosine = np.choose(quarter, [cs, -sn, -cs, sn])
    return sine, cosine


def standard_normal(seed, offset, n, stream="xoshiro"):
    """The stream's standard normal deviates of elements [offset, offset + n).

    Box-Muller on the words of each element pair (2k, 2k+1): u = (w[2k] + 1/2) / 2**32,
    r = sqrt(-2 ln u), and 2 pi w[2k+1] / 2**32 the angle; 2k takes the cosine side.
    """
    first = offset & ~1
    words = raw_stream(seed, first, ((offset & 1) + n + 1) & ~1, stream)
    k = (offset & 1) + np.arange(n)
    pair = k & ~1
    u = (words[pair].astype(np.float64) + 0.5) / 4294967296.0
    r = np.sqrt(-2.0 * _log_unit(u))
    sine, cosine = _sincos_turn(words[pair + 1])
    return np.where(k & 1, r * sine, r * cosine)


def gaussian_dropout(x, p=0.5, *, seed=None, training=True, out=None, offset=0,
                     n_threads=None, noise_shape=None, stream="xoshiro"):  # fmt: skip
    """Pure NumPy twin of cdropout.gaussian_dropout: the same arguments and bytes.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> x = np.linspace(-1, 1, 5)
    >>> bool(np.array_equal(cdropout.reference.gaussian_dropout(x, 0.3, seed=2),
    ...                     cdropout.gaussian_dropout(x, 0.3, seed=2)))
    True
    """
    call = _call.checked(_call.GAUSSIAN, x, p, seed, training, "inverted", out,
                         offset, n_threads, noise_shape, stream)  # fmt: skip
    if not isinstance(call, _call.Call):
        return call  # evaluation: the identity
    x, p, seed, offset, noise = call.x, call.p, call.key, call.offset, call.noise
    flat = _flat_native_copy(x)
    if p > 0.0 and flat.size:
        z = standard_normal(seed, offset, math.prod(noise), call.stream)
        factor = _broadcast_flat(1.0 + _params.gaussian_sigma(p) * z, noise, x.shape)
        compute = np.float32 if x.dtype.itemsize <= 4 else np.float64
        with np.errstate(over="ignore", invalid="ignore"):
            product = _as_compute(flat, compute) * factor.astype(compute)
            flat = _rounded(product, flat.dtype)
    return _written(flat, call)


def attention(query, key, value, p=0.0, *, seed, attn_mask=None, is_causal=False,
              scale=None):  # fmt: skip
    """Scaled dot-product attention with inverted dropout of its probabilities by the
    counter stream, written out in float64 (docs/stream.md, "Attention"): scores,
    softmax, the mask of probability (g, i, j) being stream element (g * L + i) * S + j
    of `seed`, then @ value. cdropout.torch.scaled_dot_product_attention computes the
    same in tiles, never storing the mask.

    query (..., L, E), key (..., S, E), value (..., S, Ev), with the same leading
    dimensions; attn_mask bool (True takes part) or float (added), broadcast to
    (..., L, S); is_causal: query i sees keys j <= i. A query that sees no key gives 0.
    """
    q, k, v = (np.asarray(a, np.float64) for a in (query, key, value))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    length, size = scores.shape[-2:]
    if is_causal:
        scores = np.where(np.tri(length, size, dtype=bool), scores, -np.inf)
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else (
            scores + mask
        )
    top = scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = weights.sum(axis=-1, keepdims=True)
    probs = weights / np.where(total == 0, 1.0, total)
    if p > 0.0:
        keep = _keep(seed, p, 0, probs.size, "counter").reshape(probs.shape)
        probs = np.where(keep, probs * _params.training_scale(p, "inverted",
                                                              np.float64), 0.0)
    return probs @ v


def dropout_mask(shape, p=0.5, *, seed=None, offset=0, n_threads=None,
                 stream="xoshiro"):  # fmt: skip
    """Pure NumPy twin of cdropout.dropout_mask: the same arguments and the same bytes.

    Examples
    --------
    >>> import cdropout
    >>> cdropout.reference.dropout_mask(8, 0.5, seed=7)
    array([ True,  True, False, False,  True, False, False,  True])
    """
    shape = _params.shape(shape)
    p = _params.probability(p)
    size = math.prod(shape)
    offset = _params.offset(offset, size)
    resolve_threads(n_threads)
    stream = _params.stream(stream)
    seed = _params.seed_value(seed)
    return _keep(seed, p, offset, size, stream).reshape(shape)
