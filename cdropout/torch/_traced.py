"""The counter stream as PyTorch's own operations, for calls that a tracer sees
(torch.compile, torch.export): inductor generates the stream inside the kernels around
it (a ReLU's, a matmul's epilogue), saves no mask, and an exported program runs where
cdropout is not installed. The bytes are the C kernel's (tests hold them equal).

Everything is int64 arithmetic, which wraps modulo 2**64 as the specification's uint64
does (docs/stream.md): constants of 2**63 and above are written as their negative
int64, and a logical right shift is an arithmetic one with the sign's copies masked off.
"""

import numpy as np
import torch

from cdropout import _params


def _int64(value):
    """A 64-bit word as the int64 that holds its bits."""
    return value - 2**64 if value >= 2**63 else value


GAMMA = _int64(0x9E3779B97F4A7C15)
TWO_GAMMA = _int64(2 * 0x9E3779B97F4A7C15 % 2**64)
_MIX1, _MIX2 = _int64(0xBF58476D1CE4E5B9), _int64(0x94D049BB133111EB)
_FMIX1, _FMIX2 = _int64(0xFF51AFD7ED558CCD), _int64(0xC4CEB9FE1A85EC53)
_ALTERNATE = _int64(0xAAAAAAAAAAAAAAAA)
_LOW32 = 0xFFFFFFFF


