"""cdropout.dask: any chunking gives the bytes of one NumPy call, on threads and on a
cluster of processes. Skipped without the dask extra (.ci/run installs it)."""

import numpy as np
import pytest

from cdropout.testing import assert_same_bytes

da = pytest.importorskip("dask.array")

import cdropout  # noqa: E402
import cdropout.dask as cdask  # noqa: E402

CHUNKINGS = [
    ((1000,), 7),
    ((1000,), 1000),
    ((30, 40), (7, 9)),  # uneven, both axes
    ((30, 40), (30, 9)),
    ((30, 40), (7, 40)),
    ((6, 7, 8), (2, 3, 8)),
    ((6, 7, 8), (6, 7, 3)),
    ((6, 7, 8), ((1, 5), (3, 4), (2, 6))),  # explicit uneven chunks
    ((5, 0), (2, 0)),
]


@pytest.mark.parametrize(("shape", "chunks"), CHUNKINGS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, ">f8"])
@pytest.mark.parametrize("stream", ["xoshiro", "counter"])
def test_any_chunking_gives_the_bytes_of_one_numpy_call(shape, chunks, dtype, stream):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    for mode in ("inverted", "classic"):
        lazy = cdask.dropout(da.from_array(x, chunks=chunks), 0.3, seed=11, mode=mode,
                             stream=stream)  # fmt: skip
        assert_same_bytes(
            lazy.compute(scheduler="threads"),
            cdropout.dropout(x, 0.3, seed=11, mode=mode, stream=stream),
        )


def test_the_stream_is_checked_when_the_graph_is_built():
    with pytest.raises(ValueError, match="stream must be"):
        cdask.dropout(da.ones(4), 0.5, seed=1, stream="philox")


def test_a_generator_seed_is_drawn_once_for_the_whole_graph():
    x = np.ones((40, 50))
    lazy = cdask.dropout(
        da.from_array(x, chunks=(7, 9)), 0.5, seed=np.random.default_rng(3)
    )
    first = lazy.compute(scheduler="threads")
    assert_same_bytes(lazy.compute(scheduler="sync"), first)  # recomputation agrees
    drawn = int(np.random.default_rng(3).integers(0, 2**64, dtype=np.uint64))
    assert_same_bytes(first, cdropout.dropout(x, 0.5, seed=drawn))


def test_evaluation_and_errors():
    x = np.linspace(-1, 1, 60).reshape(6, 10)
    lazy = cdask.dropout(
        da.from_array(x, chunks=4), 0.5, training=False, mode="classic"
    )
    assert_same_bytes(lazy.compute(), x * 0.5)
    with pytest.raises(TypeError, match="float16, float32, float64 or bfloat16"):
        cdask.dropout(da.ones(4, dtype=int), 0.5, seed=1)
    with pytest.raises(ValueError, match="p must satisfy"):
        cdask.dropout(da.ones(4), 2.0, seed=1)


def test_docstring_example_runs():
    import doctest

    failed, attempted = doctest.testmod(cdask)
    assert attempted > 0 and failed == 0


def test_a_local_cluster_of_processes_gives_the_same_bytes():
    distributed = pytest.importorskip("dask.distributed")
    x = np.random.default_rng(1).standard_normal((64, 96)).astype(np.float32)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        lazy = cdask.dropout(da.from_array(x, chunks=(10, 25)), 0.4, seed=7)
        result = client.compute(lazy).result(timeout=120)
    assert_same_bytes(result, cdropout.dropout(x, 0.4, seed=7))


@pytest.mark.parametrize("chunks", [(2, 3, 4), (3, 1, 5), (5, 7, 2)])
@pytest.mark.parametrize(
    "noise_shape", [(None, 1, None), (1, None, 1), (None, None, 1)]
)
@pytest.mark.parametrize("p", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("stream", ["xoshiro", "counter"])
def test_a_noise_shape_gives_numpys_bytes_for_any_chunking(chunks, noise_shape, p,
                                                           stream):  # fmt: skip
    x = np.random.default_rng(4).standard_normal((5, 7, 6)).astype(np.float32)
    lazy = cdropout.dask.dropout(da.from_array(x, chunks=chunks), p, seed=3,
                                 noise_shape=noise_shape, stream=stream)  # fmt: skip
    expected = cdropout.dropout(x, p, seed=3, noise_shape=noise_shape, stream=stream)
    assert_same_bytes(lazy.compute(), expected)


def test_dask_refuses_unknown_chunk_sizes_and_numpy_arrays():
    da = pytest.importorskip("dask.array")
    import cdropout.dask

    d = da.from_array(np.arange(-5.0, 5.0), chunks=3)
    with pytest.raises(ValueError, match="darr must have known chunk sizes"):
        cdropout.dask.dropout(d[d > 0], 0.5, seed=1)
    known = d[d > 0].compute_chunk_sizes()
    assert np.array_equal(
        cdropout.dask.dropout(known, 0.5, seed=1).compute(),
        cdropout.dropout(np.arange(1.0, 5.0), 0.5, seed=1),
    )
    with pytest.raises(TypeError, match="darr must be a dask.array.Array, got ndarray"):
        cdropout.dask.dropout(np.ones(3), 0.5, seed=1)


def test_the_numpy_api_refuses_a_dask_array_and_names_cdropout_dask():
    # np.asarray would compute the whole array into memory, silently
    lazy = da.ones((4, 5), chunks=2)
    with pytest.raises(TypeError, match=r"x must be a NumPy array.*cdropout\.dask"):
        cdropout.dropout(lazy, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"out must be None or a numpy.ndarray"):
        cdropout.dropout(np.ones((4, 5)), 0.5, seed=1, out=lazy)
