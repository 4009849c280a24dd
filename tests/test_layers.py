"""The Dropout layer: modes, the per-call streams, backward without a stored mask,
pickling, and its errors."""

import pickle
import threading

import numpy as np
import pytest

import cdropout
from cdropout import _kernel
from cdropout.testing import assert_same_bytes, call_seed


def test_call_seed_known_answers():
    cases = [(0, 0), (0, 1), (42, 7), (2**64 - 1, 2**64 - 1)]
    expected = [
        9953750190414335365,
        721411157228562650,
        476321905737529502,
        12597597840242820070,
    ]
    assert [call_seed(s, c) for s, c in cases] == expected
    assert [_kernel.call_seed(s, c) for s, c in cases] == expected


def test_starts_in_training_and_train_eval_return_the_layer():
    layer = cdropout.Dropout(0.3, seed=1)
    assert layer.training
    assert layer.eval() is layer and not layer.training
    assert layer.train() is layer and layer.training
    assert layer.train(False) is layer and not layer.training


def test_repr():
    # inplace always shown, right after p, as PyTorch's Dropout shows it
    assert repr(cdropout.Dropout()) == "Dropout(p=0.5, inplace=False, mode='inverted')"
    layer = cdropout.Dropout(0.25, mode="classic", inplace=True, seed=1)
    assert repr(layer) == "Dropout(p=0.25, inplace=True, mode='classic')"


@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_forward_k_uses_the_stream_of_call_k(mode):
    x = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    layer = cdropout.Dropout(0.4, mode=mode, seed=99)
    outputs = [layer(x) for _ in range(4)]
    for k, y in enumerate(outputs):
        expected = cdropout.dropout(x, 0.4, seed=call_seed(99, k), mode=mode)
        assert_same_bytes(y, expected)
    assert len({y.tobytes() for y in outputs}) == 4  # successive calls differ
    again = cdropout.Dropout(0.4, mode=mode, seed=99)
    assert_same_bytes(again(x), outputs[0])  # the sequence is reproducible


def test_eval_is_identity_for_inverted_and_scales_for_classic():
    x = np.linspace(-2, 2, 50)
    assert_same_bytes(cdropout.Dropout(0.3, seed=1).eval()(x), x)
    classic = cdropout.Dropout(0.3, mode="classic", seed=1).eval()
    np.testing.assert_allclose(classic(x), x * 0.7, rtol=0, atol=0)


def test_eval_calls_consume_no_stream():
    x = np.ones(100)
    a = cdropout.Dropout(0.5, seed=5)
    b = cdropout.Dropout(0.5, seed=5)
    a.eval()(x)
    a.train()
    assert_same_bytes(a(x), b(x))


@pytest.mark.parametrize("mode", ["inverted", "classic"])
def test_backward_after_n_forwards_uses_the_nth_mask(mode):
    rng = np.random.default_rng(1)
    layer = cdropout.Dropout(0.5, mode=mode, seed=3)
    for _ in range(5):
        y = layer(rng.standard_normal(1000))
    grad = rng.standard_normal(1000)
    gx = layer.backward(grad)
    kept = cdropout.dropout_mask(1000, 0.5, seed=call_seed(3, 4))
    scale = 2.0 if mode == "inverted" else 1.0
    assert np.array_equal(gx, np.where(kept, grad * scale, 0.0))
    assert np.array_equal(y != 0, kept)


def test_backward_is_the_gradient_by_finite_differences():
    rng = np.random.default_rng(2)
    layer = cdropout.Dropout(0.3, seed=8)
    x = rng.standard_normal(50)
    weights = rng.standard_normal(50)
    loss = float(weights @ layer(x))
    gx = layer.backward(weights)
    for i in (0, 7, 33):
        bumped = x.copy()
        bumped[i] += 1e-6
        layer.calls -= 1  # the same stream again
        numeric = (float(weights @ layer(bumped)) - loss) / 1e-6
        assert numeric == pytest.approx(gx[i], rel=1e-6, abs=1e-6)


def test_backward_in_evaluation_mode():
    classic = cdropout.Dropout(0.25, mode="classic", seed=1).eval()
    classic(np.ones(4))
    np.testing.assert_array_equal(classic.backward(np.ones(4)), np.full(4, 0.75))


def test_backward_errors():
    layer = cdropout.Dropout(0.5, seed=1)
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.ones(3))
    layer(np.ones((2, 3)))
    with pytest.raises(
        ValueError, match=r"grad must have the shape \(2, 3\).*\(3, 2\)"
    ):
        layer.backward(np.ones((3, 2)))


def test_inplace_writes_into_the_input():
    x = np.ones(64, np.float32)
    layer = cdropout.Dropout(0.5, seed=4, inplace=True)
    y = layer(x)
    assert y is x
    assert_same_bytes(
        x, cdropout.dropout(np.ones(64, np.float32), 0.5, seed=call_seed(4, 0))
    )


