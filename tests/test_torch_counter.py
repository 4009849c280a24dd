"""The counter stream under tracers, where it is PyTorch's own operations: compiled
calls give the eager calls' bytes forward and backward; inductor generates the stream
inside its kernels and a compiled step saves no mask; an exported program runs where
cdropout is not installed."""

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout.torch as ct  # noqa: E402

from torch_support import (  # noqa: E402, F401
    DTYPES,
    assert_same_bits,
    fresh_compilations,
)

pytestmark = pytest.mark.usefixtures("fresh_compilations")

# every kind of call, one compiled function for them all (each compilation costs
# seconds): offsets past 2**32, a key above 2**63, noise shapes, both conventions
CALLS = {
    "dropout": lambda x: ct.dropout(x, 0.3, seed=5),
    "offset-past-2**32": lambda x: ct.dropout(
        x, 0.3, seed=2**64 - 3, offset=2**32 + 7, mode="classic"
    ),
    "noise_shape": lambda x: ct.dropout(x, 0.4, seed=6, noise_shape=(None, 1, None)),
    "dropout2d": lambda x: ct.dropout2d(x.unsqueeze(0), 0.4, seed=6).squeeze(0),
    "in-place": lambda x: ct.dropout(x * 1, 0.5, seed=10, inplace=True),
    "alpha": lambda x: ct.alpha_dropout(x, 0.2, True, seed=7),
    "relu": lambda x: ct.relu_dropout(x, 0.3, seed=8),
    "leaky_relu-in-place": lambda x: ct.leaky_relu_dropout(
        x * 1, 0.3, 0.1, inplace=True, seed=9, mode="classic"
    ),
}


def _all_calls(x):
    return [call(x) for call in CALLS.values()]


def _input(dtype):
    x = torch.randn(5, 6, 33, generator=torch.Generator().manual_seed(0)).to(dtype)
    special = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e-40, 70000.0]
    x.view(-1)[: len(special)] = torch.tensor(special, dtype=torch.float64).to(dtype)
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_compiled_calls_give_the_eager_bytes_forward_and_backward(dtype):
    x0 = _input(dtype)
    grad = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    results = []
    for function in (_all_calls, torch.compile(_all_calls, fullgraph=True)):
        x = x0.clone().requires_grad_()
        outputs = function(x)
        changes = [torch.autograd.grad(y, x, grad, retain_graph=True)[0]
                   for y in outputs]  # fmt: skip
        results.append([t.detach() for t in outputs + changes])
    names = [f"{name} forward" for name in CALLS]
    names += [f"{name} backward" for name in CALLS]
    for name, eager, compiled in zip(names, *results, strict=True):
        assert_same_bits(compiled, eager, err_msg=name)


def test_inductor_generates_the_stream_inside_one_kernel():
    from torch._inductor.utils import run_and_get_code

    def f(x):
        return ct.relu_dropout(x * 2.0, 0.3, seed=4)

    x = torch.randn(64, 256)
    result, (code,) = run_and_get_code(torch.compile(f, fullgraph=True), x)
    assert torch.equal(result, f(x))
    # one generated loop (multiply, ReLU and the stream) and no call to anything else
    assert code.count("async_compile.cpp_pybinding(") == 1
    assert "torch.ops.cdropout" not in code and "aten." not in code


def _mlp(dropout):
    torch.manual_seed(0)
    layers = []
    for _ in range(2):
        layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
        layers += [dropout(0.5)] if dropout else []
    return torch.nn.Sequential(*layers, torch.nn.Linear(64, 4))


def _saved(model, x):
    """The shape and dtype of every tensor a training step saves for backward."""
    saved = []

    def pack(tensor):
        saved.append((tuple(tensor.shape), tensor.dtype))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y = model(x)
    y.sum().backward()
    return sorted(saved, key=str)


def test_a_compiled_step_saves_what_the_step_without_dropout_saves():
    x = torch.randn(32, 64)
    baseline = _saved(torch.compile(_mlp(None), fullgraph=True), x)
    swapped = ct.swap_dropout(_mlp(torch.nn.Dropout))
    assert _saved(torch.compile(swapped, fullgraph=True), x) == baseline
    # and eagerly too: the fused operation saves its output, which the Linear after
    # it saves anyway
    assert _saved(swapped, x) == _saved(_mlp(None), x)


_WITHOUT_CDROPOUT = textwrap.dedent(
    """
    import sys
    sys.modules["cdropout"] = None  # any import of cdropout fails
    import torch

    program = torch.export.load(sys.argv[1])
    x, expected = torch.load(sys.argv[2])
    torch.manual_seed(11)
    result = program.module()(x)
    assert torch.equal(result, expected), "not the eager bytes"
    print("ok")
    """
)


@pytest.mark.parametrize("seed", [None, 3], ids=["generator", "seeded"])
def test_an_exported_program_runs_where_cdropout_is_not_installed(tmp_path, seed):
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(),
            ct.Dropout(0.5, seed=seed), torch.nn.Linear(16, 4),
        )  # fmt: skip

    fused = model()
    ct.swap_dropout(fused)
    x = torch.randn(5, 8)
    program = torch.export.export(fused, (x,))
    torch.export.save(program, tmp_path / "program.pt2")
    apart = model()
    torch.manual_seed(11)  # (the key of seed=None: the same draw in the program)
    torch.save((x, apart(x)), tmp_path / "expected.pt")
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CDROPOUT, str(tmp_path / "program.pt2"),
         str(tmp_path / "expected.pt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
