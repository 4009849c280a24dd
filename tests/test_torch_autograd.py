"""cdropout.torch under autograd: gradients without a saved mask, the eager
Functions' cost, torch.func's transforms and forward-mode AD, PyTorch's legacy vmap,
activation checkpointing and PyTorch's rules for writing in place."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout.torch as ct  # noqa: E402

from torch_support import (  # noqa: E402
    DTYPES,
    JIT_SCRIPT_DEPRECATED,
    alpha_dropout,
    bits,
)


def test_gradcheck_in_float64_and_no_mask_is_saved():
    x = torch.randn(40, dtype=torch.float64, requires_grad=True)
    for mode in ("inverted", "classic"):
        assert torch.autograd.gradcheck(
            lambda t, m=mode: ct.dropout(t, 0.4, seed=1, mode=m), (x,)
        )
        assert torch.autograd.gradgradcheck(
            lambda t, m=mode: ct.dropout(t, 0.4, seed=1, mode=m), (x,)
        )
    assert torch.autograd.gradcheck(lambda t: alpha_dropout(t, 0.2, seed=1), (x,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t) or t, lambda t: t
    ):
        big = torch.randn(100_000, requires_grad=True)
        y = ct.dropout(big * 2, 0.5, seed=1)  # * 2: a non-leaf, as in a network
    assert [t.numel() for t in saved if t.numel() > 1] == []  # the mul saves a scalar
    y.sum().backward()
    kept = y != 0
    assert torch.equal(big.grad[kept], torch.full_like(big.grad[kept], 4.0))
    assert not big.grad[~kept].any()


def test_eager_calls_skip_pytorchs_per_call_argument_binding(monkeypatch):
    # torch.autograd.Function.apply binds each call's arguments with inspect.signature
    # for Functions with setup_context (about 20 us a call, four times the call's own
    # cost); cdropout's Functions skip it outside torch.func transforms
    import inspect

    def refuse(*args, **kwargs):
        raise AssertionError("inspect.signature called on the eager path")

    def step(x):
        y = ct.dropout(x * 1, 0.5, seed=1) + alpha_dropout(x * 1, 0.2, seed=1)
        y.sum().backward()

    x = torch.randn(100, requires_grad=True)
    step(x)  # first calls import what they use lazily (numpy.ma calls signature)
    monkeypatch.setattr(inspect, "signature", refuse)
    step(x)
    monkeypatch.undo()
    assert x.grad is not None


@pytest.mark.parametrize(
    "call", [ct.dropout, alpha_dropout], ids=["dropout", "alpha"]
)
def test_calls_without_autograd_give_the_same_bytes_and_no_graph(call):
    # no-grad calls skip the autograd.Function (about 5 us a call): same bytes, and
    # outputs that are not part of any graph
    x = torch.randn(3000, requires_grad=True)
    with_grad = call(x, 0.3, seed=4)
    assert with_grad.grad_fn is not None
    for make_input in (lambda: x.detach(), lambda: x):
        with torch.no_grad():
            y = call(make_input(), 0.3, seed=4)
        assert y.grad_fn is None and not y.requires_grad
        assert np.array_equal(bits(y), bits(with_grad.detach()))
        z = make_input().detach().clone()
        assert call(z, 0.3, seed=4, inplace=True) is z
        assert np.array_equal(bits(z), bits(with_grad.detach()))


# PyTorch's forward AD scripts its decompositions on first use (torch.jit.script warns)
@pytest.mark.filterwarnings(JIT_SCRIPT_DEPRECATED)
@pytest.mark.parametrize(
    "call", [ct.dropout, alpha_dropout], ids=["dropout", "alpha"]
)
def test_torch_func_transforms_and_dual_tensors_take_the_dropouts(call):
    def f(a):
        return call(a, 0.4, seed=3)

    x = torch.randn(12, dtype=torch.float64, requires_grad=True)
    slope = torch.autograd.grad(f(x).sum(), x)[0]  # the Jacobian's diagonal
    x, t = x.detach(), torch.randn(12, dtype=torch.float64)
    assert torch.equal(torch.func.grad(lambda a: f(a).sum())(x), slope)
    assert torch.equal(torch.func.jvp(f, (x,), (t,))[1], slope * t)
    assert torch.equal(torch.func.jacrev(f)(x), torch.diag(slope))
    assert torch.equal(torch.func.jacfwd(f)(x), torch.diag(slope))
    forward_ad = torch.autograd.forward_ad
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(f(forward_ad.make_dual(x, t))).tangent
    assert torch.equal(tangent, slope * t)
    # vmap: every slice gets the unbatched call's mask, noise shapes included
    batch = torch.randn(3, 4, 5, 6)
    for in_dims, noise in ((0, None), (1, None), (0, (4, 1, 1)), (2, (None, 1, None))):

        def g(a, noise=noise):
            return call(a, 0.4, seed=3, noise_shape=noise)

        slices = batch.movedim(in_dims, 0)
        expected = torch.stack([g(s) for s in slices])
        assert torch.equal(torch.func.vmap(g, in_dims=in_dims)(batch), expected)


@pytest.mark.parametrize("inplace", [False, True])
def test_functionalize_takes_the_operators(inplace):
    x = torch.randn(30)
    for call in (ct.dropout, alpha_dropout):
        expected = call(x, 0.5, seed=1)

        def f(a, call=call):
            return call(a.clone(), 0.5, seed=1, inplace=inplace)

        assert torch.equal(torch.func.functionalize(f)(x), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pytorchs_legacy_vmap_gets_the_kernels_bytes(dtype):
    # torch.autograd.functional.jacobian(vectorize=True) and gradcheck's batched checks
    # batch through the legacy vmap, whose tensors have no memory to read
    from torch._vmap_internals import _vmap

    batch = (torch.randn(3, 40, dtype=torch.float64) * 1e3).to(dtype)
    batch[:, :4] = torch.tensor([float("inf"), -float("inf"), float("nan"), -0.0])
    for kwargs in ({}, {"mode": "classic"}, {"p": 1.0}, {"noise_shape": (4, 1)}):
        kwargs = {"p": 0.3, "seed": 5, **kwargs}

        def f(a, inplace=False, kwargs=kwargs):
            shaped = a.reshape(4, 10) if "noise_shape" in kwargs else a
            return ct.dropout(shaped, inplace=inplace, **kwargs).reshape(40)

        expected = np.stack([bits(f(row)) for row in batch])
        assert np.array_equal(bits(_vmap(f)(batch)), expected)
        copy = batch.clone()
        _vmap(lambda a, f=f: f(a, inplace=True))(copy)
        assert np.array_equal(bits(copy), expected)


@pytest.mark.filterwarnings(JIT_SCRIPT_DEPRECATED)
def test_batched_gradchecks_and_vectorized_jacobians():
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)
    for f in (
        lambda t: ct.dropout(t, 0.4, seed=1),
        lambda t: ct.dropout(t.reshape(4, 5), 0.4, seed=1, noise_shape=(4, 1)),
        lambda t: alpha_dropout(t, 0.2, seed=1),
    ):
        assert torch.autograd.gradcheck(
            f, (x,), check_forward_ad=True, check_batched_grad=True,
            check_batched_forward_grad=True,
        )  # fmt: skip
        assert torch.autograd.gradgradcheck(
            f, (x,), check_fwd_over_rev=True, check_batched_grad=True
        )
        jacobian = torch.autograd.functional.jacobian(f, x.detach())
        for strategy in ("reverse-mode", "forward-mode"):
            vectorized = torch.autograd.functional.jacobian(
                f, x.detach(), vectorize=True, strategy=strategy
            )
            assert torch.equal(vectorized, jacobian)


def test_vmap_draws_keys_as_its_randomness_flag_allows():
    batch = torch.randn(3, 50)
    with pytest.raises(RuntimeError, match="randomness"):  # PyTorch's refusal
        torch.func.vmap(ct.dropout)(batch)
    torch.manual_seed(0)
    same = torch.func.vmap(ct.dropout, randomness="same")(batch)
    assert all(torch.equal(row == 0, same[0] == 0) for row in same)
    with pytest.raises(NotImplementedError, match="one key per slice"):
        torch.func.vmap(ct.dropout, randomness="different")(batch)


def test_a_seeded_module_under_torch_func_counts_calls_in_its_buffer_input():
    model = torch.nn.Sequential(torch.nn.Linear(5, 5), ct.Dropout(0.5, seed=2))
    params, buffers = dict(model.named_parameters()), dict(model.named_buffers())
    x = (torch.randn(4, 5),)

    def loss(p, b):
        return torch.func.functional_call(model, (p, b), x).sum()

    grads = torch.func.grad(loss)(params, buffers)
    assert set(grads) == set(params) and int(buffers["1.calls"]) == 1
    with pytest.raises(RuntimeError, match="mutate a captured Tensor"):  # as BatchNorm
        torch.func.grad(lambda p: loss(p, dict(model.named_buffers())))(params)


@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_recomputes_the_forwards_masks(reentrant):
    # torch.utils.checkpoint runs the forward again in backward, with PyTorch's
    # generator restored: keys drawn from it give the same masks and gradients. A
    # seeded module would draw its next call's mask: refused, not silently wrong
    from torch.utils.checkpoint import checkpoint

    linear = torch.nn.Linear(16, 16)

    def gradient(layer, checkpointed):
        x = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
        x.requires_grad_()
        torch.manual_seed(1)
        f = lambda t: layer(linear(t)).tanh()  # noqa: E731
        y = checkpoint(f, x, use_reentrant=reentrant) if checkpointed else f(x)
        y.sum().backward()  # (the reentrant variant refuses autograd.grad)
        return x.grad

    for layer in (ct.Dropout(0.5), ct.AlphaDropout(0.3)):
        assert torch.equal(gradient(layer, True), gradient(layer, False))
    seeded = ct.Dropout(0.5, seed=5)
    with pytest.raises(RuntimeError, match="checkpoint"):
        gradient(seeded, True)


def test_in_place_follows_pytorchs_rules_for_autograd():
    leaf = torch.ones(10, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        ct.dropout(leaf, 0.5, seed=1, inplace=True)
    hidden = leaf * 3
    out = ct.dropout(hidden, 0.5, seed=1, inplace=True)
    assert out is hidden
    out.sum().backward()
    # d/dleaf of mask * 2 * (3 * leaf): 6 where kept, what dropout gives a 3
    assert torch.equal(leaf.grad, ct.dropout(torch.full((10,), 3.0), 0.5, seed=1))
    with torch.no_grad():  # as PyTorch's in-place operators, allowed without grad mode
        assert ct.dropout(leaf, 0.5, seed=1, inplace=True) is leaf
    assert torch.equal(leaf.detach(), ct.dropout(torch.ones(10), 0.5, seed=1))
    for shared in (torch.ones(1).expand(10), torch.ones(5).as_strided((3, 3), (1, 1))):
        before = shared.clone()
        for call in (ct.dropout, alpha_dropout):
            with pytest.raises(RuntimeError, match="input has elements that share"):
                call(shared, 0.5, seed=1, inplace=True)
        assert torch.equal(shared, before)
        assert call(shared, 0.5, seed=1).shape == shared.shape  # reading is fine
    with torch.inference_mode():
        inference = torch.ones(10)
        assert ct.dropout(inference, 0.5, seed=1, inplace=True) is inference
    with pytest.raises(RuntimeError, match="inference tensor"):
        ct.dropout(inference, 0.5, seed=1, inplace=True)
    assert ct.dropout(inference, 0.5, seed=1).shape == (10,)


@pytest.mark.parametrize(
    "call", [ct.dropout, alpha_dropout], ids=["dropout", "alpha"]
)
@pytest.mark.parametrize("grad_mode", [True, False])
def test_in_place_marks_the_tensor_modified_for_autograd(call, grad_mode):
    # a tensor saved for backward and then dropped out in place: backward must refuse
    # (PyTorch's version counter), never run on the new values
    weight = torch.randn(50, requires_grad=True)
    saved = torch.randn(50)
    loss = (weight * saved).sum()  # the multiply saves `saved` for weight's gradient
    version = saved._version
    with torch.set_grad_enabled(grad_mode):
        call(saved, 0.5, seed=1, inplace=True)
    assert saved._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_before_relu_is_the_same_function_to_the_bit(dtype, mode):
    # the README's advice under torch.compile: relu(dropout(x)) == dropout(relu(x)),
    # forward and backward, zeros of both signs, infinities and NaN included
    values = torch.randn(64, 100, dtype=torch.float64)
    values[0, :6] = torch.tensor([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300])
    after, before = values.to(dtype).requires_grad_(), values.to(dtype).requires_grad_()
    y_after = ct.dropout(torch.relu(after), 0.3, seed=5, mode=mode)
    y_before = torch.relu(ct.dropout(before, 0.3, seed=5, mode=mode))
    assert np.array_equal(bits(y_after.detach()), bits(y_before.detach()))
    grad = torch.randn(64, 100, dtype=torch.float64).to(dtype)
    y_after.backward(grad)
    y_before.backward(grad)
    assert np.array_equal(bits(after.grad), bits(before.grad))


def _leaf():
    return torch.ones(2, 3, 5, requires_grad=True)


def _inference():
    with torch.inference_mode():
        return torch.ones(2, 3, 5)


@pytest.mark.parametrize(
    "make", [_leaf, lambda: torch.ones(1, 1, 5).expand(2, 3, 5), _inference],
    ids=["leaf-requiring-grad", "expanded", "inference"],
)  # fmt: skip
@pytest.mark.parametrize(
    "call",
    [
        lambda x: ct.Dropout(0.5, inplace=True).eval()(x),
        lambda x: ct.Dropout1d(0.5, inplace=True).eval()(x),
        lambda x: ct.AlphaDropout(0.5, inplace=True).eval()(x),
        lambda x: ct.Dropout(0.0, inplace=True)(x),
        lambda x: ct.dropout(x, 0.5, False, True),
        lambda x: ct.dropout(x, 0.0, True, True),
        lambda x: ct.alpha_dropout(x, 0.5, False, True),
    ],
    ids=["eval", "eval-1d", "eval-alpha", "p=0", "F-eval", "F-p=0", "F-alpha-eval"],
)
def test_in_place_passes_through_what_it_does_not_write(make, call):
    # PyTorch returns the input untouched in evaluation and at p = 0, whatever the
    # tensor (saliency maps take gradients through an eval model's dropouts)
    x = make()
    assert call(x) is x
    assert torch.equal(x, torch.ones(2, 3, 5))


def test_in_place_writes_follow_pytorchs_rules_where_they_write():
    # classic evaluation writes x * (1 - p): a leaf that requires grad is refused there
    with pytest.raises(RuntimeError, match="leaf"):
        ct.Dropout(0.5, inplace=True, mode="classic").eval()(_leaf())


def test_a_tensor_leaked_from_a_finished_transform_is_taken_as_its_value():
    # autograd.Function.apply unwraps such "dead" torch.func wrappers; the eager path,
    # which skips PyTorch's Python apply, unwraps the input itself
    leaked = []

    def loss(a):
        doubled = a * 2
        leaked.append(doubled)
        return doubled.sum()

    x = torch.randn(50, requires_grad=True)
    torch.func.grad(loss)(x)
    y = ct.dropout(leaked[0], 0.5, seed=1)
    assert torch.equal(y, ct.dropout(x.detach() * 2, 0.5, seed=1))
    assert y.requires_grad
