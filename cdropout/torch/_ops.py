"""cdropout's kernel as PyTorch operators, for the xoshiro stream under tracers:
``cdropout::dropout``, ``cdropout::dropout_`` (in place) and
``cdropout::alpha_dropout``, registered with torch.library, each with a fake (meta)
implementation, so that torch.compile and torch.export trace them, and an autograd
formula that saves no mask.
(The counter stream is traced as PyTorch's own operations: cdropout.torch._traced.)
Also the work every eager call runs (run_dropout, run_alpha).

The stream key travels as a 0-d int64 tensor holding the 64 bits of the key (keys of
2**63 and above read as negative): a tensor, so that a module's key can be computed from
its call-counter buffer inside a compiled graph. Backward regenerates the mask from
(key, offset): it saves the 8-byte key and nothing of the input's size.

Every operator runs the NumPy API on views of the tensors' memory (bfloat16 through
ml_dtypes.bfloat16 views of its 16-bit words), so its bytes are those of
``cdropout.dropout`` for the same key.
"""

import ml_dtypes
import numpy as np
import torch

import cdropout
from cdropout import _kernel, _params
from cdropout._runtime import USABLE_CPUS
from cdropout.torch import _state

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def as_numpy(tensor):
    """A NumPy view of a CPU tensor's memory (bfloat16 as ml_dtypes.bfloat16)."""
    if tensor.requires_grad:  # .numpy() refuses it; detach() costs a new tensor object
        tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(_BFLOAT16)
    return tensor.numpy()


def key_bits(key):
    """The 64-bit key held by a 0-d int64 tensor, as an int in [0, 2**64)."""
    return int(key.item()) & (2**64 - 1)


def key_tensor(key):
    """A 0-d int64 CPU tensor holding the 64 bits of an int key in [0, 2**64) (on the
    CPU whatever the default device: the key is read by the CPU kernel)."""
    return torch.tensor(
        key - 2**64 if key >= 2**63 else key, dtype=torch.int64, device="cpu"
    )


def empty_like(input):
    """A new tensor laid out like `input`, as PyTorch's elementwise operators lay out
    their outputs: its axes in the order of the input's strides (channels_last and
    permuted inputs keep their layout), dense even where the input is not."""
    if input.is_contiguous():
        return torch.empty_like(input, memory_format=torch.contiguous_format)
    # outermost first: larger strides first, ties in the natural order of the axes
    order = sorted(range(input.dim()), key=lambda d: -input.stride(d))
    inverse = [order.index(d) for d in range(input.dim())]
    dense = torch.empty(
        [input.shape[d] for d in order], dtype=input.dtype, device=input.device
    )
    return dense.permute(inverse)


def contiguous_copy(input):
    """A new contiguous tensor of `input`'s values (a negative view's resolved, a
    ZeroTensor's materialised)."""
    return torch.empty(input.shape, dtype=input.dtype, device=input.device).copy_(input)


def _noise(noise_shape):
    """The operators' noise shape as the NumPy API takes it: None for [] (the input's
    shape), None on an axis for -1 (the input's size there: see
    functional.noise_list)."""
    if not noise_shape:
        return None
    return tuple(None if dim == -1 else dim for dim in noise_shape)


# n_threads as the operators take it: a count, or this for PyTorch's intra-op thread
# count read when the operator runs (torch.get_num_threads cannot be traced)
TORCH_THREADS = 0


def _threads(n_threads):
    # a count for the NumPy API or the address path, which resolve it (forked children
    # and builds without OpenMP run on one thread): not resolved twice
    if n_threads == TORCH_THREADS:
        return min(torch.get_num_threads(), USABLE_CPUS)
    return n_threads


# NumPy's type numbers of the kernel's element types (bfloat16: its 16-bit words)
_KINDS = {
    torch.float16: np.dtype(np.float16).num,
    torch.bfloat16: np.dtype(np.uint16).num,
    torch.float32: np.dtype(np.float32).num,
    torch.float64: np.dtype(np.float64).num,
}


