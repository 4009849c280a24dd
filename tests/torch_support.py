"""What the tests of cdropout.torch share: the dtypes, a tensor's bytes, the NumPy
API's result for a tensor. Imported after pytest.importorskip("torch")."""

import contextlib
import math
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import cdropout
from cdropout.torch import _ops

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]

# PyTorch's own warnings, by message, where PyTorch raises them in its own code or
# in what a test calls on purpose (the suite turns every other warning into an error):
# its forward-mode AD scripts its decompositions with torch.jit.script on first use
# (DeprecationWarning in 2.13, FutureWarning in 2.14)
JIT_SCRIPT_DEPRECATED = r"ignore:`torch\.jit\.script(_method)?` is deprecated"
# torch.jit.trace, called by the tests of traced models
JIT_TRACE_DEPRECATED = r"ignore:`torch\.jit\.trace(_method)?` is deprecated"
# opcheck's fake tensors read .grad of a non-leaf (2.14's meta_utils)
OPCHECK_NON_LEAF_GRAD = (
    r"ignore:The \.grad attribute of a Tensor that is not a leaf Tensor is being "
    "accessed:UserWarning"
)


def bits(tensor):
    """A tensor's bytes as NumPy integers (bfloat16 included), C order."""
    view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
    return tensor.contiguous().view(view).numpy()


def numpy_dropout(tensor, p, **kwargs):
    """cdropout.dropout of the tensor's values through the NumPy API."""
    return cdropout.dropout(_ops.as_numpy(tensor), p, **kwargs)


def alpha_dropout(input, p=0.5, training=True, inplace=False, **kwargs):
    """cdropout.torch.alpha_dropout in training unless told (its default, as
    torch.nn.functional.alpha_dropout's, is evaluation): a twin of dropout's
    signature for the tests that run both."""
    from cdropout.torch import alpha_dropout as function

    return function(input, p, training, inplace, **kwargs)


@pytest.fixture
def fresh_compilations():
    """Forget what torch.compile compiled before the test: each model compiled anew
    is a recompilation of the same code (nn.Module's forward), which dynamo stops
    after 8 in a process."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def assert_same_bits(actual, desired, err_msg=""):
    """The same bits, but for the bits of a NaN, which PyTorch's own kernels do not
    keep alike: a bfloat16 NaN's bits from relu, or a compiled multiply, depend on
    whether the loop is vectorised (inputs of 32 elements and more)."""
    nan = torch.isnan(actual)
    assert torch.equal(nan, torch.isnan(desired)), err_msg
    np.testing.assert_array_equal(
        bits(actual.masked_fill(nan, 0)), bits(desired.masked_fill(nan, 0)), err_msg
    )


class PyTorchDropouts(TorchDispatchMode):
    """Records the operators PyTorch's own dropouts run (dropout, bernoulli, and
    scaled_dot_product attention with a dropout_p): `seen` stays empty where every
    dropout is cdropout's."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__
        if (
            "dropout" in name
            or "bernoulli" in name
            or ("scaled_dot_product" in name and len(args) > 3 and args[3])
        ):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def counted_dropout_elements(model):
    """Counts the elements cdropout drops out while `model` runs inside the block:
    its dropout modules' inputs, intercepted F.dropout calls' inputs and each
    intercepted attention's probabilities (batch x heads x queries x keys). Yields a
    dict whose "elements" is the count."""
    from cdropout.torch import attention, interception, modules

    counted = {"elements": 0}

    def count(elements):
        counted["elements"] += elements

    handles = [
        module.register_forward_hook(lambda m, inputs, out: count(inputs[0].numel()))
        for module in model.modules()
        if isinstance(module, modules._Module)
    ]
    real_dropout = interception._HANDLERS[F.dropout]
    real_attention = attention.scaled_dot_product_attention

    def dropout_handler(mode, func, args, kwargs):
        count((args[0] if args else kwargs["input"]).numel())
        return real_dropout(mode, func, args, kwargs)

    def attention_call(q, k, *args, **kwargs):
        count(q.shape[:-1].numel() * k.shape[-2])
        return real_attention(q, k, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(interception._HANDLERS, F.dropout, dropout_handler)
        patch.setattr(attention, "scaled_dot_product_attention", attention_call)
        try:
            yield counted
        finally:
            for handle in handles:
                handle.remove()


def assert_within_seed_band(ours, pytorch):
    """The mean of cdropout's results over seeds (final losses of short training
    runs) lies within four standard errors of the difference from torch.nn's mean over
    as many seeds: the masks differ, their distribution must not."""
    count = len(ours)
    assert count == len(pytorch) > 1
    variance = statistics.variance(ours) + statistics.variance(pytorch)
    error = math.sqrt(variance / count)
    difference = statistics.fmean(ours) - statistics.fmean(pytorch)
    assert abs(difference) <= 4 * error, (ours, pytorch)