def test_pickling_resumes_with_the_same_masks():
    x = np.ones(500)
    layer = cdropout.Dropout(0.5, mode="classic", seed=11)
    for _ in range(3):
        layer(x)
    clone = pickle.loads(pickle.dumps(layer))
    assert (clone.p, clone.mode, clone.seed, clone.calls) == (0.5, "classic", 11, 3)
    assert_same_bytes(clone.backward(x), layer.backward(x))
    assert_same_bytes(clone(x), layer(x))
    assert not pickle.loads(pickle.dumps(layer.eval())).training


def test_seed_kinds_and_fresh_entropy():
    assert cdropout.Dropout(seed=np.random.SeedSequence(3)).seed == int(
        np.random.SeedSequence(3).generate_state(1, np.uint64)[0]
    )
    assert cdropout.Dropout().seed != cdropout.Dropout().seed


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 1.5}, ValueError, "p must satisfy"),
        ({"p": float("nan")}, ValueError, "p must satisfy"),
        ({"mode": "gaussian"}, ValueError, "mode must be one of"),
        ({"seed": -3}, ValueError, "seed"),
        ({"inplace": "yes"}, TypeError, "inplace"),
    ],
)
def test_bad_construction_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        cdropout.Dropout(**kwargs)


def test_a_refused_input_consumes_no_stream():
    layer = cdropout.Dropout(0.5, seed=2)
    with pytest.raises(TypeError):
        layer(np.arange(4))
    assert layer.calls == 0


def test_calls_is_settable_so_a_gradient_check_sees_one_mask():
    # the numerical gradient of sum(layer(x) * w) rewinds the counter before each
    # evaluation, as the docstring says; it matches the analytic backward
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(50), rng.standard_normal(50)
    layer = cdropout.Dropout(0.3, seed=4)

    def loss(values):
        layer.calls = 7
        return float(np.sum(layer(values) * w))

    loss(x)
    analytic = layer.backward(w)
    numeric = np.empty_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = 1e-6
        numeric[i] = (loss(x + step) - loss(x - step)) / 2e-6
    assert np.allclose(numeric, analytic, atol=1e-7)
    assert layer.calls == 8


@pytest.mark.parametrize("value", [-1, 2**64, 1.0, True, "3"])
def test_calls_refuses_what_is_not_a_stream_number(value):
    layer = cdropout.Dropout(0.5, seed=0)
    with pytest.raises((TypeError, ValueError), match="calls"):
        layer.calls = value
    assert layer.calls == 0


def test_a_call_may_override_the_training_flag_as_in_keras():
    layer = cdropout.Dropout(0.5, seed=2).eval()
    x = np.ones(100)
    y = layer(x, training=True)
    assert layer.calls == 1 and set(np.unique(y)) == {0.0, 2.0}
    assert layer.training is False
    assert np.array_equal(cdropout.Dropout(0.5, seed=2)(x, training=False), x)
    with pytest.raises(TypeError, match="training"):
        layer(x, training="yes")


def test_a_layer_pickled_by_version_0_1_resumes_its_stream():
    layer = cdropout.Dropout(0.5, seed=9)
    state = {"p": 0.5, "mode": "inverted", "inplace": False, "noise_shape": None,
             "seed": 9, "training": True, "calls": 5, "_last": None}  # fmt: skip
    old = cdropout.Dropout.__new__(cdropout.Dropout)
    old.__setstate__(state)
    layer.calls = 5
    assert old.calls == 5
    assert_same_bytes(old(np.ones(64)), layer(np.ones(64)))


def test_one_layer_called_from_several_threads_gives_each_call_its_own_mask():
    layer = cdropout.Dropout(0.5, seed=0)
    x = np.ones(1 << 20, np.float32)  # above the size where the GIL is released
    barrier = threading.Barrier(4)
    outputs = [None] * 4

    def work(k):
        barrier.wait()
        outputs[k] = layer(x)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert layer.calls == 4
    serial = cdropout.Dropout(0.5, seed=0)
    expected = {serial(x).tobytes() for _ in range(4)}  # streams 0, 1, 2 and 3
    assert {y.tobytes() for y in outputs} == expected


def test_backward_follows_the_last_forward_call_of_the_calling_thread():
    layer = cdropout.Dropout(0.5, seed=3)
    x = np.ones(1000)
    mine = layer(x)
    other = threading.Thread(target=layer, args=(np.ones(1000),))
    other.start()
    other.join()
    assert layer.calls == 2
    assert_same_bytes(layer.backward(np.ones(1000)), mine)


@pytest.mark.parametrize(
    ("noise_shape", "error"),
    [(3, TypeError), ("ab", TypeError), ((1.5, None), TypeError), ((True,), TypeError),
     ((None, -1), ValueError), (b"\x01", TypeError), ({1: 2}, TypeError)],
)  # fmt: skip
@pytest.mark.parametrize(
    "layer", [cdropout.Dropout, cdropout.AlphaDropout, cdropout.GaussianDropout]
)
def test_a_layer_checks_its_noise_shape_when_it_is_made(layer, noise_shape, error):
    with pytest.raises(error, match="noise_shape"):
        layer(0.5, seed=0, noise_shape=noise_shape)
