"""cdropout.torch refuses bad input by name, before anything is drawn, allocated
or written: the tensor, PyTorch's generator and a module's call counter are left as
they were."""

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
