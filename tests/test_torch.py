"""cdropout.torch: the operators' bytes, autograd without a saved mask, torch.compile
and torch.export, reproducibility, the modules' state, model conversion, bad input.
Skipped where torch is not installed (.ci/run installs the torch extra)."""

import contextlib
import multiprocessing
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

import cdropout  # noqa: E402
import cdropout.torch as ct  # noqa: E402
from cdropout import reference  # noqa: E402
from cdropout.torch import _ops  # noqa: E402
from cdropout.torch import functional as fn  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _bits(tensor):
    """A tensor's bytes as NumPy integers (bfloat16 included), C order."""
    view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
    return tensor.contiguous().view(view).numpy()


def _numpy_dropout(tensor, p, **kwargs):
    """cdropout.dropout of the tensor's values through the NumPy API."""
    array = _ops.as_numpy(tensor)
    return cdropout.dropout(array, p, **kwargs)


def _layouts(dtype):
    base = torch.randn(6, 7, 40, dtype=torch.float64).to(dtype)
    return {
        "contiguous": base,
        "transposed": base.transpose(0, 2),
        "sliced": base[:, 1:, ::3],
        "channels_last": base.reshape(6, 7, 5, 8).contiguous(
            memory_format=torch.channels_last
        ),
    }


@pytest.mark.parametrize(
    "layout", ["contiguous", "transposed", "sliced", "channels_last"]
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "classic"},
        {"offset": 4097},
        {"n_threads": 2},
        {"p": 1.0},
        {"p": 0.0},
    ],
)
def test_the_op_gives_the_numpy_apis_bytes(dtype, layout, kwargs):
    x = _layouts(dtype)[layout]
    kwargs = {"p": 0.3, **kwargs}
    p = kwargs.pop("p")
    y = ct.dropout(x, p, seed=12, **kwargs)
    expected = _numpy_dropout(x, p, seed=12, **kwargs)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(_bits(y), np.ascontiguousarray(expected).view(_bits(y).dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_contiguous_tensors_of_many_blocks_and_misaligned_ones_give_the_bytes(
    dtype, n_threads
):
    # contiguous tensors run on their addresses (_kernel.dropout_memory), a misaligned
    # one through a NumPy view: the reference's bytes either way, in place too
    n = 5 * cdropout._kernel.BLOCK + 3
    values = torch.randn(n, dtype=torch.float64).to(dtype)
    memory = bytearray(values.element_size() * n + 1)
    misaligned = torch.frombuffer(memory, dtype=dtype, offset=1, count=n)
    misaligned.copy_(values)
    expected = reference.dropout(_ops.as_numpy(values), 0.3, seed=8, n_threads=1)
    for x in (values.clone(), misaligned):
        y = ct.dropout(x, 0.3, seed=8, n_threads=n_threads)
        assert np.array_equal(_bits(y), expected.view(_bits(y).dtype))
        assert ct.dropout(x, 0.3, seed=8, n_threads=n_threads, inplace=True) is x
        assert np.array_equal(_bits(x), expected.view(_bits(x).dtype))


def test_tensors_whose_memory_is_not_their_values_are_refused_not_read():
    # a ZeroTensor has no memory (address 0), a negative view's memory holds -x: the
    # kernel reads neither, and PyTorch's own refusal (as for .numpy()) is raised
    for x in (torch._efficientzerotensor(5), torch.randn(5)._neg_view()):
        for inplace in (False, True):
            with pytest.raises(RuntimeError, match="ZeroTensor|negative bit"):
                ct.dropout(x, 0.5, seed=1, inplace=inplace)


def _full_path_only(monkeypatch):
    monkeypatch.setattr(fn, "common_call", lambda *args: NotImplemented)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("seed", [7, 2**64 - 1, None])
@pytest.mark.parametrize("p", [0.3, 1 - 2**-34])  # (the second: the kernel declines)
def test_the_common_call_gives_the_full_paths_bytes_key_and_version(
    dtype, inplace, mode, seed, p, monkeypatch
):
    # functional.common_call runs the common eager call in one Python call: the
    # same bytes, the same draw from PyTorch's generator, the same version bump
    values = torch.randn(3 * cdropout._kernel.BLOCK + 5, dtype=torch.float64).to(dtype)
    results = []
    for path in ("common", "full"):
        if path == "full":
            _full_path_only(monkeypatch)
        x = values.clone()
        version = x._version
        torch.manual_seed(11)
        taken = fn.common_call(x.clone(), p, True, inplace, mode, seed, None, 0,
                               None, None)  # fmt: skip
        assert (taken is NotImplemented) == (path == "full")
        torch.manual_seed(11)
        y = ct.dropout(x, p, inplace=inplace, mode=mode, seed=seed)
        assert (y is x) == inplace and y.is_contiguous()
        results.append((_bits(y), torch.randint(2**62, ()), x._version - version))
    (common, common_next, common_bump), (full, full_next, full_bump) = results
    assert np.array_equal(common, full)
    assert common_next == full_next and common_bump == full_bump == int(inplace)


def _declined_calls():
    x = torch.randn(6, 4)
    grad = torch.randn(6, 4, requires_grad=True)
    calls = {  # name: (tensor, keyword arguments, context)
        "requires grad": (grad, {}, contextlib.nullcontext),
        "dual tensor level": (x, {}, torch.autograd.forward_ad.dual_level),
        "dispatch mode": (x, {}, _PassThroughMode),
        "in place on an inference tensor": (
            _inference_tensor(),
            {"inplace": True},
            contextlib.nullcontext,
        ),
        "transposed": (x.t(), {}, contextlib.nullcontext),
        "negative view": (x._neg_view(), {}, contextlib.nullcontext),
        "parameter": (torch.nn.Parameter(x, False), {}, contextlib.nullcontext),
        "empty": (torch.ones(0), {}, contextlib.nullcontext),
        "int64": (torch.ones(3, dtype=torch.int64), {}, contextlib.nullcontext),
        "meta": (torch.ones(3, device="meta"), {}, contextlib.nullcontext),
        "sparse": (x.to_sparse(), {}, contextlib.nullcontext),
        "ndarray": (np.ones(3, np.float32), {}, contextlib.nullcontext),
    }
    arguments = {
        "p": [0, 1.0, 0.0, np.float64(0.5), torch.tensor(0.5), "0.5", float("nan")],
        "training": [False, 1, np.bool_(True)],
        "inplace": [1, "yes", np.bool_(True)],
        "mode": ["bogus", np.array(["inverted"]), None],
        "seed": [-1, 2**64, np.uint64(3), 3.0, [1, 2]],
        "offset": [1, -1, 0.0],
        "n_threads": [1, 0],
        "noise_shape": [(None, 1), ()],
        "generator": [torch.Generator()],
    }
    for name, values in arguments.items():
        for value in values:
            shown = type(value).__name__ if name == "generator" else repr(value)
            calls[f"{name}={shown}"] = (x, {name: value}, contextlib.nullcontext)
    return calls


class _PassThroughMode(torch.utils._python_dispatch.TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _inference_tensor():
    with torch.inference_mode():
        return torch.randn(6, 4)


@pytest.mark.parametrize("name", list(_declined_calls()))
def test_the_common_call_declines_every_other_call_and_touches_nothing(name):
    # what it does not check goes to the full path, which checks it (nothing raises)
    tensor, kwargs, context = _declined_calls()[name]
    call = {"p": 0.5, "training": True, "inplace": False, "mode": "inverted",
            "seed": None, "generator": None, "offset": 0, "n_threads": None,
            "noise_shape": None, **kwargs}  # fmt: skip
    if isinstance(tensor, np.ndarray):
        before, same = tensor.copy(), np.array_equal
    else:  # (meta and sparse tensors have no values to compare)
        dense = tensor.is_cpu and tensor.layout == torch.strided
        before, same = tensor.clone(), torch.equal if dense else lambda a, b: True
    state = torch.get_rng_state()
    with context():
        assert fn.common_call(tensor, *call.values()) is NotImplemented
    assert torch.equal(torch.get_rng_state(), state)
    assert same(tensor, before)


def test_the_common_call_declines_under_torch_func_transforms():
    x = torch.randn(3, 4)

    def declined(t):
        assert fn.common_call(t, 0.5, True, False, "inverted", 1, None, 0, None,
                              None) is NotImplemented  # fmt: skip
        return ct.dropout(t, 0.5, seed=1)

    torch.func.vmap(declined)(x)
    torch.func.grad(lambda t: declined(t).sum())(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_in_place_and_noise_shape_give_the_same_bytes(dtype):
    x = torch.randn(4, 5, 6, 7).to(dtype)
    expected = _numpy_dropout(x, 0.4, seed=3, noise_shape=(None, None, 1, 1))
    assert ct.dropout(x, 0.4, seed=3, inplace=True, noise_shape=(None, None, 1, 1)) is x
    assert np.array_equal(_bits(x), expected.view(_bits(x).dtype))


def test_bfloat16_is_rounded_once_from_the_float32_result():
    x = torch.randn(10_000).to(torch.bfloat16)
    y = ct.dropout(x, 0.3, seed=5)
    y32 = ct.dropout(x.float(), 0.3, seed=5)
    assert torch.equal(y, y32.to(torch.bfloat16))  # PyTorch's own rounding
    np_ref = reference.dropout(_ops.as_numpy(x), 0.3, seed=5)
    assert np.array_equal(_bits(y), np_ref.view(np.int16))


def test_gradcheck_in_float64_and_no_mask_is_saved():
    x = torch.randn(40, dtype=torch.float64, requires_grad=True)
    for mode in ("inverted", "classic"):
        assert torch.autograd.gradcheck(
            lambda t, m=mode: ct.dropout(t, 0.4, seed=1, mode=m), (x,)
        )
        assert torch.autograd.gradgradcheck(
            lambda t, m=mode: ct.dropout(t, 0.4, seed=1, mode=m), (x,)
        )
    assert torch.autograd.gradcheck(lambda t: ct.alpha_dropout(t, 0.2, seed=1), (x,))
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
        y = ct.dropout(x * 1, 0.5, seed=1) + ct.alpha_dropout(x * 1, 0.2, seed=1)
        y.sum().backward()

    x = torch.randn(100, requires_grad=True)
    step(x)  # first calls import what they use lazily (numpy.ma calls signature)
    monkeypatch.setattr(inspect, "signature", refuse)
    step(x)
    monkeypatch.undo()
    assert x.grad is not None


@pytest.mark.parametrize(
    "call", [ct.dropout, ct.alpha_dropout], ids=["dropout", "alpha"]
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
        assert np.array_equal(_bits(y), _bits(with_grad.detach()))
        z = make_input().detach().clone()
        assert call(z, 0.3, seed=4, inplace=True) is z
        assert np.array_equal(_bits(z), _bits(with_grad.detach()))


# PyTorch's forward AD scripts its decompositions on first use (torch.jit.script warns)
@pytest.mark.filterwarnings("ignore:`torch.jit.script`:DeprecationWarning")
@pytest.mark.parametrize(
    "call", [ct.dropout, ct.alpha_dropout], ids=["dropout", "alpha"]
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
    for call in (ct.dropout, ct.alpha_dropout):
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

        expected = np.stack([_bits(f(row)) for row in batch])
        assert np.array_equal(_bits(_vmap(f)(batch)), expected)
        copy = batch.clone()
        _vmap(lambda a, f=f: f(a, inplace=True))(copy)
        assert np.array_equal(_bits(copy), expected)


@pytest.mark.filterwarnings("ignore:`torch.jit.script`:DeprecationWarning")
def test_batched_gradchecks_and_vectorized_jacobians():
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)
    for f in (
        lambda t: ct.dropout(t, 0.4, seed=1),
        lambda t: ct.dropout(t.reshape(4, 5), 0.4, seed=1, noise_shape=(4, 1)),
        lambda t: ct.alpha_dropout(t, 0.2, seed=1),
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


def test_manual_seed_and_generators_make_runs_reproducible():
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = ct.dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(ct.dropout(x, 0.5), first)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(
        ct.dropout(x, 0.5, generator=g1), ct.dropout(x, 0.5, generator=g2)
    )
    assert not torch.equal(
        ct.dropout(x, 0.5, generator=g1), ct.dropout(x, 0.5, generator=g1)
    )
    with pytest.raises(ValueError, match="seed and generator"):
        ct.dropout(x, 0.5, seed=1, generator=g1)


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_compile_fullgraph_takes_in_place_calls(layout):
    def f(a):
        b = a * 1 if layout == "contiguous" else (a * 1).t()
        ct.dropout(b, 0.5, seed=1, inplace=True)
        return ct.alpha_dropout(b, 0.2, seed=2, inplace=True)

    x = torch.randn(6, 4)
    assert torch.equal(torch.compile(f, fullgraph=True)(x), f(x))


def test_a_drawn_key_is_the_generators_next_two_32_bit_words():
    # pinned, so that a generator state saved with a model keeps giving its masks:
    # the key is high * 2**32 + low (mod 2**64) of two draws made as version 0.2 made
    # them, one by one, eager and compiled alike
    def key_after(seed):
        g = torch.Generator().manual_seed(seed)
        high = int(torch.randint(-(2**31), 2**31, (), generator=g))
        low = int(torch.randint(0, 2**32, (), generator=g))
        return (high * 2**32 + low) % 2**64

    x = torch.randn(1000)
    compiled = torch.compile(ct.dropout, fullgraph=True)
    for seed in (0, 1, 11):
        expected = cdropout.dropout(x.numpy(), 0.5, seed=key_after(seed)).view(np.int32)
        y = ct.dropout(x, 0.5, generator=torch.Generator().manual_seed(seed))
        assert np.array_equal(_bits(y), expected)
        for call in (ct.dropout, compiled):  # PyTorch's default generator
            torch.manual_seed(seed)
            assert np.array_equal(_bits(call(x, 0.5)), expected)


def test_keys_are_drawn_in_and_out_of_inference_mode_and_per_thread():
    # eager keys are drawn into a buffer of each thread's (functional._drawn_words):
    # made in inference mode first, it must still take draws outside it, and threads
    # drawing at once must never read each other's words
    import concurrent.futures

    def keys(count):
        with torch.inference_mode():
            first = fn.draw_key(None, None, True)
        return [first] + [fn.draw_key(None, None, True) for _ in range(count)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        drawn = [k for ks in pool.map(keys, [300] * 8) for k in ks]
    assert len(set(drawn)) == len(drawn) == 8 * 301
    torch.manual_seed(3)
    expected = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
    torch.manual_seed(3)
    with torch.inference_mode():
        key = fn.draw_key(None, None, True)
    assert key == ((expected[0] - 2**31) * 2**32 + expected[1]) % 2**64


def _mlp(dropout):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 32),
        torch.nn.ReLU(),
        dropout,
        torch.nn.Linear(32, 8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(8, 2),
    )


def _opcheck_cases():
    key = _ops.key_tensor(2**64 - 5)  # a key above 2**63: a negative int64
    ops = torch.ops.cdropout
    x = torch.randn(4, 5, requires_grad=True)
    wide = torch.randn(4, 5, dtype=torch.float64).t().requires_grad_()  # a leaf view
    short = torch.randn(4, 5, 3).bfloat16()
    return {
        "dropout": (ops.dropout.default, (x, key, 0.3, "inverted", 0, 1, [])),
        "dropout-float64-transposed-offset-2-threads": (
            ops.dropout.default,
            (wide, key, 0.3, "classic", 7, 2, []),
        ),
        "dropout-bfloat16-noise-shape": (
            ops.dropout.default,
            (short, key, 0.3, "classic", 0, 1, [4, 5, 1]),
        ),
        "dropout_": (ops.dropout_.default, (x.detach(), key, 0.3, "classic", 0, 1, [])),
        "alpha_dropout": (ops.alpha_dropout.default, (x, key, 0.3, 0, 1, [])),
        "call_key": (ops.call_key.default, (torch.tensor(3), -99)),
    }


@pytest.mark.parametrize("case", list(_opcheck_cases()))
def test_the_operators_pass_pytorchs_opcheck(case):
    # PyTorch's own test of a custom operator: its schema (what it mutates), autograd
    # registration, fake implementation, and AOT dispatch with dynamic shapes
    op, args = _opcheck_cases()[case]
    results = torch.library.opcheck(op, args)
    assert set(results.values()) == {"SUCCESS"}, results


def test_compile_fullgraph_gives_the_eager_bytes_and_export_keeps_the_op():
    eager, compiled = _mlp(ct.Dropout(0.5, seed=7)), _mlp(ct.Dropout(0.5, seed=7))
    for model in (eager, compiled):
        model[5] = ct.Dropout(0.1, seed=8)
    x = torch.randn(4, 16, requires_grad=True)
    fast = torch.compile(compiled, fullgraph=True)
    for _ in range(2):
        a, b = eager(x), fast(x)
        assert torch.equal(a, b)
        a.sum().backward()
        grad_eager = x.grad.clone()
        x.grad = None
        b.sum().backward()
        assert torch.equal(x.grad, grad_eager)
        x.grad = None
    assert int(eager[2].calls) == int(compiled[2].calls) == 2  # backward takes none
    program = torch.export.export(_mlp(ct.Dropout(0.5, seed=7)), (torch.randn(4, 16),))
    code = program.graph_module.code
    assert "torch.ops.cdropout.dropout.default" in code
    assert "torch.ops.cdropout.call_key.default" in code


@pytest.mark.parametrize(
    "layer",
    [
        lambda: ct.Dropout(0.3),
        lambda: ct.Dropout2d(0.3, mode="classic"),
        lambda: ct.AlphaDropout(0.2),
        lambda: ct.Dropout(0.3, seed=3),
        lambda: ct.Dropout(0.3, noise_shape=(None, None, 1, 1)),
    ],
    ids=["Dropout", "Dropout2d", "AlphaDropout", "seeded", "noise_shape"],
)
@pytest.mark.parametrize("train", [False, True])
def test_export_with_a_dynamic_batch_saves_loads_and_gives_the_eager_bytes(
    layer, train
):
    # no guard on a symbolic size: the offset's check and the noise shapes leave
    # them alone (torch.export refuses a guard on a dimension declared dynamic)
    import io

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), layer()).train(train)

    batch = torch.export.Dim("batch")
    program = torch.export.export(
        model(), (torch.randn(4, 3, 8, 8),), dynamic_shapes=({0: batch},)
    )
    saved = io.BytesIO()
    torch.export.save(program, saved)
    saved.seek(0)
    loaded = torch.export.load(saved).module()
    x, eager = torch.randn(7, 3, 8, 8), model()
    torch.manual_seed(5)  # (the key of seed=None: the same draw, eager and exported)
    expected = eager(x)
    torch.manual_seed(5)
    assert torch.equal(loaded(x), expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace's
@pytest.mark.parametrize(
    "layer",
    [
        ct.Dropout(0.5),
        ct.Dropout(0.5, seed=3, mode="classic"),
        ct.Dropout2d(0.3, mode="classic"),
        ct.AlphaDropout(0.2),
    ],
    ids=repr,
)
def test_torch_jit_trace_records_evaluation_and_refuses_training(layer):
    # its sizes are traced tensors: a model traced in eval() mode (deployment) runs
    # any batch size as the model does; training is refused with a clear error
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), layer, torch.nn.Flatten(), torch.nn.Linear(144, 2)
    ).eval()
    traced = torch.jit.trace(model, torch.randn(2, 3, 8, 8))
    x = torch.randn(5, 3, 8, 8)
    assert torch.equal(traced(x), model(x))
    model.train()
    with pytest.raises(RuntimeError, match="torch.jit.trace in training mode"):
        torch.jit.trace(model, torch.randn(2, 3, 8, 8))
    assert int(layer.calls) == 0


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
    assert np.array_equal(_bits(y_after.detach()), _bits(y_before.detach()))
    grad = torch.randn(64, 100, dtype=torch.float64).to(dtype)
    y_after.backward(grad)
    y_before.backward(grad)
    assert np.array_equal(_bits(after.grad), _bits(before.grad))


def test_a_module_resumed_from_its_state_dict_draws_the_uninterrupted_masks():
    x = torch.ones(64)
    run = ct.Dropout(0.5, seed=11)
    outputs = [run(x) for _ in range(5)]
    first = ct.Dropout(0.5, seed=11)
    for _ in range(3):
        first(x)
    state = first.state_dict()
    assert int(state["calls"]) == 3
    resumed = ct.Dropout(0.5, seed=11)
    resumed.load_state_dict(state)
    assert torch.equal(resumed(x), outputs[3]) and torch.equal(resumed(x), outputs[4])
    # the NumPy layer's stream: call k of seed s is cdropout._kernel.call_seed(s, k)
    layer = cdropout.Dropout(0.5, seed=11)
    assert np.array_equal(outputs[0].numpy(), layer(np.ones(64, np.float32)))


def test_only_a_seeded_module_keeps_its_call_number_in_the_state_dict():
    # without a seed the state_dict is torch.nn's: a checkpoint loads (strict) before
    # and after swap_dropout, and into the torch.nn model
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)
        )

    plain = model()
    swapped = ct.swap_dropout(model())
    assert list(swapped.state_dict()) == list(plain.state_dict())
    swapped.load_state_dict(plain.state_dict())
    plain.load_state_dict(swapped.state_dict())
    layer = ct.Dropout(0.5, seed=3)
    assert list(layer.state_dict()) == ["calls"]
    layer.seed = None  # the attribute decides, whenever it is set
    assert list(layer.state_dict()) == []
    layer.seed = 2**64 - 1
    assert list(layer.state_dict()) == ["calls"]
    for seed, error in [("3", TypeError), (-1, ValueError), (2**64, ValueError)]:
        with pytest.raises(error, match="seed must"):
            layer.seed = seed
    assert layer.seed == 2**64 - 1


@pytest.mark.parametrize(
    "name, value, error",
    [
        ("p", 1.5, ValueError),
        ("mode", "bogus", ValueError),
        ("inplace", "y", TypeError),
    ],
)
def test_a_seeded_module_with_a_bad_attribute_refuses_before_taking_a_call(
    name, value, error
):
    layer = ct.Dropout(0.5, seed=3)
    setattr(layer, name, value)
    x = torch.ones(8)
    with pytest.raises(error, match=name):
        layer(x)
    assert int(layer.calls) == 0 and torch.equal(x, torch.ones(8))


def test_a_seeded_module_called_from_threads_gives_each_call_its_own_number():
    # the NumPy layer's rule: 8 threads calling one module take 2,400 distinct
    # call numbers, so 2,400 different streams (without the lock some were shared)
    import concurrent.futures

    layer, x = ct.Dropout(0.5, seed=3), torch.ones(4096)

    def masks(_):
        return [tuple(torch.nonzero(layer(x)).flatten().tolist()) for _ in range(300)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        drawn = [mask for ms in pool.map(masks, range(8)) for mask in ms]
    assert int(layer.calls) == 2400
    assert len(set(drawn)) == 2400  # 4,096 elements: two streams never share a mask


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


def test_swap_dropout_replaces_every_torch_dropout_and_keeps_their_settings():
    model = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Dropout1d(0.2, inplace=True),
        torch.nn.Sequential(torch.nn.Dropout2d(0.3), torch.nn.Dropout3d(0.4)),
        torch.nn.AlphaDropout(0.5),
        torch.nn.FeatureAlphaDropout(0.6),
    )
    model[2].eval()
    assert ct.swap_dropout(model) is model
    kinds = [type(m) for m in (model[0], model[1], model[2][0], model[2][1], model[3])]
    assert kinds == [
        ct.Dropout,
        ct.Dropout1d,
        ct.Dropout2d,
        ct.Dropout3d,
        ct.AlphaDropout,
    ]
    assert [model[0].p, model[1].inplace, model[2][0].training] == [0.1, True, False]
    assert type(model[4]) is torch.nn.FeatureAlphaDropout  # no drop-in: left alone
    assert type(ct.swap_dropout(torch.nn.Dropout(0.2))) is ct.Dropout
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ct.swap_dropout("model")


def test_convert_mode_keeps_training_and_evaluation_outputs():
    def model(mode):
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(8, 16),
            torch.nn.ReLU(),
            ct.Dropout(0.4, mode=mode, seed=2),
            torch.nn.Linear(16, 4),
            torch.nn.Unflatten(1, (4, 1, 1)),
            ct.Dropout2d(0.25, mode=mode, seed=3),  # (N, C, 1, 1): whole channels
            torch.nn.Flatten(),
            torch.nn.Linear(4, 3),
        )

    x = torch.randn(5, 8, dtype=torch.float64)
    for start, target in (("classic", "inverted"), ("inverted", "classic")):
        before, after = model(start).double(), model(start).double()
        bias = after[3].bias.clone()
        assert ct.convert_mode(after, target) is after
        assert after[2].mode == after[5].mode == target
        assert torch.equal(after[3].bias, bias)  # biases are never rescaled
        for train in (True, False):
            before.train(train)
            after.train(train)
            for _ in range(2):
                assert torch.allclose(before(x.reshape(5, 8)), after(x), atol=1e-12)


