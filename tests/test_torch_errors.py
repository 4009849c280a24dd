"""cdropout.torch refuses bad input by name, before anything is drawn, allocated
or written: the tensor, PyTorch's generator and a module's call counter are left as
they were."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout.torch as ct  # noqa: E402

from torch_support import alpha_dropout  # noqa: E402


@pytest.mark.parametrize(
    ("tensor", "error", "words"),
    [
        (torch.ones(3, dtype=torch.int64), TypeError, "torch.int64"),
        (torch.ones(3, dtype=torch.complex64), TypeError, "complex64"),
        (np.ones(3), TypeError, "input must be a torch.Tensor"),
        (torch.ones(3).to_sparse(), TypeError, "dense"),
    ],
    ids=["int64", "complex", "ndarray", "sparse"],
)
def test_bad_inputs_are_refused_by_name(tensor, error, words):
    for call in (ct.dropout, alpha_dropout, ct.Dropout(0.5, seed=1)):
        with pytest.raises(error, match=words):
            call(tensor)


def test_bad_arguments_are_refused_before_anything_is_drawn():
    x = torch.ones(10)
    state = torch.get_rng_state()
    for kwargs in (
        {"p": 1.5},
        {"mode": "other"},
        {"offset": -1},
        {"n_threads": 0},
        {"noise_shape": (2,)},
        {"seed": -1},
        {"generator": "g"},
    ):
        with pytest.raises((TypeError, ValueError)):
            ct.dropout(x, **{"p": 0.5, **kwargs})
    assert torch.equal(torch.get_rng_state(), state)


def _untouched(call, tensor, error, words, module=None):
    """call() raises `error` matching `words` and leaves the tensor's values,
    PyTorch's generator and the module's call counter as they were."""
    small = tensor.is_cpu and not tensor.is_nested and tensor.numel() < 10**7
    before = tensor.detach().clone() if small else None
    state = torch.get_rng_state()
    calls = None if module is None else int(module.calls)
    with pytest.raises(error, match=words):
        call()
    assert torch.equal(torch.get_rng_state(), state)
    if before is not None:
        assert torch.equal(tensor.detach(), before)
    if module is not None:
        assert int(module.calls) == calls


def _unbind_view():
    base = torch.randn(4, 30, requires_grad=True) * 1
    return base.unbind(0)[1]


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "words"),
    [
        (lambda: torch.ones(1).expand(2**40), {}, RuntimeError, "alloc|memory"),
        (_unbind_view, {"inplace": True}, RuntimeError, "modified in place"),
        (
            lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
            {},
            ValueError,
            "input must not be a nested tensor",
        ),
        (
            lambda: torch.ones([1] * 65).transpose(0, 64),
            {"noise_shape": (None,) * 65},
            ValueError,
            "at most 64 dimensions",
        ),
    ],
    ids=["allocation", "unbind-view-in-place", "nested", "65-dims-noise"],
)
@pytest.mark.parametrize("grad", [False, True])
def test_a_failed_call_draws_nothing_and_advances_no_counter(
    make, kwargs, error, words, grad
):
    # each of these failed after the key was drawn (and a seeded module's counter
    # advanced): refused now before, or the output allocated before the draw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nested tensors' prototype
        tensor = make()
    if grad and tensor.is_leaf and not tensor.is_nested:
        tensor = tensor.detach().requires_grad_()
    _untouched(lambda: ct.dropout(tensor, 0.5, **kwargs), tensor, error, words)
    if "noise_shape" not in kwargs:
        module = ct.Dropout(0.5, inplace=kwargs.get("inplace", False), seed=4)
        _untouched(lambda: module(tensor), tensor, error, words, module)


def test_a_probability_that_requires_grad_is_refused():
    # PyTorch refuses it; it used to be detached silently, so p got no gradient
    p = torch.tensor(0.3, requires_grad=True)
    _untouched(lambda: ct.dropout(torch.ones(5), p), torch.ones(5), TypeError, "p")
    with pytest.raises(TypeError, match="requires grad"):
        ct.Dropout(p)


def test_a_negative_call_counter_is_refused_by_name_and_kept():
    module = ct.Dropout(0.5, seed=1)
    module.load_state_dict({"calls": torch.tensor(-1)})
    x = torch.ones(8)
    _untouched(lambda: module(x), x, ValueError, "calls must be a non-negative")
    assert int(module.calls) == -1


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ct.Dropout2d(0.5)(x),
        lambda x: ct.dropout2d(x, 0.5),
        lambda x: ct.FeatureAlphaDropout(0.5)(x),
        lambda x: ct.feature_alpha_dropout(x, 0.5, True),
    ],
)
def test_channel_dropout_of_a_1d_input_is_refused_as_pytorch_refuses_it(call):
    # torch.nn's words, not an argument the user never passed (noise_shape)
    x = torch.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropout2d's rank warning
        _untouched(lambda: call(x), x, RuntimeError, "Feature dropout requires at")
        assert torch.equal(call(torch.ones(0)), torch.ones(0))  # nothing to draw
    with torch.no_grad():  # evaluation reads no channels
        module = ct.Dropout2d(0.5).eval()
        with pytest.warns(UserWarning, match="dropout2d"):
            assert module(x) is x


def test_seed_and_noise_shape_errors_speak_pytorchs_names():
    with pytest.raises(TypeError, match="got float 1.5; or pass generator=, a torch"):
        ct.dropout(torch.ones(4), 0.5, seed=1.5)
    with pytest.raises(ValueError, match=r"size of input on it \(input has shape"):
        ct.dropout(torch.ones(4, 3), 0.5, noise_shape=(5, 1))
