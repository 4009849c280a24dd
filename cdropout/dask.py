"""Dropout of Dask arrays that gives NumPy's exact bytes, whatever the chunking.

Each chunk is dropped out with the stream indices its elements have in the whole array:
the flat C-order index, so a chunk's rows are runs of consecutive indices, each run one
call of cdropout.dropout with its own `offset`. The result of
``cdropout.dask.dropout(darr, p, seed=s).compute()`` therefore equals
``cdropout.dropout(darr.compute(), p, seed=s)`` byte for byte, on any scheduler.
Dask runs chunks in parallel, so each chunk runs on one OpenMP thread. Needs the dask
extra: ``pip install "cdropout[dask]"``.
"""

import math

import numpy as np

from cdropout import _extras, _params
from cdropout.functional import apply_keep, dropout_mask
from cdropout.functional import dropout as _dropout

_extras.require("dask", "Dask", "dask.array")


def dropout(darr, p=0.5, *, seed=None, training=True, mode="inverted",
            noise_shape=None, stream="xoshiro"):  # fmt: skip
    """Lazy dropout of a Dask array: one task per chunk.

    Parameters
    ----------
    darr : dask.array.Array of float16, float32, float64 or bfloat16
        Its chunk sizes must be known (``darr.compute_chunk_sizes()`` finds them after
        boolean indexing).
    p, training, mode, noise_shape, stream
        As for cdropout.dropout.
    seed : None, int, or any seed that cdropout.dropout takes
        Resolved once, when the graph is built (a Generator gives one draw; None fresh
        entropy), so that every chunk and every recomputation uses the same stream.

    Returns
    -------
    dask.array.Array
        Native byte order, the chunks of `darr`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, cdropout, cdropout.dask
    >>> x = np.arange(1.0, 13.0).reshape(3, 4)
    >>> lazy = cdropout.dask.dropout(da.from_array(x, chunks=(2, 3)), 0.5, seed=1)
    >>> bool(np.array_equal(lazy.compute(), cdropout.dropout(x, 0.5, seed=1)))
    True
    """
    import dask.array as da

    if not isinstance(darr, da.Array):
        raise TypeError(
            f"darr must be a dask.array.Array, got {type(darr).__name__} (for NumPy "
            "arrays use cdropout.dropout, or wrap it with dask.array.from_array)"
        )
    p = _params.probability(p)
    training = _params.flag(training, "training")
    mode = _params.mode(mode)
    stream = _params.stream(stream)
    dtype = np.dtype(darr.dtype)
    if not _params.is_float(dtype):
        raise TypeError(
            f"darr must have dtype float16, float32, float64 or bfloat16, got {dtype}"
        )
    if any(math.isnan(size) for size in darr.shape):
        raise ValueError(
            f"darr must have known chunk sizes (each element's place in the stream "
            f"depends on them), got shape {darr.shape}: call darr.compute_chunk_sizes()"
        )
    shape = tuple(int(size) for size in darr.shape)
    _params.offset(0, math.prod(shape))
    noise = _params.noise_shape(noise_shape, shape)
    if not training:
        _params.check_seed(seed)
        seed_value = None
    else:
        seed_value = _params.seed_value(seed)

    def chunk(block, block_info=None):
        starts = [start for start, _ in block_info[0]["array-location"]]
        if not training:
            return _dropout(block, p, training=False, mode=mode)
        if noise == shape:
            return _drop_chunk(block, starts, shape, p, seed_value, mode, stream)
        return _drop_chunk_broadcast(block, starts, noise, p, seed_value, mode, stream)

    return darr.map_blocks(chunk, dtype=dtype.newbyteorder("="))


def _runs(starts, block_shape, shape):
    """The runs of consecutive stream indices in a block placed at `starts` in an array
    of `shape`: the run length and, row by row of the block seen as (-1, run), the
    flat index of each run's first element."""
    # The block's last axes that span the whole array, with the one before them, are
    # runs of consecutive flat indices; the axes before those index the runs.
    split = len(shape)
    while (
        split > 0
        and starts[split - 1] == 0
        and block_shape[split - 1] == shape[split - 1]
    ):
        split -= 1
    split = max(split - 1, 0)
    strides = [math.prod(shape[k + 1 :]) for k in range(len(shape))]
    run = math.prod(block_shape[split:])
    inner_start = sum(starts[k] * strides[k] for k in range(split, len(shape)))
    offsets = [
        inner_start + sum((starts[k] + i) * strides[k] for k, i in enumerate(index))
        for index in np.ndindex(*block_shape[:split])
    ]
    return run, offsets


def _drop_chunk(block, starts, shape, p, seed, mode, stream):
    """Dropout of one chunk placed at `starts` in an array of `shape`."""
    out = np.empty(block.shape, block.dtype.newbyteorder("="))
    if block.size == 0:
        return out
    run, offsets = _runs(starts, block.shape, shape)
    runs, results = np.reshape(block, (-1, run)), out.reshape(-1, run)
    for r, offset in enumerate(offsets):
        _dropout(runs[r], p, seed=seed, mode=mode, offset=offset, out=results[r],
                 n_threads=1, stream=stream)  # fmt: skip
    return out


def _drop_chunk_broadcast(block, starts, noise, p, seed, mode, stream):
    """Dropout of one chunk with a mask of shape `noise` broadcast over the array:
    the chunk's part of the mask, run by run, applied as cdropout.dropout applies it."""
    out = np.empty(block.shape, block.dtype.newbyteorder("="))
    if block.size == 0 or p == 0.0:  # p = 0: an exact copy, as cdropout.dropout
        np.copyto(out, block)
        return out
    broadcast = [n == 1 for n in noise]
    mask_starts = [0 if b else s for b, s in zip(broadcast, starts, strict=True)]
    mask_shape = tuple(
        1 if b else size for b, size in zip(broadcast, block.shape, strict=True)
    )
    keep = np.empty(mask_shape, np.uint8)
    run, offsets = _runs(mask_starts, mask_shape, noise)
    rows = keep.reshape(-1, run)
    for r, offset in enumerate(offsets):
        rows[r] = dropout_mask(run, p, seed=seed, offset=offset, n_threads=1,
                               stream=stream)  # fmt: skip
    scale = _params.training_scale(p, mode, block.dtype) if p < 1.0 else 0.0
    apply_keep(block, out, keep, scale)
    return out