def _shared_consumer():
    # one Linear reads a dropout's output and, elsewhere, another input
    linear = torch.nn.Linear(4, 4)
    return torch.nn.Sequential(
        ct.Dropout(0.5, mode="classic"), linear, torch.nn.ReLU(), linear
    )


def _tied_consumer():
    # the consumer's weight is also the first layer's (tied weights)
    first, consumer = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    consumer.weight = first.weight
    return torch.nn.Sequential(first, ct.Dropout(0.5, mode="classic"), consumer)


def _old_weight_norm_consumer():
    # torch.nn.utils.weight_norm (deprecated) recomputes `weight` before each forward
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        consumer = torch.nn.utils.weight_norm(torch.nn.Linear(4, 4))
    return torch.nn.Sequential(ct.Dropout(0.5, mode="classic"), consumer)


def test_convert_mode_rescales_every_consumer_of_a_shared_dropout():
    torch.manual_seed(0)
    shared = ct.Dropout(0.5, mode="classic", seed=4)
    layers = [torch.nn.Linear(6, 6) for _ in range(3)]
    model = torch.nn.Sequential(layers[0], shared, layers[1], shared, layers[2])
    model = model.double()
    x = torch.randn(5, 6, dtype=torch.float64)
    expected = [model(x) for _ in range(2)]
    model.eval()
    expected.append(model(x))
    ct.convert_mode(model, "inverted")
    shared.calls.zero_()
    model.train()
    outputs = [model(x) for _ in range(2)]
    model.eval()
    outputs.append(model(x))
    for out, want in zip(outputs, expected, strict=True):
        assert torch.allclose(out, want, atol=1e-12)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (
            lambda: torch.nn.Sequential(
                torch.nn.Linear(4, 4), ct.Dropout(0.5, mode="classic")
            ),
            "last",
        ),
        (
            lambda: torch.nn.Sequential(
                ct.Dropout(0.5, mode="classic"), torch.nn.ReLU(), torch.nn.Linear(4, 4)
            ),
            "ReLU",
        ),
        (
            lambda: torch.nn.ModuleDict({"drop": ct.Dropout(0.5, mode="classic")}),
            "not in an nn.Sequential",
        ),
        (lambda: torch.nn.Sequential(ct.Dropout(1.0), torch.nn.Linear(4, 4)), "p = 1"),
        (lambda: _shared_consumer(), "more than one place"),
        (lambda: _tied_consumer(), "tied weights"),
        (
            lambda: torch.nn.Sequential(
                ct.Dropout(0.5, mode="classic"),
                torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(4, 4)),
            ),
            "parametrization",
        ),
        (lambda: _old_weight_norm_consumer(), "parametrization"),
        (
            lambda: torch.nn.Sequential(
                torch.nn.Linear(4, 4),
                ct.Dropout(0.5, mode="classic"),
                torch.nn.Linear(4, 4),
                ct.Dropout(0.5, mode="classic"),
                torch.nn.LazyLinear(4),
            ),
            "lazy",
        ),
    ],
)
def test_convert_mode_refuses_what_it_cannot_establish_and_changes_nothing(
    build, words
):
    model = build()
    target = "classic" if "p = 1" in words else "inverted"
    state = model.state_dict()
    lazy = torch.nn.parameter.UninitializedParameter  # (no values to compare)
    before = {k: v.clone() for k, v in state.items() if not isinstance(v, lazy)}
    with pytest.raises(ValueError, match=words):
        ct.convert_mode(model, target)
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    modes = {m.mode for m in model.modules() if isinstance(m, ct.Dropout)}
    assert modes == ({"inverted"} if "p = 1" in words else {"classic"})


