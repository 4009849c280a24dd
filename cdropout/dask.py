"""Dropout of Dask arrays that gives NumPy's exact bytes, whatever the chunking.

Each chunk is dropped out with the stream indices its elements have in the whole array:
the flat C-order index, so a chunk's rows are runs of consecutive indices, each run one
call of cdropout.dropout with its own `offset`. The result of
``cdropout.dask.dropout(darr, p, seed=s).compute()`` therefore equals
``cdropout.dropout(darr.compute(), p, seed=s)`` byte for byte, on any scheduler.
Dask runs chunks in parallel, so each chunk runs on one OpenMP thread. Needs the dask
extra: ``pip install "cdropout[dask]"``.
"""

import numpy as np

from cdropout import _params
from cdropout.functional import dropout as _dropout


def dropout(darr, p=0.5, *, seed=None, training=True, mode="inverted"):
    """Lazy dropout of a Dask array: one task per chunk.

    Parameters
    ----------
    darr : dask.array.Array of float16, float32 or float64
    p, training, mode
        As for cdropout.dropout.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
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
    p = _params.probability(p)
    training = _params.flag(training, "training")
    mode = _params.mode(mode)
    dtype = np.dtype(darr.dtype)
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise TypeError(
            f"darr must have dtype float16, float32 or float64, got {dtype}"
        )
    _params.offset(0, int(np.prod(darr.shape, dtype=np.int64)))
    if not training:
        _params.check_seed(seed)
        seed_value = None
    else:
        seed_value = _params.seed_value(seed)
    shape = darr.shape

    def chunk(block, block_info=None):
        starts = [start for start, _ in block_info[0]["array-location"]]
        return _drop_chunk(block, starts, shape, p, seed_value, training, mode)

    return darr.map_blocks(chunk, dtype=dtype.newbyteorder("="))


def _drop_chunk(block, starts, shape, p, seed, training, mode):
    """Dropout of one chunk placed at `starts` in an array of `shape`."""
    if not training:
        return _dropout(block, p, training=False, mode=mode)
    out = np.empty(block.shape, block.dtype.newbyteorder("="))
    if block.size == 0:
        return out
    # The chunk's last axes that span the whole array, with the one before them, are
    # runs of consecutive flat indices; the axes before those index the runs.
    split = len(shape)
    while (
        split > 0
        and starts[split - 1] == 0
        and block.shape[split - 1] == shape[split - 1]
    ):
        split -= 1
    split = max(split - 1, 0)
    strides = [int(np.prod(shape[k + 1 :], dtype=np.int64)) for k in range(len(shape))]
    run = int(np.prod(block.shape[split:], dtype=np.int64))
    runs = np.reshape(block, (-1, run))
    results = out.reshape(-1, run)
    inner_start = sum(starts[k] * strides[k] for k in range(split, len(shape)))
    for r, index in enumerate(np.ndindex(*block.shape[:split])):
        offset = inner_start + sum(
            (starts[k] + i) * strides[k] for k, i in enumerate(index)
        )
        _dropout(runs[r], p, seed=seed, mode=mode, offset=offset, out=results[r],
                 n_threads=1)  # fmt: skip
    return out