def _shr(z, k):
    """z >> k, logical, on int64."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64(z):
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def fmix64(z):
    z = (z ^ _shr(z, 33)) * _FMIX1
    z = (z ^ _shr(z, 33)) * _FMIX2
    return z ^ _shr(z, 33)


def _popcount(z):
    """The set bits of each int64 (the SWAR count: PyTorch has no popcount)."""
    z = z - (_shr(z, 1) & 0x5555555555555555)
    z = (z & 0x3333333333333333) + (_shr(z, 2) & 0x3333333333333333)
    z = (z + _shr(z, 4)) & 0x0F0F0F0F0F0F0F0F
    return _shr(z * 0x0101010101010101, 56)


def mix_gamma(z):
    z = fmix64(z) | 1
    return torch.where(_popcount(z ^ _shr(z, 1)) < 24, z ^ _ALTERNATE, z)


def call_key(calls, seed):
    """The key of call number `calls` (a 0-d int64 tensor) of a module seeded with
    `seed` (an int64's bits): cdropout._kernel.call_seed, as PyTorch's operations."""
    return mix64(seed ^ fmix64(calls + GAMMA))


def words(key, index):
    """The counter stream's 32-bit words (as int64) of the elements at `index` (an int64
    tensor of element indices), for the 0-d int64 tensor `key` holding the seed."""
    start, gamma = mix64(key + GAMMA), mix_gamma(key + TWO_GAMMA)
    z = mix64(start + (_shr(index, 1) + 1) * gamma)
    return (z >> ((index & 1) * 32)) & _LOW32


def keep(key, shape, offset, p, device):
    """The keep mask of a mask of this shape (its own C order, plus `offset`)."""
    count = 1
    for size in shape:
        count = count * size
    index = torch.arange(count, dtype=torch.int64, device=device).reshape(shape)
    return words(key, index + offset) >= _params.threshold(p)


def arithmetic(dtype):
    """The NumPy type of the arithmetic the kernel computes a dtype in (float32 below
    float64, as PyTorch computes 16-bit floats too)."""
    return np.float64 if dtype == torch.float64 else np.float32


def _scale(p, mode, dtype):
    """The factor of kept elements, rounded as the kernel rounds it."""
    return _params.training_scale(p, mode, arithmetic(dtype))


def _mask(input, key, p, offset, noise):
    shape = [input.shape[axis] if size == -1 else size for axis, size in
             enumerate(noise)] if noise else list(input.shape)  # fmt: skip
    return keep(key, shape, offset, p, input.device)


def dropout(input, key, p, mode, offset, noise):
    """Training-mode dropout of `input` with the counter stream, p in (0, 1]: kept
    elements times the scale, dropped ones +0.0."""
    if p == 1.0:
        return torch.zeros_like(input)
    mask = _mask(input, key, p, offset, noise)
    return torch.where(mask, input * _scale(p, mode, input.dtype), 0.0)


def alpha_dropout(input, key, p, offset, noise):
    """Alpha dropout with the counter stream (cdropout.alpha_dropout's arithmetic: a
    multiply, then an add, in the dtype's arithmetic; dropped elements the constant)."""
    if p == 1.0:
        return torch.zeros_like(input)
    a, b, c = _params.alpha_constants(p, arithmetic(input.dtype))
    mask = _mask(input, key, p, offset, noise)
    # 16-bit floats in float32, rounded once at the end, as the kernel computes them:
    # written in their own dtype, inductor 2.14 rounds the product to it first
    wide = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    return torch.where(mask, wide * a + b, c).to(input.dtype)


def activate(input, activation):
    """relu or leaky_relu by bits, as the kernel's fused pass computes them (and eager
    PyTorch): relu(x) = x < 0 ? +0.0 : x, leaky_relu(x) = x > 0 ? x : x * slope."""
    name, slope = activation
    if name == "relu":
        return torch.where(input < 0, 0.0, input)
    return torch.where(input > 0, input, input * slope)


class Dropout(torch.autograd.Function):
    """Dropout of the counter stream written with PyTorch's operations, its backward
    the same mask regenerated from the key: what tracers record, and inductor fuses.
    Saves the 0-d key and nothing of the input's size."""

    @staticmethod
    def forward(input, key, p, mode, offset, noise):
        return dropout(input, key, p, mode, offset, noise)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, key, *ctx.arguments = inputs
        ctx.save_for_backward(key)

    @staticmethod
    def backward(ctx, grad):
        (key,) = ctx.saved_tensors
        return Dropout.apply(grad, key, *ctx.arguments), None, None, None, None, None


class AlphaDropout(torch.autograd.Function):
    """Alpha dropout of the counter stream, as Dropout: kept elements are a * x + b,
    dropped ones a constant, so the gradient is a * grad where kept."""

    @staticmethod
    def forward(input, key, p, offset, noise):
        return alpha_dropout(input, key, p, offset, noise)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, key, *ctx.arguments = inputs
        ctx.save_for_backward(key)

    @staticmethod
    def backward(ctx, grad):
        (key,) = ctx.saved_tensors
        p, offset, noise = ctx.arguments
        if p == 1.0:
            return torch.zeros_like(grad), None, None, None, None
        a, _, _ = _params.alpha_constants(p, np.float64)
        kept = Dropout.apply(grad, key, p, "classic", offset, noise)
        return kept * a, None, None, None, None


def activated_dropout(input, key, p, mode, offset, noise, activation):
    return dropout(activate(input, activation), key, p, mode, offset, noise)


class ActivatedDropout(torch.autograd.Function):
    """ReLU or LeakyReLU then dropout, written with PyTorch's operations, its backward
    from the output (which the next layer saves anyway) and, for LeakyReLU, the mask
    regenerated from the key: inductor saves no mask and fuses both passes."""

    @staticmethod
    def forward(input, key, p, mode, offset, noise, activation):
        return activated_dropout(input, key, p, mode, offset, noise, activation)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, key, *ctx.arguments = inputs
        ctx.save_for_backward(key, output)

    @staticmethod
    def backward(ctx, grad):
        key, output = ctx.saved_tensors
        p, mode, offset, noise, (name, slope) = ctx.arguments
        # PyTorch's backward formulas of relu and leaky_relu (from their result), as
        # the eager call's: a NaN output passes the gradient through
        if name == "relu":  # kept and positive exactly where the output is positive
            if p < 1.0 and mode == "inverted":
                grad = grad * _scale(p, mode, grad.dtype)
            change = torch.ops.aten.threshold_backward(grad, output, 0.0)
        else:
            dropped = Dropout.apply(grad, key, p, mode, offset, noise)
            change = torch.ops.aten.leaky_relu_backward(dropped, output, slope, True)
        return change, None, None, None, None, None, None


def apply(alpha, input, key, p, mode, offset, noise, activation):
    """A traced training-mode call of the counter stream, through its autograd.Function
    where autograd sees it (a mask-free backward), else as plain operations
    (torch.func.functionalize takes no autograd.Function)."""
    autograd = torch.is_grad_enabled() and input.requires_grad
    if activation is not None:
        arguments = (p, mode, offset, noise, activation)
        function, plain = ActivatedDropout, activated_dropout
    elif alpha:
        arguments = (p, offset, noise)
        function, plain = AlphaDropout, alpha_dropout
    else:
        arguments = (p, mode, offset, noise)
        function, plain = Dropout, dropout
    return function.apply(input, key, *arguments) if autograd else plain(
        input, key, *arguments
    )
