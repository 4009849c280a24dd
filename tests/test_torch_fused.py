"""ReLU or LeakyReLU then dropout as one operation: relu_dropout, leaky_relu_dropout
and the pairs that swap_dropout fuses. The fused operation is the two operations to
the bit, forward and backward, eager (one pass of the C kernel) and compiled (PyTorch's
operations, which inductor fuses into one kernel), and it saves only its output."""

import copy
from functools import partial

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import torch.nn.functional as F  # noqa: E402

import cdropout.torch as ct  # noqa: E402
from cdropout.torch.fusing import FusingSequential  # noqa: E402

from torch_support import (  # noqa: E402, F401
    DTYPES,
    assert_same_bits,
    bits,
    fresh_compilations,
)

pytestmark = pytest.mark.usefixtures("fresh_compilations")

# values where an activation or a rounding could tell the two computations apart
SPECIALS = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e-40, -1e-40,
            -3.0, 2.0, 70000.0, -70000.0]  # fmt: skip


def _input(dtype, shape=(4, 5, 17)):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    x.view(-1)[: len(SPECIALS)] = torch.tensor(SPECIALS, dtype=torch.float64).to(dtype)
    return x


def _gradient(x):
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.dtype)


def _inplace(options):
    return options.get("inplace", False)


# (fused, apart): the fused function and the two operations it stands for
PAIRS = {
    "relu": (
        lambda x, p, **options: ct.relu_dropout(x, p, **options),
        lambda x, p, **options: ct.dropout(F.relu(x, _inplace(options)), p, **options),
    ),
    "leaky_relu": (
        lambda x, p, **options: ct.leaky_relu_dropout(x, p, 0.2, **options),
        lambda x, p, **options: ct.dropout(
            F.leaky_relu(x, 0.2, _inplace(options)), p, **options
        ),
    ),
    "leaky_relu-slope-0": (
        lambda x, p, **options: ct.leaky_relu_dropout(x, p, 0.0, **options),
        lambda x, p, **options: ct.dropout(
            F.leaky_relu(x, 0.0, _inplace(options)), p, **options
        ),
    ),
    "leaky_relu-negative-slope": (  # runs the two operations apart, by design
        lambda x, p, **options: ct.leaky_relu_dropout(x, p, -0.5, **options),
        lambda x, p, **options: ct.dropout(
            F.leaky_relu(x, -0.5, _inplace(options)), p, **options
        ),
    ),
}
OPTIONS = [
    {"seed": 3},
    {"seed": 2**64 - 1, "offset": 2**32 + 1},
    {"seed": 4, "noise_shape": (None, 1, None)},
]


def _forward_and_backward(function, x0, grad):
    x = x0.clone().requires_grad_()
    y = function(x)
    (change,) = torch.autograd.grad(y, x, grad)
    return y.detach(), change


def _assert_same(fused, apart):
    for a, b in zip(fused, apart, strict=True):
        assert_same_bits(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
def test_the_fused_functional_is_the_two_operations_to_the_bit(dtype, pair, mode,
                                                               stream):  # fmt: skip
    fused, apart = PAIRS[pair]
    x = _input(dtype)
    for p in (0.0, 0.3, 1.0):
        for options in OPTIONS:
            options = {"mode": mode, "stream": stream, **options}
            grad = _gradient(x)
            results = [
                _forward_and_backward(partial(function, p=p, **options), x, grad)
                for function in (fused, apart)
            ]
            _assert_same(*results)
        for training in (False, True):  # in place, on a tensor autograd does not see
            a, b = x.clone(), x.clone()
            fused(a, p, training=training, inplace=True, mode=mode, seed=5)
            apart(b, p, training=training, inplace=True, mode=mode, seed=5)
            _assert_same([a], [b])


def test_the_fused_backward_saves_only_the_output():
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    x = torch.randn(64, 32, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y = ct.relu_dropout(x, 0.5, seed=1)
    assert [t.data_ptr() for t in saved if t.numel() > 1] == [y.data_ptr()]


def _mlp(dropout, dropout_first=False):
    torch.manual_seed(0)
    layers = []
    for activation, p in ((torch.nn.ReLU(), 0.3), (torch.nn.LeakyReLU(0.1), 0.2)):
        pair = [activation, dropout(p)]
        layers += [torch.nn.Linear(16, 16), *(pair[::-1] if dropout_first else pair)]
    return torch.nn.Sequential(*layers, torch.nn.Linear(16, 4))


def _convnet(dropout, dropout_first=False):
    torch.manual_seed(0)
    pair = [torch.nn.ReLU(), dropout(0.3)]
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), *(pair[::-1] if dropout_first else pair),
        torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2),
    )  # fmt: skip


def _step(model, x, seed):
    """Forward and backward, keys from PyTorch's generator seeded with `seed`: the
    output and each parameter's gradient."""
    model.zero_grad()
    torch.manual_seed(seed)
    y = model(x)
    y.backward(_gradient(y))
    return [y.detach()] + [p.grad for p in model.parameters()]


def _fusable_slots(model, dropout_first):
    """The activations that swap_dropout fuses: every ReLU, and a LeakyReLU before a
    dropout (after one, its multiply would round in another order)."""
    kinds = torch.nn.ReLU if dropout_first else (torch.nn.ReLU, torch.nn.LeakyReLU)
    return [i for i, module in enumerate(model) if isinstance(module, kinds)]


