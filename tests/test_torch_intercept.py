"""cdropout.torch.intercept: PyTorch's functional dropouts and its attention's dropout
run through cdropout inside the mode, with the calls' own arguments; what it cannot
serve goes to PyTorch; a GPT written as small GPTs are (causal self-attention through
F.scaled_dot_product_attention(dropout_p=...), nn.Dropout on the residual branches)
runs no dropout of PyTorch's in a training step."""

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import torch.nn.functional as F  # noqa: E402

import cdropout.torch as ct  # noqa: E402
from cdropout import _kernel  # noqa: E402

from example_support import example  # noqa: E402
from torch_support import (  # noqa: E402, F401
    PyTorchDropouts,
    counted_dropout_elements,
    fresh_compilations,
)


def _key(seed, number):
    return _kernel.call_seed(seed, number)


_CALLS = [  # (PyTorch's call, cdropout's with the key as seed)
    (lambda x: F.dropout(x, 0.3), lambda x, s: ct.dropout(x, 0.3, seed=s)),
    (lambda x: F.dropout2d(x, 0.3), lambda x, s: ct.dropout2d(x, 0.3, seed=s)),
    (lambda x: F.dropout3d(x[None], 0.3)[0],
     lambda x, s: ct.dropout3d(x[None], 0.3, seed=s)[0]),
    (lambda x: F.alpha_dropout(x, 0.3, True),
     lambda x, s: ct.alpha_dropout(x, 0.3, True, seed=s)),
    (lambda x: F.feature_alpha_dropout(x, 0.3, True),
     lambda x, s: ct.feature_alpha_dropout(x, 0.3, True, seed=s)),
    (lambda x: torch.dropout(x, 0.3, True), lambda x, s: ct.dropout(x, 0.3, seed=s)),
    (lambda x: torch.dropout_(x.clone(), 0.3, True),
     lambda x, s: ct.dropout(x, 0.3, seed=s)),
    (lambda x: torch.nn.Dropout(0.3)(x), lambda x, s: ct.dropout(x, 0.3, seed=s)),
]  # fmt: skip


@pytest.mark.parametrize("call, expected", _CALLS, ids=[
    "F.dropout", "F.dropout2d", "F.dropout3d", "F.alpha_dropout",
    "F.feature_alpha_dropout", "torch.dropout", "torch.dropout_", "nn.Dropout",
])  # fmt: skip
def test_each_functional_dropout_is_cdropouts_with_the_calls_arguments(call, expected):
    x = torch.randn(4, 6, 5, 5, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    with ct.intercept(seed=11):
        first, second = call(x), call(x)
    assert torch.equal(torch.get_rng_state(), state)  # the generator is not touched
    assert torch.equal(first, expected(x, _key(11, 0)))
    assert torch.equal(second, expected(x, _key(11, 1)))


def test_classic_mode_and_evaluation_follow_the_mode():
    x = torch.ones(64)
    with ct.intercept(mode="classic", seed=2):
        kept = F.dropout(x, 0.5)
        evaluated = F.dropout(x, 0.5, training=False)
    assert set(kept.tolist()) <= {0.0, 1.0}
    assert torch.equal(evaluated, x * 0.5)


def test_attention_dropout_is_cdropouts_and_what_it_cannot_serve_is_pytorchs():
    q, k, v = (torch.randn(2, 2, 9, 4, generator=torch.Generator().manual_seed(i))
               for i in range(3))  # fmt: skip
    with ct.intercept(seed=4):
        got = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)
    expected = ct.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True,
                                               seed=_key(4, 0))  # fmt: skip
    assert torch.equal(got, expected)
    nested = torch.nested.nested_tensor([torch.ones(3), torch.ones(5)],
                                        layout=torch.jagged)  # (no flat index)
    torch.manual_seed(3)
    want = F.dropout(nested, 0.5)
    torch.manual_seed(3)
    with ct.intercept():
        got = F.dropout(nested, 0.5)
    for a, b in zip(got.unbind(), want.unbind(), strict=True):
        assert torch.equal(a, b)


