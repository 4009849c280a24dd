"""The eager path: the operators' work as torch.autograd.Functions, for calls that no
tracer sees (cdropout.torch._state.eager).

A call through a torch.library custom operator pays PyTorch's Python dispatch, several
times the work at 1,000 elements, so eager calls that autograd must see take these
Functions, and the others the bare work (cdropout.torch._ops.run_dropout). Traced
calls take the registered operators, which run the same work: the bytes are the same.
The key is a Python int on ctx: backward saves no tensor at all.

Each variant is two Functions with one forward and one derivative:
- Plain, written the old way (forward(ctx, ...)), for calls that only autograd sees:
  PyTorch applies such a Function without binding its arguments to forward's
  signature, as it does for every call of a Function with a setup_context
  (_state.plain_autograd).
- Transformable, with setup_context, a jvp and a vmap rule, for torch.func's
  transforms (grad, jvp, vmap, jacrev, jacfwd, hessian) and forward-mode AD with dual
  tensors. The operators have no forward-mode formula (a custom operator's registered
  autograd covers backward only), so transforms never reach them.
"""

import numpy as np
import torch

from cdropout import _params
from cdropout.torch import _ops, _state


def _batch_first(input, in_dim, noise_shape):
    """A vmap rule's input with its batch axis first, and a noise shape that gives
    every slice along it the mask of the unbatched call: what calling once per slice
    with the same key and offset gives (torch.func.vmap's randomness="same"), in one
    call instead of one per slice."""
    x = input.movedim(in_dim, 0)
    return x, [1, *(noise_shape or x.shape[1:])]


def _pair(name, work, derivative):
    """The plain and transformable Functions of one variant, by family.

    work(input, *arguments) is the forward into a new tensor; derivative(family,
    change, arguments) the derivative applied to a change of the input, computed with
    the Functions of the same family (so that it is differentiable in turn). The
    arguments are (key, p, mode, stream, offset, n_threads, noise_shape), the key an int
    or a key drawn when forward asks for it (resolved). `name` names the
    Functions (and their grad_fn, name + "Backward").
    """

    def plain_forward(ctx, input, key, *arguments):
        output = work(input, key, *arguments)
        ctx.arguments = (resolved(key), *arguments)
        return output

    def plain_backward(ctx, grad):
        return (derivative("plain", grad, ctx.arguments), *(None,) * len(ctx.arguments))

    def forward(input, *arguments):
        return work(input, *arguments)

    def setup_context(ctx, inputs, output):
        ctx.arguments = (resolved(inputs[1]), *inputs[2:])

    def backward(ctx, grad):
        change = derivative("transformable", grad, ctx.arguments)
        return (change, *(None,) * len(ctx.arguments))

    def jvp(ctx, tangent, *_):
        return derivative("transformable", tangent, ctx.arguments)

    def vmap(info, in_dims, input, *arguments):
        x, noise = _batch_first(input, in_dims[0], arguments[-1])
        return transformable.apply(x, *arguments[:-1], noise), 0

    def function(suffix, **methods):
        methods = {key: staticmethod(method) for key, method in methods.items()}
        return type(name + suffix, (torch.autograd.Function,), methods)

    plain = function("", forward=plain_forward, backward=plain_backward)
    transformable = function(
        "Transformable", forward=forward, setup_context=setup_context,
        backward=backward, jvp=jvp, vmap=vmap,
    )  # fmt: skip
    return {"plain": plain, "transformable": transformable}


def resolved(key):
    """The int key: `key` itself, or the key a later-drawn key draws now (after the
    output is allocated: see functional._LaterKey)."""
    return key if type(key) is int else key()


def _dropout_work(input, key, p, mode, stream, offset, n_threads, noise_shape):
    out = _ops.empty_like(input)
    key = resolved(key)
    return _ops.run_dropout(input, out, key, p, mode, stream, offset, n_threads,
                            noise_shape)  # fmt: skip


def _dropout_derivative(family, change, arguments):
    # dropout is linear in its input: the same mask and scale, regenerated
    return DROPOUT[family].apply(change, *arguments)


def _alpha_work(input, key, p, mode, stream, offset, n_threads, noise_shape):
    out = _ops.empty_like(input)
    key = resolved(key)
    return _ops.run_alpha(input, out, key, p, stream, offset, n_threads, noise_shape)


def _alpha_derivative(family, change, arguments):
    # kept elements are a * x + b, dropped ones a constant: a * change where kept
    key, p, _, stream, offset, n_threads, noise_shape = arguments
    if p == 1.0:
        return torch.zeros_like(change)
    dropout = DROPOUT[family]
    kept = dropout.apply(change, key, p, "classic", stream, offset, n_threads,
                         noise_shape)  # fmt: skip
    a, _, _ = _params.alpha_constants(p, np.float64)
    return kept * float(a)


