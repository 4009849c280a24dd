"""The eager path: the operators' work as torch.autograd.Functions, for calls that no
tracer sees.

A call through a torch.library custom operator pays PyTorch's Python dispatch: measured
on a 2-core Intel Xeon (torch 2.13, 1,000 float32 elements, with autograd), 33 us
against 8 us through an autograd.Function and 4 us for the bare work (PyTorch's own
F.dropout: 15 us). So calls that nothing traces take these Functions (or, where autograd
need not see them, the bare work: functional.autograd_sees); torch.compile,
torch.export, fake tensors and dispatch modes get the registered operators
(cdropout.torch._ops), which run the same NumPy calls: the bytes are the same.
The key is a Python int on ctx: backward saves no tensor at all.

The Functions are written for torch.func (forward without ctx, setup_context, jvp and a
vmap rule): torch.func.grad, jvp, vmap, jacrev, jacfwd and hessian take them, and so
does forward-mode AD with dual tensors. The operators have no forward-mode formula (a
custom operator's registered autograd covers backward only), so transforms never reach
them: under torch.func.jvp a custom operator's tangent silently came out zero.
"""

import numpy as np
import torch
from torch._functorch.utils import unwrap_dead_wrappers

from cdropout import _params
from cdropout.torch import _ops


def is_eager(input):
    """Whether a call on `input` runs outside any tracer or dispatch mode. torch.func's
    transforms count as eager (the Functions below support them), except functionalize,
    which has no rule for autograd.Functions and takes the operators."""
    return (
        type(input) is torch.Tensor
        and not torch.compiler.is_compiling()
        and torch._C._len_torch_dispatch_stack() == 0  # no dispatch mode active
        and not (
            torch._C._are_functorch_transforms_active()
            and torch._C._functorch.is_functionaltensor(input)
        )
    )


class _Function(torch.autograd.Function):
    """torch.autograd.Function, less one step of its apply outside torch.func
    transforms: for a Function with setup_context, PyTorch binds every call's arguments
    to forward's signature (inspect.signature), to fill in defaults. That took a call at
    1,000 float32 elements from 6.6 to 26.5 us (2-core Intel Xeon, torch 2.13); the
    forwards here have no defaults, so the binding changes nothing. The rest of apply
    is kept: dead functorch wrappers unwrapped, then the C apply; under a transform,
    PyTorch's apply whole."""

    @classmethod
    def apply(cls, *args):
        if torch._C._are_functorch_transforms_active():
            return super().apply(*args)
        args = unwrap_dead_wrappers(args)
        return super(torch.autograd.Function, cls).apply(*args)


def _batch_first(input, in_dim, noise_shape):
    """A vmap rule's input with its batch axis first, and a noise shape that gives
    every slice along it the mask of the unbatched call: what calling once per slice
    with the same key and offset gives (torch.func.vmap's randomness="same"), in one
    call instead of one per slice."""
    x = input.movedim(in_dim, 0)
    return x, [1, *(noise_shape or x.shape[1:])]


class Dropout(_Function):
    """Dropout with its derivatives: backward, jvp (forward-mode AD, torch.func.jvp)
    and a vmap rule, so that every torch.func transform takes it."""

    @staticmethod
    def forward(input, key, p, mode, offset, n_threads, noise_shape):
        out = _ops.empty_like(input)
        arguments = (key, p, mode, offset, n_threads, noise_shape)
        return _ops.run_dropout(input, out, *arguments)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.arguments = inputs[1:]  # key and the rest: no tensor is saved

    @staticmethod
    def backward(ctx, grad):
        # dropout is linear in its input: the same mask and scale, regenerated
        return Dropout.apply(grad, *ctx.arguments), None, None, None, None, None, None

    @staticmethod
    def jvp(ctx, tangent, *_):
        return Dropout.apply(tangent, *ctx.arguments)

    @staticmethod
    def vmap(info, in_dims, input, key, p, mode, offset, n_threads, noise_shape):
        x, noise = _batch_first(input, in_dims[0], noise_shape)
        return Dropout.apply(x, key, p, mode, offset, n_threads, noise), 0


class AlphaDropout(_Function):
    """Alpha dropout with its derivatives, as Dropout."""

    @staticmethod
    def forward(input, key, p, offset, n_threads, noise_shape):
        out = _ops.empty_like(input)
        return _ops.run_alpha(input, out, key, p, offset, n_threads, noise_shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.arguments = inputs[1:]

    @staticmethod
    def _linear_part(ctx, change):
        # kept elements are a * x + b, dropped ones a constant: a * change where kept
        key, p, offset, n_threads, noise_shape = ctx.arguments
        if p == 1.0:
            return torch.zeros_like(change)
        kept = Dropout.apply(change, key, p, "classic", offset, n_threads, noise_shape)
        a, _, _ = _params.alpha_constants(p, np.float64)
        return kept * float(a)

    @staticmethod
    def backward(ctx, grad):
        return AlphaDropout._linear_part(ctx, grad), None, None, None, None, None

    @staticmethod
    def jvp(ctx, tangent, *_):
        return AlphaDropout._linear_part(ctx, tangent)

    @staticmethod
    def vmap(info, in_dims, input, key, p, offset, n_threads, noise_shape):
        x, noise = _batch_first(input, in_dims[0], noise_shape)
        return AlphaDropout.apply(x, key, p, offset, n_threads, noise), 0