def test_seeded_intercept_is_refused_under_compile():
    x = torch.randn(8, requires_grad=True)
    with ct.intercept(seed=1):
        with pytest.raises(Exception, match="seed=None"):
            torch.compile(lambda t: F.dropout(t * 2, 0.5), fullgraph=True)(x)


def _step(t):  # (sin saves its input: checkpoint recomputes the step)
    return F.dropout(t.sin(), 0.5).sin()


@pytest.mark.parametrize("reentrant", [False, True])
def test_a_checkpoint_inside_intercept_is_refused_without_the_modes_context(reentrant):
    # its recomputation runs without the mode: PyTorch's masks, wrong gradients
    x = torch.randn(64, requires_grad=True)
    with ct.intercept(), pytest.raises(RuntimeError, match="checkpoint_context"):
        torch.utils.checkpoint.checkpoint(_step, x, use_reentrant=reentrant)
    with ct.intercept(), torch.no_grad():  # gradients off, no checkpoint: served
        assert F.dropout(x, 0.5).count_nonzero() < 64


def test_with_checkpoint_context_the_recomputation_draws_the_forwards_masks():
    x = torch.randn(64, requires_grad=True)
    with ct.intercept():
        torch.manual_seed(0)
        plain = _step(x)
        (grad,) = torch.autograd.grad(plain.sum(), x)
        torch.manual_seed(0)
        again = torch.utils.checkpoint.checkpoint(
            _step, x, use_reentrant=False, context_fn=ct.checkpoint_context()
        )
        (checkpointed,) = torch.autograd.grad(again.sum(), x)
    assert torch.equal(plain, again) and torch.equal(grad, checkpointed)
    torch.manual_seed(0)
    assert not torch.equal(F.dropout(x.sin(), 0.5).sin(), plain)  # (PyTorch's mask)


def test_a_gpts_training_step_runs_no_dropout_of_pytorchs_and_counts_every_element():
    torch.manual_seed(0)
    model = example("small_gpt").SmallGPT()
    data = torch.randint(0, 64, (4, 32), generator=torch.Generator().manual_seed(1))
    with PyTorchDropouts() as pytorch, counted_dropout_elements(model) as counted:
        with ct.intercept():
            loss = model(data, data)
            loss.backward()
    assert pytorch.seen == []  # no dropout kernel of PyTorch's ran
    batch, length, width, heads, layers = 4, 32, 32, 4, 2
    embeddings = batch * length * width
    residual = 2 * layers * batch * length * width
    probabilities = layers * batch * heads * length * length
    assert counted["elements"] == embeddings + residual + probabilities
    assert math.isfinite(loss.item())


@pytest.mark.usefixtures("fresh_compilations")
def test_under_compile_around_and_inside_the_compiled_function():
    x = torch.randn(4, 32)

    def step(t):
        return F.dropout(t.sin(), 0.5)

    def inside(t):
        with ct.intercept():
            return step(t)

    torch.manual_seed(2)
    with ct.intercept():
        expected = step(x)
    with torch._inductor.config.patch(fallback_random=True):  # PyTorch's randint
        torch.manual_seed(2)
        with ct.intercept():
            around = torch.compile(step)(x)
        torch.manual_seed(2)
        within = torch.compile(inside)(x)
    for got in (around, within):  # the same mask; inductor's sin is within an ulp
        assert torch.equal(got == 0, expected == 0)
        torch.testing.assert_close(got, expected)


def test_torch_func_grad_inside_the_mode_is_autograds_with_the_same_masks():
    q, k, v = (torch.randn(1, 2, 8, 4, generator=torch.Generator().manual_seed(i))
               for i in range(3))  # fmt: skip

    def step(q):
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)
        return F.dropout(y, 0.5).sum()

    with ct.intercept(seed=8):
        transformed = torch.func.grad(step)(q)
    with ct.intercept(seed=8):
        (expected,) = torch.autograd.grad(step(q.requires_grad_()), q)
    torch.testing.assert_close(transformed, expected)