@pytest.mark.parametrize(
    "make", [lambda **o: _mlp(torch.nn.Dropout, **o),
             lambda **o: _convnet(torch.nn.Dropout2d, **o)],
    ids=["mlp", "convnet"],
)  # fmt: skip
@pytest.mark.parametrize("dropout_first", [False, True], ids=["after", "before"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_swap_dropout_fuses_the_pairs_into_the_same_function(make, dropout_first,
                                                              compiled):  # fmt: skip
    apart, fused = make(dropout_first=dropout_first), make(dropout_first=dropout_first)
    ct.swap_dropout(apart, fuse=False)
    ct.swap_dropout(fused)
    assert list(fused.state_dict()) == list(make().state_dict())
    assert type(fused) is FusingSequential and type(apart) is torch.nn.Sequential
    kinds = torch.nn.ReLU | torch.nn.LeakyReLU
    activations = [i for pair in fused.fused_pairs() for i in pair
                   if isinstance(fused[i], kinds)]  # fmt: skip
    assert activations == _fusable_slots(apart, dropout_first)
    x = torch.randn((8, 16) if isinstance(fused[0], torch.nn.Linear) else (8, 3, 8, 8))
    x.view(-1)[:3] = torch.tensor([-0.0, 1e-40, -1e-40])
    if compiled:  # both: inductor sums a gradient in its own order, not eager's
        fused, apart = (torch.compile(m, fullgraph=True, dynamic=False)
                        for m in (fused, apart))  # fmt: skip
    for seed in (1, 2):
        _assert_same(_step(fused, x, seed), _step(apart, x, seed))
    for model in (fused, apart):
        model.eval()
    _assert_same([fused(x).detach()], [apart(x).detach()])


def test_in_evaluation_a_classic_dropout_then_relu_keeps_its_order():
    # (1 - p) * x rounds a tiny negative to -0.0, which relu keeps: relu then the
    # scale would give +0.0
    model = torch.nn.Sequential(ct.Dropout(0.5, mode="classic"), torch.nn.ReLU())
    x = torch.tensor([-1e-45, 2.0])
    expected = torch.relu(x * 0.5)
    fused = ct.swap_dropout(model).eval()
    assert fused.fused_pairs() == [(0, 1)]
    np.testing.assert_array_equal(bits(fused(x)), bits(expected))


def test_swap_dropout_leaves_apart_what_it_cannot_fuse():
    shared_relu = torch.nn.ReLU()  # stateless: fused at each of its places
    hooked = torch.nn.ReLU()
    hooked.register_forward_hook(lambda module, inputs, output: None)
    linear = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(
        shared_relu, torch.nn.Dropout(0.5), linear,
        shared_relu, torch.nn.Dropout(0.5), linear,
        hooked, torch.nn.Dropout(0.5), linear,  # a hook would see other values
        torch.nn.LeakyReLU(-0.5), torch.nn.Dropout(0.5), linear,  # the sign is lost
        torch.nn.ReLU(), torch.nn.AlphaDropout(0.5), linear,  # dropped values not 0
        torch.nn.GELU(), torch.nn.Dropout(0.5), linear,  # not positively homogeneous
        torch.nn.Dropout(0.5), torch.nn.LeakyReLU(0.1),  # rounds in another order
    )  # fmt: skip
    ct.swap_dropout(model)
    assert model.fused_pairs() == [(0, 1), (3, 4)]  # the shared ReLU's two places


def test_a_fused_models_children_stay_what_they_are():
    # slices, indexing, hooks registered after the swap and walks over the modules
    # see the activation's values, as in torch.nn's model (the slot of a fused ReLU
    # once passed its input through)
    torch.manual_seed(0)
    model = ct.swap_dropout(torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(8, 8), torch.nn.LeakyReLU(0.1), torch.nn.Dropout(0.5),
    ))  # fmt: skip
    assert model.fused_pairs() == [(1, 2), (4, 5)]
    x = torch.randn(16, 4)
    assert torch.equal(model[:2](x), torch.relu(model[0](x)))
    assert torch.equal(model[1](torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))
    walked = [type(m) for _, m in model.named_modules()]
    assert walked[1:3] == [torch.nn.Linear, torch.nn.ReLU]
    torch.manual_seed(1)
    expected = model(x)
    seen = []
    hook = model[4].register_forward_hook(lambda m, i, out: seen.append((i[0], out)))
    assert model.fused_pairs() == [(1, 2)]  # the hooked pair runs apart
    torch.manual_seed(1)
    assert torch.equal(model(x), expected)  # fused or apart, the same function
    (before, after), = seen
    assert torch.equal(after, F.leaky_relu(before, 0.1)) and (before < 0).any()
    hook.remove()
    everywhere = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, out: None
    )
    try:
        assert model.fused_pairs() == []  # a global hook sees every module
    finally:
        everywhere.remove()


def test_a_fused_model_pickles_and_deep_copies():
    import io

    model = ct.swap_dropout(_mlp(torch.nn.Dropout))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
        x = torch.randn(4, 16)
        _assert_same(_step(other, x, 3), _step(model, x, 3))


def test_fuse_is_a_flag():
    with pytest.raises(TypeError, match="fuse must be a bool"):
        ct.swap_dropout(torch.nn.Sequential(), fuse="no")
