"""Seeds as NumPy users hold them: what numpy.random.default_rng accepts, the
legacy RandomState and the numpy.random module, and draw_seed()."""

import numpy as np
import pytest

import cdropout
from cdropout import reference

X = np.ones(5000, np.float32)


@pytest.mark.parametrize("function", [cdropout.dropout, reference.dropout])
def test_an_int_seed_is_the_key_itself(function):
    assert cdropout.draw_seed(12345) == 12345
    assert np.array_equal(function(X, 0.5, seed=12345), function(X, 0.5, seed=12345))


@pytest.mark.parametrize(
    "make", [lambda: [1, 2, 3], lambda: (7,), lambda: np.array([5, 2**70], object),
             lambda: np.arange(4, dtype=np.uint32)],
    ids=["list", "tuple", "big-ints", "uint32-array"],
)  # fmt: skip
def test_a_sequence_of_ints_is_a_seed_sequence_as_default_rng_takes_it(make):
    key = int(np.random.SeedSequence(make()).generate_state(1, np.uint64)[0])
    assert cdropout.draw_seed(make()) == key
    assert np.array_equal(cdropout.dropout(X, 0.5, seed=make()),
                          cdropout.dropout(X, 0.5, seed=key))  # fmt: skip
    assert np.array_equal(reference.dropout(X, 0.5, seed=make()),
                          cdropout.dropout(X, 0.5, seed=key))  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [lambda: np.random.PCG64(3), lambda: np.random.default_rng(3),
     lambda: np.random.RandomState(3), lambda: np.random.MT19937(3)],
    ids=["BitGenerator", "Generator", "RandomState", "MT19937"],
)  # fmt: skip
def test_sources_of_randomness_give_one_draw_per_call_and_are_reproducible(make):
    source = make()
    first = cdropout.dropout(X, 0.5, seed=source)
    second = cdropout.dropout(X, 0.5, seed=source)
    assert not np.array_equal(first, second)  # it advanced
    again = make()
    assert np.array_equal(cdropout.dropout(X, 0.5, seed=again), first)
    assert np.array_equal(cdropout.dropout(X, 0.5, seed=cdropout.draw_seed(again)),
                          second)  # fmt: skip


def test_the_numpy_random_module_uses_the_global_state_that_np_random_seed_sets():
    np.random.seed(11)
    first = cdropout.dropout(X, 0.5, seed=np.random)
    np.random.seed(11)
    assert np.array_equal(cdropout.dropout(X, 0.5, seed=np.random), first)
    np.random.seed(11)
    assert np.array_equal(reference.dropout(X, 0.5, seed=np.random), first)


def test_draw_seed_of_none_is_fresh_entropy_and_replays_the_call():
    keys = {cdropout.draw_seed() for _ in range(4)}
    assert len(keys) == 4 and all(0 <= k < 2**64 for k in keys)
    key = cdropout.draw_seed(None)
    assert np.array_equal(cdropout.dropout(X, 0.3, seed=key),
                          reference.dropout(X, 0.3, seed=key))  # fmt: skip


def test_the_functional_backward_is_dropout_of_the_gradient_with_the_same_key():
    key = cdropout.draw_seed(np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal(1000)
    grad = np.random.default_rng(2).standard_normal(1000)
    y = cdropout.dropout(x, 0.4, seed=key)
    gx = cdropout.dropout(grad, 0.4, seed=key)
    kept = y != 0
    assert np.array_equal(gx != 0, kept)
    assert np.allclose(gx[kept], grad[kept] / 0.6)


@pytest.mark.parametrize(
    ("seed", "error", "words"),
    [([], TypeError, "at least one int"), ([1, -2], ValueError, "non-negative"),
     ([1.5], TypeError, "sequence"), (["a"], TypeError, "sequence"),
     ("42", TypeError, "str"), (b"42", TypeError, "bytes"), ([True], TypeError, "int"),
     ({1, 2}, TypeError, "set"), (np.float64(3), TypeError, "float64")],
)  # fmt: skip
def test_bad_seeds_are_refused_by_name(seed, error, words):
    for call in (lambda: cdropout.dropout(X, 0.5, seed=seed),
                 lambda: cdropout.draw_seed(seed),
                 lambda: cdropout.Dropout(0.5, seed=seed)):  # fmt: skip
        with pytest.raises(error, match="seed") as info:
            call()
        assert words in str(info.value)
