"""Feeds cdropout's real stream into dieharder, with a bad generator as a control.

    python tests/rng_battery.py            # the recorded run (about 20 minutes)
    python tests/rng_battery.py --fast     # the part CI runs (a few minutes)

Streams (32-bit words on dieharder's stdin, `dieharder -g 200`), of both the xoshiro
and the counter stream:
  raw        the generator's words, element order, through block boundaries, from the
             kernel itself (cdropout._kernel.raw_stream), for several seeds and offsets
  decisions  the keep decisions at p = 0.5 from cdropout.dropout_mask, 32 to a word
  control    a 32-bit linear congruential generator (x = 69069 x + 1), which must FAIL
             (it does, in diehard_rank_6x8 and rgb_bitdist): it shows that the chosen
             tests can see a bad stream
Needs dieharder (Debian package `dieharder`). Exits non-zero when the real streams FAIL
a test or the control passes them all. dieharder's own seed is fixed (-S 1), so the
verdicts are reproducible.
"""

import argparse
import shutil
import subprocess
import sys

import numpy as np

import cdropout
from cdropout import _kernel

# dieharder arguments of each test; rgb_bitdist needs its tuple size (-n)
FAST_TESTS = ["-d 0", "-d 2", "-d 3", "-d 15", "-d 100", "-d 101", "-d 200 -n 2"]
FULL_TESTS = FAST_TESTS + [
    "-d 1", "-d 4", "-d 8", "-d 9", "-d 10", "-d 11", "-d 12", "-d 13", "-d 16",
    "-d 17", "-d 102", "-d 200 -n 8", "-d 202", "-d 203 -n 1", "-d 204", "-d 205",
]  # fmt: skip
CHUNK = 1 << 22  # words a write


def raw_words(seed, offset, stream="xoshiro"):
    while True:
        yield _kernel.raw_stream(seed, offset, CHUNK, 1, _kernel.STREAMS[stream])
        offset += CHUNK


def decision_words(seed, stream="xoshiro"):
    offset = 0
    while True:
        mask = cdropout.dropout_mask(32 * CHUNK, 0.5, seed=seed, offset=offset,
                                     stream=stream)  # fmt: skip
        yield np.packbits(mask, bitorder="little").view(np.uint32)
        offset += 32 * CHUNK


def lcg_words(state=1):
    # x_(k+1) = a^(k+1) x_0 + (1 + a + ... + a^k), modulo 2**32, a chunk at a time:
    # uint64 products and sums wrap modulo 2**64, which keeps them right modulo 2**32.
    powers = np.cumprod(np.full(CHUNK, 69069, np.uint64))
    sums = np.cumsum(np.concatenate([[np.uint64(1)], powers[:-1]]))
    while True:
        words = (powers * np.uint64(state) + sums).astype(np.uint32)
        state = int(words[-1])
        yield words


def dieharder(test, words, psamples):
    """Runs one dieharder test on the stream; returns its verdict lines."""
    command = ["dieharder", "-g", "200", "-S", "1", *test.split()]
    if psamples:
        command += ["-p", str(psamples)]
    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        for chunk in words:
            child.stdin.write(chunk.tobytes())
    except BrokenPipeError:  # dieharder read all it needed
        pass
    output = child.communicate()[0].decode()
    return [line for line in output.splitlines() if any(
        verdict in line for verdict in ("PASSED", "WEAK", "FAILED"))]  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="the CI subset")
    args = parser.parse_args(argv)
    if shutil.which("dieharder") is None:
        sys.exit("dieharder is not installed (Debian: apt-get install dieharder)")
    tests = FAST_TESTS if args.fast else FULL_TESTS
    psamples = 20 if args.fast else 0  # 0: dieharder's default
    streams = {
        "raw seed 0": lambda: raw_words(0, 0),
        "raw seed 2**64-1 from 2**32-5": lambda: raw_words(2**64 - 1, 2**32 - 5),
        "decisions p=0.5 seed 7": lambda: decision_words(7),
        "counter raw seed 0": lambda: raw_words(0, 0, "counter"),
        "counter raw seed 2**64-1 from 2**32-5": lambda: raw_words(
            2**64 - 1, 2**32 - 5, "counter"
        ),
        "counter decisions p=0.5 seed 7": lambda: decision_words(7, "counter"),
    }
    if not args.fast:
        streams["raw seed 12345"] = lambda: raw_words(12345, 0)
        streams["counter raw seed 12345"] = lambda: raw_words(12345, 0, "counter")
    failed = False
    for name, make in streams.items():
        print(f"== {name}")
        for test in tests:
            for line in dieharder(test, make(), psamples):
                print(line)
                failed |= "FAILED" in line
    print("== control: 32-bit LCG (must fail)")
    control_failed = False
    for test in tests:
        for line in dieharder(test, lcg_words(), psamples):
            print(line)
            control_failed |= "FAILED" in line
    if failed:
        print("A real stream FAILED a test.")
    if not control_failed:
        print("The control passed every test: these tests cannot see a bad stream.")
    sys.exit(1 if failed or not control_failed else 0)


if __name__ == "__main__":
    main()
