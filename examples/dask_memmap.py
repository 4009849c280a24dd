"""Dropout of an array larger than you want in memory: a memory-mapped .npy file as a
Dask array, dropped out chunk by chunk with the bytes of one NumPy call.

    python examples/dask_memmap.py [--quick] [--rows 200000]

Writes a float32 array of `rows` x 1024 to a temporary file, maps it, drops it out
lazily with cdropout.dask.dropout (each chunk a task, with the stream indices its
elements have in the whole array), writes the result into a second mapped file with
dask.array.store, and checks rows against one call of cdropout.dropout on them.
--quick: 20,000 rows (80 MB).
"""

import argparse
import os
import tempfile
import time

import dask.array as da
import numpy as np

import cdropout
import cdropout.dask


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python examples/dask_memmap.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    rows, width = (20_000 if args.quick else args.rows), 1024
    with tempfile.TemporaryDirectory() as folder:
        shape = (rows, width)
        source = np.lib.format.open_memmap(
            os.path.join(folder, "x.npy"), mode="w+", dtype=np.float32, shape=shape
        )
        source[...] = np.random.default_rng(0).standard_normal(width, np.float32)
        source.flush()
        target = np.lib.format.open_memmap(
            os.path.join(folder, "y.npy"), mode="w+", dtype=np.float32, shape=shape
        )
        lazy = cdropout.dask.dropout(da.from_array(source, chunks=(5_000, width)), 0.5,
                                     seed=7)  # fmt: skip
        start = time.perf_counter()
        da.store(lazy, target)
        seconds = time.perf_counter() - start
        print(f"{rows} x {width} float32 ({source.nbytes / 1e9:.2f} GB) in "
              f"{seconds:.2f} s, {lazy.npartitions} chunks")  # fmt: skip
        # any rows: one NumPy call on them, at their offset, gives the same bytes
        first = rows // 3
        expected = cdropout.dropout(np.asarray(source[first : first + 100]), 0.5,
                                    seed=7, offset=first * width)  # fmt: skip
        assert np.array_equal(target[first : first + 100], expected)
        print("rows checked against cdropout.dropout: the same bytes")
        del source, target  # close the maps before the folder goes


if __name__ == "__main__":
    main()