def activate(input, activation, inplace=False):
    """The activation fused with a dropout, as PyTorch computes it (into a new tensor,
    or in place): activation is ("relu", 0.0) or ("leaky_relu", negative_slope)."""
    name, slope = activation
    if name == "relu":
        return torch.nn.functional.relu(input, inplace)
    return torch.nn.functional.leaky_relu(input, slope, inplace)


def run_dropout(input, out, key, p, mode, stream, offset, n_threads, noise_shape,
                activation=None):  # fmt: skip
    """Training-mode dropout of `input` (of activation(input), if given) written into
    `out`, for an int key: what every dropout operator and eager call runs; returns the
    result (`out`, but see legacy_batched_dropout). `out` is `input` or a new tensor
    laid out like it (empty_like), so a contiguous input has a contiguous output."""
    n_threads = _threads(n_threads)
    if _state.values_not_in_memory(input) or (
        input.dim() > 64 and not input.is_contiguous()
    ):
        # memory that does not hold the values, or that NumPy cannot view (it has at
        # most 64 axes): through a contiguous copy, written back
        work = contiguous_copy(input)
        run_dropout(work, work, key, p, mode, stream, offset, n_threads, noise_shape,
                    activation)  # fmt: skip
        return out.copy_(work)
    try:
        # the common call runs on the tensors' addresses: NumPy views would cost 2-9 us
        # of PyTorch's dispatch (detach, resolve_conj, ...) when the caches are cold, as
        # they are between a model's layers (a ZeroTensor's address, 0, is declined)
        if not noise_shape and input.is_contiguous():
            src = input.data_ptr()
            dst = src if out is input else out.data_ptr()
            kind = _KINDS[input.dtype]
            act, slope = (0, 0.0) if activation is None else (
                _kernel.ACTIVATIONS[activation[0]], activation[1]
            )
            args = (p, key, mode, offset, n_threads, stream, act, slope)
            if _kernel.dropout_memory(src, dst, input.numel(), kind, *args):
                return out
        if activation is not None:  # the fused pass takes contiguous memory: two passes
            return run_dropout(activate(input, activation), out, key, p, mode, stream,
                               offset, n_threads, noise_shape)  # fmt: skip
        x = as_numpy(input)
        y = x if out is input else as_numpy(out)  # one view: the fast path's in place
    except RuntimeError:  # no memory to read: which tensor is it?
        if not _state.is_legacy_batched(input):
            raise
        if activation is not None:
            input = activate(input, activation)
        result = legacy_batched_dropout(input, key, p, mode, stream, offset,
                                        noise_shape)  # fmt: skip
        return input.copy_(result) if out is input else result
    cdropout.dropout(
        x,
        p,
        seed=key,
        mode=mode,
        out=y,
        offset=offset,
        n_threads=n_threads,
        noise_shape=_noise(noise_shape),
        stream=stream,
    )
    return out


def legacy_batched_dropout(input, key, p, mode, stream, offset, noise_shape):
    """Dropout of a tensor batched by PyTorch's legacy vmap (torch.autograd.functional
    .jacobian with vectorize=True, gradcheck's batched checks), which has no memory to
    read: PyTorch's operators apply the kernel's mask to every slice, as the unbatched
    call would. The kernel's bytes: kept elements times the scale (rounded to float32
    below float64, where PyTorch's scalar multiply also computes in float32), +0.0 for
    dropped ones."""
    noise = tuple(noise_shape) if noise_shape else tuple(input.shape)
    mask = cdropout.dropout_mask(noise, p, seed=key, offset=offset, stream=stream)
    keep = torch.from_numpy(mask)
    if p == 1.0:  # nothing kept (and no finite scale)
        return torch.where(keep, input, 0.0)
    arithmetic = np.float64 if input.dtype == torch.float64 else np.float32
    return torch.where(keep, input * _params.training_scale(p, mode, arithmetic), 0.0)


