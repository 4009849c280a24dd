"""The random stream itself: known answers, block seeding, thresholds, and the promise
that the bytes depend on (seed, p, element index) only."""

import os
import subprocess
import sys

import numpy as np
import pytest

import cdropout
from cdropout import _kernel, _params, reference
from cdropout.testing import GAMMA, assert_same_bytes, mix64, word

B = _kernel.BLOCK


def test_block_and_lane_constants_agree_between_kernel_and_reference():
    assert (_kernel.BLOCK, _kernel.LANES) == (reference.BLOCK, reference.LANES)
    assert B & (B - 1) == 0 and B % _kernel.LANES == 0


def test_mix64_is_splitmix64_published_first_output():
    # splitmix64 seeded with 0 first returns 0xe220a8397b1dcdaf (Vigna's splitmix64.c);
    # the key of seed s is that first output for state s.
    assert mix64(GAMMA) == 0xE220A8397B1DCDAF
    assert reference.mix64(np.array([GAMMA], np.uint64))[0] == 0xE220A8397B1DCDAF


# Derived once with cdropout.testing.word (pure-Python integers, one element at a time)
# and written here, so that a change of the stream anywhere fails loudly.
GOLDEN = [
    (0, [0, 1, 15, 16, 17, 4095],
     [2735428763, 1955384731, 4074664625, 3099499286, 2810151734, 3310178030]),
    (1, [4096, 4097, 4111, 4112], [1257689295, 3181575098, 2275999844, 3412704442]),
    (2**64 - 1, [0, 1, 2], [1287592189, 3835804822, 282917691]),
    (12345, [2**32 + 5, 2**32 + 6, 2**40 + 4095], [1347145326, 750258713, 1914307484]),
]  # fmt: skip


@pytest.mark.parametrize(("seed", "indices", "words"), GOLDEN)
def test_known_answers(seed, indices, words):
    assert [word(seed, i) for i in indices] == words
    for i, w in zip(indices, words, strict=True):
        assert int(_kernel.raw_stream(seed, i, 1)[0]) == w
        assert int(reference.raw_stream(seed, i, 1)[0]) == w


@pytest.mark.parametrize("seed", [0, 1, 2**63 + 12345])
@pytest.mark.parametrize(
    ("offset", "n"), [(0, 3 * B + 5), (B - 3, 40), (2**32 - 7, B + 9)]
)
def test_raw_stream_kernel_equals_reference(seed, offset, n):
    assert_same_bytes(
        _kernel.raw_stream(seed, offset, n), reference.raw_stream(seed, offset, n)
    )


RELATED_SEEDS = [
    lambda s: s + 1,
    lambda s: s - 1,
    lambda s: s ^ 1,
    lambda s: (s + 0x9E3779B97F4A7C15) % 2**64,
    lambda s: (2 * s) % 2**64,
    lambda s: s ^ (1 << 63),
]


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32, 2**64 - 2])
def test_no_seed_replays_a_related_seed_shifted_by_a_block(seed):
    # block b + 1 of a seed never equals block b of a related seed (the flaw of additive
    # block seeding, key + block * gamma), nor block b + 1 of the same seed block b.
    blocks = 8
    own = _kernel.raw_stream(seed, 0, (blocks + 1) * B).reshape(blocks + 1, B)
    assert not np.any(np.all(own[1:] == own[:-1], axis=1))
    for related in RELATED_SEEDS:
        if related(seed) % 2**64 == seed:
            continue
        other = _kernel.raw_stream(related(seed) % 2**64, 0, blocks * B)
        other = other.reshape(blocks, B)
        assert not np.any(np.all(own[1:] == other, axis=1))
        assert not np.any(np.all(own[:-1] == other, axis=1))


def test_block_b_of_seed_b_differs_across_seeds():
    # With the same mixer for the key and the block index, key(s) ^ hash(s) cancels and
    # block s of every seed s shares one stream; fmix64 for the block keeps them apart.
    heads = np.stack([_kernel.raw_stream(s, s * B, 16) for s in range(32)])
    assert len({row.tobytes() for row in heads}) == 32


def test_lanes_of_a_block_differ():
    words = _kernel.raw_stream(7, 0, B).reshape(-1, _kernel.LANES)
    assert len({col.tobytes() for col in words.T}) == _kernel.LANES


@pytest.mark.parametrize(
    "p",
    [0.0, 2**-40, 1e-9, 0.1, 1 / 3, 0.5, 0.9, 1 - 2**-40, 1.0, *np.linspace(0, 1, 101)],
)
def test_threshold_keeps_each_element_with_probability_within_2_to_minus_33(p):
    # The word is uniform on [0, 2**32): an element is kept with probability
    # (2**32 - T) / 2**32 exactly, and T rounds p * 2**32 to the nearest integer.
    t = _params.threshold(p)
    assert 0 <= t <= 2**32
    keep = (2**32 - t) / 2**32
    assert abs(keep - (1 - p)) <= 2**-33


def test_threshold_decides_at_the_boundary_word():
    # drop iff word < T: find elements whose words sit at T - 1 and T.
    seed, n = 3, 4 * B
    words = _kernel.raw_stream(seed, 0, n).astype(np.int64)
    w = int(words[123])
    for t, kept in [(w, True), (w + 1, False)]:
        p = t / 2**32
        assert _params.threshold(p) == t
        assert cdropout.dropout_mask(n, p, seed=seed)[123] == kept
        assert reference.dropout_mask(n, p, seed=seed)[123] == kept


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("cuts", [[B], [1, B - 1, 2 * B + 17], [5, 6, 7, 3 * B]])
def test_chunks_with_offsets_give_the_bytes_of_one_call(dtype, cuts, rng):
    x = rng.standard_normal(4 * B + 3).astype(dtype)
    whole = cdropout.dropout(x, 0.3, seed=9)
    edges = [0, *cuts, x.size]
    parts = [
        cdropout.dropout(x[a:b], 0.3, seed=9, offset=a)
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    assert_same_bytes(np.concatenate(parts), whole)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_thread_counts_give_the_same_bytes(dtype, rng):
    x = rng.standard_normal(300_001).astype(dtype)
    results = [cdropout.dropout(x, 0.4, seed=5, n_threads=t) for t in (1, 2, 3, 7, -1)]
    for r in results[1:]:
        assert_same_bytes(r, results[0])


_CHILD = """
import hashlib, numpy as np, cdropout
x = np.linspace(-3, 3, 1_000_003, dtype=np.float32)
m = cdropout.dropout_mask(1_000_003, 0.3, seed=11, offset=17)
y = cdropout.dropout(x, 0.3, seed=11, offset=17)
digest = hashlib.sha256(y.tobytes() + m.tobytes()).hexdigest()
print(cdropout._kernel.isa_path(), digest)
"""


def _run_child(**env):
    full = {**os.environ, **env}
    # cwd: not the repository root, whose source folder would shadow the installed build
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=full,
        cwd=os.path.dirname(__file__),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_omp_num_threads_does_not_change_the_bytes():
    digests = {_run_child(OMP_NUM_THREADS=str(t))[1] for t in (1, 2, 3)}
    assert len(digests) == 1


def test_every_isa_path_gives_the_same_bytes():
    # Each path is forced in its own process; a path the CPU lacks falls back to a lower
    # one, so at least the baseline and the best path are always compared.
    runs = {isa: _run_child(CDROPOUT_ISA=isa) for isa in ("baseline", "avx2", "avx512")}
    assert runs["baseline"][0] == "baseline"
    assert len({digest for _, digest in runs.values()}) == 1