@pytest.mark.parametrize(
    ("tensor", "error", "words"),
    [
        (torch.ones(3, device="meta"), ValueError, "input must be on the CPU"),
        (torch.ones(3, dtype=torch.int64), TypeError, "torch.int64"),
        (torch.ones(3, dtype=torch.complex64), TypeError, "complex64"),
        (np.ones(3), TypeError, "input must be a torch.Tensor"),
        (torch.ones(3).to_sparse(), TypeError, "dense"),
    ],
    ids=["meta-device", "int64", "complex", "ndarray", "sparse"],
)
def test_bad_inputs_are_refused_by_name(tensor, error, words):
    for call in (ct.dropout, ct.alpha_dropout, ct.Dropout(0.5, seed=1)):
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
        for call in (ct.dropout, ct.alpha_dropout):
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
    "call", [ct.dropout, ct.alpha_dropout], ids=["dropout", "alpha"]
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


def test_the_seeds_example_both_conventions():
    x = torch.ones(5, 5)
    inverted = ct.dropout(x, 0.5, seed=0)
    classic = ct.dropout(x, 0.5, seed=0, mode="classic")
    assert set(inverted.unique().tolist()) <= {0.0, 2.0}
    assert set(classic.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(inverted == 0, classic == 0)  # the same mask
    assert torch.equal(ct.dropout(x, 0.5, training=False, mode="classic"), x * 0.5)
    assert ct.dropout(x, 0.5, training=False) is x


def test_threads_follow_torch_get_num_threads_when_none():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _ops._threads(_ops.TORCH_THREADS) == 1
    finally:
        torch.set_num_threads(before)
    x = torch.randn(1_000_000)
    assert torch.equal(
        ct.dropout(x, 0.5, seed=1), ct.dropout(x, 0.5, seed=1, n_threads=2)
    )


class _Noisy(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return ct.dropout(torch.ones(70_000), 0.5, seed=i)


def test_dataloader_fork_workers_give_the_serial_bytes():
    ct.dropout(torch.ones(200_000), 0.5, seed=0, n_threads=2)  # OpenMP used before fork
    loader = torch.utils.data.DataLoader(
        _Noisy(),
        batch_size=2,
        num_workers=2,
        multiprocessing_context=multiprocessing.get_context("fork"),
    )
    batches = torch.cat(list(loader))
    serial = torch.stack([_Noisy()[i] for i in range(8)])
    assert torch.equal(batches, serial)


def test_the_registered_operators_and_the_eager_path_agree():
    # eager calls take autograd.Functions; tracers take the torch.library operators
    seed = 2**63 + 5  # a key whose int64 reading is negative
    key = _ops.key_tensor(seed)
    x = torch.randn(3000, dtype=torch.float64, requires_grad=True)
    for mode in ("inverted", "classic"):
        by_op = torch.ops.cdropout.dropout(x, key, 0.3, mode, 7, 1, [])
        eager = ct.dropout(x, 0.3, seed=seed, offset=7, mode=mode)
        assert torch.equal(by_op, eager)
        grads = [torch.autograd.grad(y.sum(), x)[0] for y in (by_op, eager)]
        assert torch.equal(*grads)
    alpha_op = torch.ops.cdropout.alpha_dropout(x, key, 0.3, 7, 1, [])
    assert torch.equal(alpha_op, ct.alpha_dropout(x, 0.3, seed=seed, offset=7))
    small = x[:40].detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: torch.ops.cdropout.dropout(t, key, 0.4, "inverted", 0, 1, []),
        (small,),
    )
    assert torch.autograd.gradcheck(
        lambda t: torch.ops.cdropout.alpha_dropout(t, key, 0.4, 0, 1, []), (small,)
    )
    counter = torch.tensor(3)
    assert int(torch.ops.cdropout.call_key(counter, 11)) & (2**64 - 1) == (
        cdropout._kernel.call_seed(11, 3)
    )