def run_alpha(input, out, key, p, stream, offset, n_threads, noise_shape):
    """Training-mode alpha dropout of `input` into `out`, for an int key."""
    if _state.values_not_in_memory(input) or input.dim() > 64:  # see run_dropout
        work = contiguous_copy(input)
        flat = work.view(-1) if input.dim() > 64 else work  # (without a noise shape)
        run_alpha(flat, flat, key, p, stream, offset, n_threads, noise_shape)
        return out.copy_(work)
    cdropout.alpha_dropout(as_numpy(input), p, seed=key, out=as_numpy(out),
                           offset=offset, n_threads=_threads(n_threads),
                           noise_shape=_noise(noise_shape), stream=stream)  # fmt: skip
    return out


@torch.library.custom_op("cdropout::dropout", mutates_args=(), device_types="cpu")
def dropout_op(
    input: torch.Tensor,
    key: torch.Tensor,
    p: float,
    convention: str,
    offset: int,
    n_threads: int,
    noise_shape: list[int],
) -> torch.Tensor:
    """Training-mode dropout into a new tensor laid out like `input` (noise_shape [] is
    the input's shape)."""
    return run_dropout(
        input,
        empty_like(input),
        key_bits(key),
        p,
        convention,
        "xoshiro",
        offset,
        n_threads,
        noise_shape,
    )


@dropout_op.register_fake
def _(input, key, p, convention, offset, n_threads, noise_shape):
    return empty_like(input)


def _dropout_setup(ctx, inputs, output):
    _, key, p, mode, offset, n_threads, noise_shape = inputs
    ctx.save_for_backward(key)  # 8 bytes: the mask is regenerated from it
    ctx.arguments = (p, mode, offset, n_threads, noise_shape)


def _dropout_backward(ctx, grad):
    # dropout is linear in its input: the gradient is the same mask and scale
    (key,) = ctx.saved_tensors
    return dropout_op(grad, key, *ctx.arguments), None, None, None, None, None, None


dropout_op.register_autograd(_dropout_backward, setup_context=_dropout_setup)


@torch.library.custom_op(
    "cdropout::dropout_", mutates_args=("input",), device_types="cpu"
)
def dropout_inplace_op(
    input: torch.Tensor,
    key: torch.Tensor,
    p: float,
    convention: str,
    offset: int,
    n_threads: int,
    noise_shape: list[int],
) -> None:
    """Training-mode dropout written into `input` (no autograd: see functional). The
    convention's argument is not called `mode`: PyTorch's functionalization of a
    mutating operator under torch.compile passes a `mode` of its own, and the compiled
    in-place call failed with "got multiple values for argument 'mode'"."""
    run_dropout(input, input, key_bits(key), p, convention, "xoshiro", offset,
                n_threads, noise_shape)  # fmt: skip


@dropout_inplace_op.register_fake
def _(input, key, p, convention, offset, n_threads, noise_shape):
    return None


@torch.library.custom_op("cdropout::alpha_dropout", mutates_args=(), device_types="cpu")
def alpha_dropout_op(
    input: torch.Tensor,
    key: torch.Tensor,
    p: float,
    offset: int,
    n_threads: int,
    noise_shape: list[int],
) -> torch.Tensor:
    """Training-mode alpha dropout (PyTorch's AlphaDropout) into a new tensor."""
    return run_alpha(input, empty_like(input), key_bits(key), p, "xoshiro", offset,
                     n_threads, noise_shape)  # fmt: skip


@alpha_dropout_op.register_fake
def _(input, key, p, offset, n_threads, noise_shape):
    return empty_like(input)


def _alpha_setup(ctx, inputs, output):
    _, key, p, offset, n_threads, noise_shape = inputs
    ctx.save_for_backward(key)
    ctx.arguments = (p, offset, n_threads, noise_shape)


def _alpha_backward(ctx, grad):
    # kept elements are a * x + b, dropped ones a constant: grad * a where kept
    (key,) = ctx.saved_tensors
    p, offset, n_threads, noise_shape = ctx.arguments
    if p == 1.0:
        return torch.zeros_like(grad), None, None, None, None, None
    kept = dropout_op(grad, key, p, "classic", offset, n_threads, noise_shape)
    a, _, _ = _params.alpha_constants(p, np.float64)  # kept: a * x + b
    return kept * float(a), None, None, None, None, None


alpha_dropout_op.register_autograd(_alpha_backward, setup_context=_alpha_setup)