DROPOUT = _pair("CdropoutDropout", _dropout_work, _dropout_derivative)
ALPHA = _pair("CdropoutAlphaDropout", _alpha_work, _alpha_derivative)


# the plain Functions' apply, without PyTorch's Python layer (_state.plain_apply)
PLAIN_APPLY = {
    False: _state.plain_apply(DROPOUT["plain"]),
    True: _state.plain_apply(ALPHA["plain"]),
}


def apply(alpha, input, *arguments):
    """The variant's Function applied to `input` (arguments as _pair's): the plain one
    where only autograd sees the call, the transformable one otherwise."""
    if _state.plain_autograd():
        return PLAIN_APPLY[alpha](input, *arguments)
    return (ALPHA if alpha else DROPOUT)["transformable"].apply(input, *arguments)


def work(alpha, input, *arguments):
    """The variant's forward alone, for a call that autograd need not see."""
    return (_alpha_work if alpha else _dropout_work)(input, *arguments)


# ReLU or LeakyReLU, then dropout, as one operation: one pass of the kernel forward, and
# a backward from the output alone (no mask, no input saved: the output, which the next
# layer saves anyway). For kept elements the output's sign is the input's (the scale is
# positive), and relu's gradient is 0 where its output is not positive, as PyTorch's.


def _activated_work(input, key, p, mode, stream, offset, n_threads, noise, activation):
    out = _ops.empty_like(input)
    key = resolved(key)
    return _ops.run_dropout(input, out, key, p, mode, stream, offset, n_threads, noise,
                            activation)  # fmt: skip


def _activated_derivative(family, change, output, arguments):
    """The derivative of activation-then-dropout at `output`, applied to `change`: what
    dropout's backward and then the activation's (from its result) give."""
    key, p, mode, stream, offset, n_threads, noise, (name, slope) = arguments
    if name == "relu":  # kept and positive exactly where the output is positive
        if p < 1.0 and mode == "inverted":
            change = change * _params.training_scale(p, mode, _arithmetic(change))
        return torch.ops.aten.threshold_backward(change, output, 0.0)
    dropped = DROPOUT[family].apply(change, key, p, mode, stream, offset, n_threads,
                                    noise)  # fmt: skip
    return torch.ops.aten.leaky_relu_backward(dropped, output, slope, True)


def _arithmetic(tensor):
    """The NumPy type of the arithmetic the kernel computes a dtype in (float32 below
    float64)."""
    return np.float64 if tensor.dtype == torch.float64 else np.float32


def _activated_pair():
    def plain_forward(ctx, input, key, *arguments):
        output = _activated_work(input, key, *arguments)
        ctx.arguments = (resolved(key), *arguments)
        ctx.save_for_backward(output)
        return output

    def plain_backward(ctx, grad):
        (output,) = ctx.saved_tensors
        change = _activated_derivative("plain", grad, output, ctx.arguments)
        return (change, *(None,) * len(ctx.arguments))

    def forward(input, *arguments):
        return _activated_work(input, *arguments)

    def setup_context(ctx, inputs, output):
        ctx.arguments = (resolved(inputs[1]), *inputs[2:])
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    def backward(ctx, grad):
        (output,) = ctx.saved_tensors
        change = _activated_derivative("transformable", grad, output, ctx.arguments)
        return (change, *(None,) * len(ctx.arguments))

    def jvp(ctx, tangent, *_):
        (output,) = ctx.saved_tensors
        return _activated_derivative("transformable", tangent, output, ctx.arguments)

    def vmap(info, in_dims, input, *arguments):
        x, noise = _batch_first(input, in_dims[0], arguments[-2])
        return transformable.apply(x, *arguments[:-2], noise, arguments[-1]), 0

    methods = {"forward": plain_forward, "backward": plain_backward}
    plain = type("CdropoutActivatedDropout", (torch.autograd.Function,),
                 {k: staticmethod(v) for k, v in methods.items()})  # fmt: skip
    methods = {"forward": forward, "setup_context": setup_context,
               "backward": backward, "jvp": jvp, "vmap": vmap}  # fmt: skip
    transformable = type("CdropoutActivatedDropoutTransformable",
                         (torch.autograd.Function,),
                         {k: staticmethod(v) for k, v in methods.items()})  # fmt: skip
    return {"plain": plain, "transformable": transformable}


ACTIVATED = _activated_pair()
_ACTIVATED_PLAIN_APPLY = _state.plain_apply(ACTIVATED["plain"])


def activated(input, key, *arguments):
    """activation then dropout, as one operation (arguments as _pair's, then the
    activation): through its Function where autograd sees the call."""
    if not _state.autograd_sees(input):
        return _activated_work(input, key, *arguments)
    if _state.plain_autograd():
        return _ACTIVATED_PLAIN_APPLY(input, key, *arguments)
    return ACTIVATED["transformable"].apply(input, key, *arguments)
