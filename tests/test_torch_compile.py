"""cdropout.torch under tracers: torch.compile (fullgraph), torch.export (dynamic
shapes, saved and loaded), PyTorch's opcheck of the registered operators, and
torch.jit.trace."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout.torch as ct  # noqa: E402
from cdropout.torch import _ops  # noqa: E402

from torch_support import (  # noqa: E402
    JIT_TRACE_DEPRECATED,
    OPCHECK_NON_LEAF_GRAD,
    alpha_dropout,
    fresh_compilations,  # noqa: F401 (a fixture)
)


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
    }


@pytest.mark.filterwarnings(OPCHECK_NON_LEAF_GRAD)
@pytest.mark.parametrize("case", list(_opcheck_cases()))
def test_the_operators_pass_pytorchs_opcheck(case):
    # PyTorch's own test of a custom operator: its schema (what it mutates), autograd
    # registration, fake implementation, and AOT dispatch with dynamic shapes
    op, args = _opcheck_cases()[case]
    results = torch.library.opcheck(op, args)
    assert set(results.values()) == {"SUCCESS"}, results


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_compile_fullgraph_takes_in_place_calls(layout):
    def f(a):
        b = a * 1 if layout == "contiguous" else (a * 1).t()
        ct.dropout(b, 0.5, seed=1, inplace=True)
        return alpha_dropout(b, 0.2, seed=2, inplace=True)

    x = torch.randn(6, 4)
    assert torch.equal(torch.compile(f, fullgraph=True)(x), f(x))


@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
def test_compile_fullgraph_gives_the_eager_bytes_and_export_records_the_stream(stream):
    eager, compiled = (_mlp(ct.Dropout(0.5, seed=7, stream=stream)) for _ in "ab")
    for model in (eager, compiled):
        model[5] = ct.Dropout(0.1, seed=8, stream=stream)
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
    model = _mlp(ct.Dropout(0.5, seed=7, stream=stream))
    code = torch.export.export(model, (torch.randn(4, 16),)).graph_module.code
    # the counter stream as PyTorch's operations; the xoshiro stream, cdropout's
    assert ("torch.ops.cdropout.dropout.default" in code) == (stream == "xoshiro")


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


@pytest.mark.filterwarnings(JIT_TRACE_DEPRECATED)
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


_MODULES = (  # each class with an input of the rank it drops channels of
    (ct.Dropout, (6, 5)),
    (ct.Dropout1d, (4, 6, 5)),
    (ct.Dropout2d, (2, 6, 3, 4)),
    (ct.Dropout3d, (2, 6, 3, 2, 2)),
    (ct.AlphaDropout, (6, 5)),
    (ct.FeatureAlphaDropout, (4, 6, 5)),
)


def _steps(call, shapes, calls=3):
    """Outputs and input gradients of `calls` training calls of `call` (inputs of
    these shapes, one output each), each from its own torch.manual_seed (the key of
    seed=None) and a gradient not all ones (which the scale alone would show)."""
    results = []
    for step in range(calls):
        torch.manual_seed(100 + step)
        xs = [torch.randn(shape, requires_grad=True) for shape in shapes]
        ys = call(*xs)
        torch.autograd.backward(ys, [torch.randn(y.shape) for y in ys])
        results += [y.detach() for y in ys] + [x.grad for x in xs]
    return results


@pytest.mark.usefixtures("fresh_compilations")
@pytest.mark.parametrize("seed", [None, 5], ids=["generator", "seeded"])
@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
def test_compiled_modules_draw_each_calls_mask_forward_and_backward(stream, seed):
    # Modules alone in a graph, where the backward once recomputed a seeded module's
    # key from its call counter after the forward had advanced it: call n's mask
    # forward, call n + 1's backward (a wrong gradient). Several calls, so that a
    # shift by one shows.
    def modules():
        return [cls(0.4, seed=seed, stream=stream) for cls, _ in _MODULES]

    def run(layers):
        return lambda *xs: [layer(x) for layer, x in zip(layers, xs, strict=True)]

    eager, compiled = modules(), modules()
    shapes = [shape for _, shape in _MODULES]
    with torch._inductor.config.patch(fallback_random=True):  # PyTorch's randint
        got = _steps(torch.compile(run(compiled)), shapes)
    for actual, desired in zip(got, _steps(run(eager), shapes), strict=True):
        assert torch.equal(actual, desired)
    if seed is not None:
        assert [int(layer.calls) for layer in compiled + eager] == [3] * 12


@pytest.mark.usefixtures("fresh_compilations")
@pytest.mark.parametrize("seeded", [False, True], ids=["generator", "seeded"])
@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
def test_a_compiled_swapped_model_gives_the_eager_steps(stream, seeded):
    def model():
        torch.manual_seed(0)
        swapped = ct.swap_dropout(torch.nn.Sequential(
            torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3),
            torch.nn.Linear(8, 8), torch.nn.Dropout(0.2), torch.nn.ReLU(),
            torch.nn.AlphaDropout(0.1),
        ), stream=stream)  # fmt: skip
        for index in (2, 4, 6):
            swapped[index].seed = index if seeded else None
        return swapped

    eager, compiled = model(), model()
    program = torch.compile(compiled)
    with torch._inductor.config.patch(fallback_random=True):  # PyTorch's randint
        got = _steps(lambda x: [program(x)], [(4, 5)])
    expected = _steps(lambda x: [eager(x)], [(4, 5)])
    for actual, desired in zip(got, expected, strict=True):
        assert torch.equal(actual, desired)
