"""The functional API for tensors: dropout, dropout1d/2d/3d, alpha_dropout and
feature_alpha_dropout, with torch.nn.functional's arguments and defaults, plus both
conventions, a seed and the NumPy API's options.

Every call goes through one checked call (_run): all arguments are checked before
anything is allocated, written or drawn, so that a failed call leaves the tensor, the
generator and a module's call counter as they were. The key is drawn last. Then the
call runs eagerly on the tensor's memory (cdropout.torch._eager), as registered
operators when a tracer sees it (cdropout.torch._ops), or with PyTorch's own dropout
on devices other than the CPU (cdropout.torch._elsewhere). dropout()'s common eager call
is checked and run in one Python call (_common_call).
"""

import math
import numbers
import threading
import warnings
from typing import Any, Protocol

import numpy as np
import torch
from torch.overrides import handle_torch_function, has_torch_function_unary

from cdropout import _kernel, _params
from cdropout._threads import resolve_threads
from cdropout.torch import _eager, _elsewhere, _ops, _state, _traced

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class KeySource(Protocol):
    """What a module with an int seed passes as `seed`: its per-call key source."""

    def check(self) -> None:
        """Raise if no key can be drawn (checked before anything is drawn)."""

    def draw(self, eager: bool) -> Any:
        """The next call's key (an int if eager, else a 0-d int64 tensor)."""


def check_input(input, name="input"):
    """A tensor of float16, bfloat16, float32 or float64, dense (strided): on any
    device (cdropout's kernel runs on the CPU; see _elsewhere for the others)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if input.dtype not in DTYPES:
        raise TypeError(
            f"{name} must have dtype float16, bfloat16, float32 or float64, "
            f"got {input.dtype}"
        )
    if input.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got {input.layout}")
    return input


def probability(p):
    """p as a float in [0, 1]: what the NumPy API takes, and a 0-d real tensor, as
    torch.nn.Dropout takes it (not one that requires grad: the mask's probability has
    no gradient, and PyTorch refuses it too)."""
    if type(p) is not float and isinstance(p, torch.Tensor) and p.dim() == 0:
        if p.requires_grad:
            raise TypeError(
                "p must be a float or a tensor that does not require grad (dropout "
                "has no gradient for its probability), got a tensor that requires grad"
            )
        if p.dtype != torch.bool and not p.is_complex():
            p = p.item()
    return _params.probability(p)


def threads(n_threads):
    """The thread count for the operators: n_threads as the NumPy API reads it, and for
    None PyTorch's intra-op thread count (torch.set_num_threads), at most the usable
    CPUs, read when the operator runs."""
    if n_threads is None:
        return _ops.TORCH_THREADS
    return resolve_threads(n_threads)


def noise_list(noise_shape, input):
    """noise_shape resolved against the input's shape, as the operators take it ([]:
    the input's shape; -1 on an axis: the input's size there, read when the operator
    runs).

    A symbolic size (torch.compile with dynamic shapes, torch.export) is not compared
    with anything, since each comparison would put a guard on it (and torch.export
    refuses guards on a dimension declared dynamic): its axis is checked as if its
    size were what the noise asks for there, and None on it becomes -1; an int on it
    is checked when the operator runs, by the NumPy API."""
    if noise_shape is None:  # the common call reads no shape (each read costs a call)
        return []
    shape = tuple(input.shape)
    symbolic = [type(size) is not int for size in shape]
    if not any(symbolic):
        return list(_params.noise_shape(noise_shape, shape, "input"))
    asked = list(_params.noise_spec(noise_shape)) + [None] * len(shape)
    stand_ins = [
        (1 if asked[axis] is None else asked[axis]) if symbolic[axis] else size
        for axis, size in enumerate(shape)
    ]
    resolved = _params.noise_shape(noise_shape, stand_ins, "input")
    return [
        -1 if symbolic[axis] and asked[axis] is None else dim
        for axis, dim in enumerate(resolved)
    ]


_THREAD = threading.local()  # the buffer of _drawn_words, one per thread


def _drawn_words(generator):
    """Two 32-bit words from `generator`, as torch.randint(0, 2**32, (2,)) draws them,
    for an eager call. Written into a CPU buffer of this thread's: one operator call
    instead of randint's two and an allocation. The buffer is made outside inference
    mode, so that it can be written both in and out of it, and on the CPU whatever the
    default device. Under a torch.func transform, randint itself (vmap batches the
    draw)."""
    if _state.transforms_active():
        drawn = torch.randint(
            0, 2**32, (2,), dtype=torch.int64, generator=generator, device="cpu"
        )
        try:
            return drawn.tolist()
        except RuntimeError:
            if _state.is_batched(drawn):
                raise NotImplementedError(
                    'cdropout.torch under torch.func.vmap(randomness="different") with '
                    "seed=None: one key per slice is not supported; pass a seed, or "
                    'use randomness="same" (one key, the same mask for every slice)'
                ) from None
            raise
    words = getattr(_THREAD, "words", None)
    if words is None:
        with torch.inference_mode(False):
            words = _THREAD.words = torch.empty(2, dtype=torch.int64, device="cpu")
    return words.random_(0, 2**32, generator=generator).tolist()


def check_seed(seed, generator):
    """Check the kinds of seed and generator, drawing nothing."""
    if seed is not None and generator is not None:
        raise ValueError("seed and generator must not both be given: choose one")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}"
        )
    if hasattr(seed, "draw"):  # a module's key source
        seed.check()
        return
    try:
        _params.check_seed(seed)
    except TypeError as error:  # PyTorch's own way of seeding, named too
        raise TypeError(
            f"{error}; or pass generator=, a torch.Generator, for keys drawn from it"
        ) from None


def draw_key(seed, generator, eager):
    """The stream key: an int seed (or any seed of the NumPy API) itself, a module's
    next call key, else 64 bits drawn from `generator` (PyTorch's default CPU
    generator when None), so that torch.manual_seed makes runs reproducible. An int for
    an eager call, a 0-d int64 tensor of the same bits for the operators (a tracer
    cannot read a tensor)."""
    if hasattr(seed, "draw"):
        return seed.draw(eager)
    if seed is not None:
        key = _params.seed_value(seed)
        return key if eager else _ops.key_tensor(key)
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got {generator.device}")
    # two 32-bit draws in one operator call (a call costs microseconds), composed
    # without int64 overflow: (high - 2**31) * 2**32 + low spans int64
    if not eager:  # a tensor of the bits, which a tracer records
        drawn = torch.randint(
            0, 2**32, (2,), dtype=torch.int64, generator=generator, device="cpu"
        )
        return (drawn[0] - 2**31) * 2**32 + drawn[1]
    high, low = _drawn_words(generator)
    return ((high - 2**31) * 2**32 + low) & (2**64 - 1)


class _LaterKey:
    """The key of an eager call, drawn when the Function's forward asks for it: after
    the output is allocated, so that a failed allocation draws nothing."""

    __slots__ = ("seed", "generator", "key")

    def __init__(self, seed, generator):
        self.seed, self.generator, self.key = seed, generator, None

    def __call__(self):
        if self.key is None:
            self.key = draw_key(self.seed, self.generator, True)
        return self.key


def check_inplace(input):
    """PyTorch's rules for writing in place, asked before anything is drawn: not a
    leaf that requires grad while grad mode is on, not a view that autograd forbids to
    modify in place (an output of unbind or split, a view made under no_grad), not an
    inference tensor outside inference mode, and not a tensor whose elements share
    memory (expanded, as_strided)."""
    if input.requires_grad and input.is_leaf and torch.is_grad_enabled():
        raise RuntimeError(
            "input is a leaf tensor that requires grad: it cannot be dropped out in "
            "place (inplace=True); use inplace=False"
        )
    if _state.compiling():  # a traced tensor has none of the rest (nor memory)
        return
    if _state.immutable(input):
        raise RuntimeError(
            "input is a ZeroTensor, which PyTorch never writes: it cannot be dropped "
            "out in place (inplace=True); use inplace=False"
        )
    if _state.inplace_view_refused(input):
        raise RuntimeError(
            "input is a view that autograd does not allow to be modified in place (an "
            "output of unbind or split, or a view made under torch.no_grad()): it "
            "cannot be dropped out in place (inplace=True); use inplace=False"
        )
    if input.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(
            "input is an inference tensor (made under torch.inference_mode()): it "
            "cannot be dropped out in place outside inference mode; clone() it, or "
            "use inplace=False"
        )
    # (a contiguous tensor cannot overlap itself)
    if not input.is_contiguous() and _overlaps(input):
        raise RuntimeError(
            f"input has elements that share memory (shape {tuple(input.shape)}, "
            f"strides {input.stride()}, as from expand or as_strided): it cannot be "
            "dropped out in place (inplace=True); clone() it, or use inplace=False"
        )


def _overlaps(input):
    """Whether two elements of `input` may share memory: the NumPy API's test, on the
    sizes and strides alone."""
    itemsize = input.element_size()
    strides = tuple(stride * itemsize for stride in input.stride())
    return _params.may_self_overlap_layout(tuple(input.shape), strides, itemsize)


def is_traced(count):
    """Whether torch.jit.trace (deprecated by PyTorch) records the call, told by the
    input's element count, which the call reads anyway: a traced tensor under a trace,
    as all its sizes are, else an int (or a SymInt under torch.compile)."""
    return isinstance(count, torch.Tensor)


def known_size(count):
    """The element count for the offset's check (offset + count <= 2**63): 0 for a
    symbolic count (torch.compile with dynamic shapes, torch.export), on which the
    check would put a guard that torch.export refuses for a dimension without a
    bound; the operator checks the whole at run time (the NumPy API's check)."""
    return count if type(count) is int else 0


def refuse_traced_training():
    """A training call under torch.jit.trace: refused (a trace records PyTorch's
    operators, and the eager call would be missing from it). Evaluation is traced: the
    calls check what they can without sizes, as PyTorch checks nothing under a trace."""
    raise RuntimeError(
        "cdropout.torch cannot be traced by torch.jit.trace in training mode (the "
        "trace would miss the kernel's call); use torch.compile or torch.export, "
        "which record cdropout's operators, or trace the model in eval() mode"
    )


def evaluation(input, p, inplace, mode):
    """Evaluation-mode dropout: the identity for inverted dropout (and alpha dropout),
    a multiply by 1 - p for classic dropout."""
    if mode == "inverted" or p == 0.0:
        return input
    scaled = input * (1.0 - p) if p < 1.0 else torch.zeros_like(input)
    return input.copy_(scaled) if inplace else scaled


class _Variant:
    """What tells the public functions apart: alpha dropout or not, the mask's shape
    (noise(input, noise_shape) gives the noise shape as the NumPy API takes it, or
    FEATURES_NEEDED), and the function's name for torch_function dispatch."""

    def __init__(self, name, alpha, noise):
        self.name, self.alpha, self.noise = name, alpha, noise


# the noise of a feature (channel) dropout of fewer than 2 axes: refused when it draws
FEATURES_NEEDED = object()


def _elementwise(input, noise_shape):
    return _params.noise_spec(noise_shape)


def _features(input, batched=True):
    """One decision per (N, C) of a batched input, per C of an unbatched one (aten's
    feature noise: the input's first two axes, or its first after an unsqueeze)."""
    rank = input.dim() + (0 if batched else 1)
    if rank < 2:
        return FEATURES_NEEDED
    kept = 2 if batched else 1
    # None: the input's size there, so that no size is read (a symbolic one under
    # torch.compile or torch.export would be compared, and guarded)
    return (None,) * kept + (1,) * (input.dim() - kept)


def _dropout1d_noise(input, noise_shape):
    if input.dim() not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D "
            "input. Note that dropout1d exists to provide channel-wise dropout on "
            "inputs with 1 spatial dimension, a channel dimension, and an optional "
            "batch dimension (i.e. 2D or 3D inputs)."
        )
    return _features(input, batched=input.dim() == 3)


def _dropout2d_noise(input, noise_shape):
    rank = input.dim()
    if rank not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {rank}-D input to dropout2d, which is deprecated "
            "in PyTorch; cdropout follows PyTorch and drops whole channels of (N, C, "
            "...). Use dropout for element-wise dropout.",
            UserWarning,
            stacklevel=4,
        )
    if rank == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that "
            "channel-wise 1D dropout behavior is desired - input is interpreted as "
            "shape (N, C, L), as PyTorch does; use dropout1d for it.",
            UserWarning,
            stacklevel=4,
        )
    return _features(input)


def _dropout3d_noise(input, noise_shape):
    rank = input.dim()
    if rank not in (4, 5):
        warnings.warn(
            f"dropout3d: Received a {rank}-D input to dropout3d, which is deprecated "
            "in PyTorch; cdropout follows PyTorch's reading of it.",
            UserWarning,
            stacklevel=4,
        )
    return _features(input, batched=rank == 5)


def _feature_alpha_noise(input, noise_shape):
    return _features(input)


DROPOUT = _Variant("dropout", False, _elementwise)
DROPOUT1D = _Variant("dropout1d", False, _dropout1d_noise)
DROPOUT2D = _Variant("dropout2d", False, _dropout2d_noise)
DROPOUT3D = _Variant("dropout3d", False, _dropout3d_noise)
ALPHA = _Variant("alpha_dropout", True, _elementwise)
FEATURE_ALPHA = _Variant("feature_alpha_dropout", True, _feature_alpha_noise)


VARIANTS = {variant.name: variant
            for variant in (DROPOUT, DROPOUT1D, DROPOUT2D, DROPOUT3D)}  # fmt: skip


def activated_module_call(function, activation, after, input, p, training, inplace,
                          mode, seed, noise_shape, stream):  # fmt: skip
    """What a dropout module whose activation swap_dropout fused runs: the functional
    `function` (dropout, dropout1d/2d/3d) of activation(input), as one operation; with
    `after`, activation(function(input)), the same bits in training for ReLU (dropout
    scales by 1/(1-p) >= 1 or 1, or zeroes, and relu commutes with that), and the two
    operations in their order in evaluation (where a classic scale below 1 may round a
    negative to -0.0, which relu keeps)."""
    options = {"mode": mode, "seed": seed, "stream": stream}
    if function == "dropout":
        options["noise_shape"] = noise_shape
    call = dropout if function == "dropout" else _CHANNEL_FUNCTIONS[function]
    if after and not training:
        return _ops.activate(call(input, p, training, inplace, **options), activation)
    if has_torch_function_unary(input):  # a tensor subclass: the two operations
        activated = _ops.activate(input, activation)
        return call(activated, p, training, inplace, **options)
    return _run(VARIANTS[function], input, p, training, inplace, mode, seed, None, 0,
                None, noise_shape, stream, activation)  # fmt: skip


def runs_on_kernel(input):
    """Whether cdropout's kernel runs on `input`'s device (the CPU)."""
    return input.is_cpu


def _run(variant, input, p, training, inplace, mode, seed, generator, offset,
         n_threads, noise_shape, stream, activation=None):  # fmt: skip
    """The one checked call of every public function: checks everything, then runs
    the call where it belongs. The key is drawn last, and only by a call that draws a
    mask (training, 0 < p < 1, a non-empty input), as PyTorch's dropout draws.
    `activation`, ("relu", 0.0) or ("leaky_relu", slope), is applied before the
    dropout, fused with it."""
    check_input(input)
    p = probability(p)
    training = _params.flag(training, "training")
    inplace = _params.flag(inplace, "inplace")
    mode = _params.mode(mode)
    stream = _params.stream(stream)
    spec = variant.noise(input, noise_shape)
    count = input.numel()
    if is_traced(count):  # the sizes are tensors: not checked
        if training:
            refuse_traced_training()
        return _evaluation(variant, input, p, inplace, mode, activation)
    check_seed(seed, generator)
    n_threads = threads(n_threads)
    offset = _params.offset(offset, known_size(count))
    drawing = training and 0.0 < p < 1.0 and (type(count) is not int or count > 0)
    if spec is FEATURES_NEEDED:
        if drawing:  # aten's feature noise refuses it, and only then
            raise RuntimeError(
                "Feature dropout requires at least 2 dimensions in the input (whole "
                f"channels of (N, C, ...) are dropped), got a {input.dim()}-D input"
            )
        spec = None
    noise = noise_list(spec, input)
    if noise and input.dim() > 64:
        raise ValueError(
            f"input must have at most 64 dimensions with a noise shape (NumPy's "
            f"limit), got {input.dim()}"
        )
    if input.is_nested and drawing:
        raise ValueError(
            "input must not be a nested tensor in training (its elements have no "
            "flat index for cdropout's stream); use torch.nn.functional.dropout for "
            "it, or unbind it"
        )
    writes = (training and p > 0.0) or activation is not None or (
        not training and not variant.alpha and mode == "classic" and p > 0.0
    )
    if inplace and writes:
        check_inplace(input)
    if not training:
        return _evaluation(variant, input, p, inplace, mode, activation)
    if activation is not None and (not runs_on_kernel(input) or p == 0.0):
        input = _ops.activate(input, activation, inplace)  # then a plain dropout
        activation = None
    if not runs_on_kernel(input):
        return _elsewhere.training_output(
            input, p, inplace, mode, variant.alpha, noise, generator
        )
    if p == 0.0:
        return input if inplace else input.clone()
    eager = _state.eager(input)
    if not drawing:  # all dropped (p = 1) or empty: any key gives those bytes
        key = 0 if eager else _ops.key_tensor(0)
    elif eager and _state.plain_autograd():
        key = seed if type(seed) is int else _LaterKey(seed, generator)
    elif eager:  # drawn now: a torch.func transform sees the draw (vmap's randomness)
        key = draw_key(seed, generator, True)
    else:
        key = draw_key(seed, generator, False)
    return _apply(variant.alpha, input, key, p, mode, stream, inplace, offset,
                  n_threads, noise, activation)  # fmt: skip


def _evaluation(variant, input, p, inplace, mode, activation):
    """An evaluation call: the activation, then dropout's evaluation (the identity for
    inverted and alpha dropout, a multiply by 1 - p for classic dropout)."""
    if activation is not None:
        input = _ops.activate(input, activation, inplace)
    return input if variant.alpha else evaluation(input, p, inplace, mode)


def _apply(alpha, input, key, p, mode, stream, inplace, offset, n_threads, noise,
           activation):  # fmt: skip
    """Training-mode dropout, all arguments checked: eagerly for an int key (or a key
    drawn later); for a key tensor (a tracer sees the call), the counter stream as
    PyTorch's operations, the xoshiro stream through the registered operators. In
    place where autograd or functionalization must see the call, the result is
    computed apart and copied back, an ordinary copy to them; otherwise in place
    writes straight into `input`."""
    arguments = (p, mode, stream, offset, n_threads, noise)
    if not isinstance(key, torch.Tensor):
        if activation is not None:
            result = _eager.activated(input, key, *arguments, activation)
        elif _state.autograd_sees(input):
            result = _eager.apply(alpha, input, key, *arguments)
        elif not inplace:  # the Function's own work, without autograd
            return _eager.work(alpha, input, key, *arguments)
        else:
            key = _eager.resolved(key)
            if alpha:
                _ops.run_alpha(input, input, key, p, stream, offset, n_threads, noise)
            else:
                _ops.run_dropout(input, input, key, *arguments)
            # written behind autograd's back: as PyTorch's in-place operators do, mark
            # `input` modified, so that a backward that saved it refuses the new values
            torch.autograd.graph.increment_version(input)
            return input
        return input.copy_(result) if inplace else result
    if stream == "counter":
        result = _traced.apply(alpha, input, key, p, mode, offset, noise, activation)
        return input.copy_(result) if inplace else result
    if activation is not None:
        input, inplace = _ops.activate(input, activation), False
    ops_arguments = (p, mode, offset, n_threads, noise)
    if alpha:
        result = _ops.alpha_dropout_op(input, key, p, offset, n_threads, noise)
        return input.copy_(result) if inplace else result
    if not inplace:
        return _ops.dropout_op(input, key, *ops_arguments)
    # torch.func.functionalize cannot take a custom operator that mutates: a copy too
    # (torch.compile can, and cannot trace the test)
    if (torch.is_grad_enabled() and input.requires_grad) or (
        not _state.compiling() and _state.is_functional(input)
    ):
        return input.copy_(_ops.dropout_op(input, key, *ops_arguments))
    _ops.dropout_inplace_op(input, key, *ops_arguments)
    return input


def _common_call(input, p, training, inplace, mode, seed, stream):
    """dropout() in one Python call for its common call, else NotImplemented.

    Between a model's layers the caches hold PyTorch's code and data, and each Python
    call and tensor attribute read costs several times what it costs back to back
    (bench/NOTES.md, "The eager PyTorch path"); the checked call is about 25 of them.
    So the common call is checked and run here, as the NumPy API's
    is in C (cdropout._kernel.dropout_fast); every other call, valid or not, gets
    NotImplemented and the checked call, which checks it and gives the same bytes.
    Nothing here raises.

    The common call: a Python float 0 < p < 1, training True, inplace a bool, a known
    mode and stream, a Python int seed in [0, 2**64) or None (a key from PyTorch's
    default generator), every other argument its default; a plain non-empty contiguous
    CPU tensor of a kernel dtype, without a negative bit, outside any tracer and
    dispatch mode; autograd may see it only as its sole observer (no transform, no
    forward-mode AD) and not in place; in place, not an inference tensor outside
    inference mode."""
    if (
        type(p) is not float
        or not 0.0 < p < 1.0
        or training is not True
        or (inplace is not True and inplace is not False)
        or type(mode) is not str
        or mode not in _params.MODES
        or type(stream) is not str
        or stream not in _params.STREAMS
        or not (seed is None or (type(seed) is int and 0 <= seed < 2**64))
        or type(input) is not torch.Tensor
        or _state.compiling()  # before the rest, which dynamo cannot read
    ):
        return NotImplemented
    autograd = input.requires_grad and torch.is_grad_enabled()
    if (
        (autograd and inplace)
        or not _state.plain_autograd()
        or _state.dispatch_mode_active()
    ):
        return NotImplemented
    kind = _ops._KINDS.get(input.dtype)
    if (
        kind is None
        or not input.is_cpu
        or input.layout != torch.strided
        or not input.is_contiguous()
        or input.is_nested
        or _state.values_not_in_memory(input)
        or (inplace and input.is_inference() and not torch.is_inference_mode_enabled())
    ):
        return NotImplemented
    count = input.numel()
    if type(count) is not int or count == 0:  # a trace's count is a tensor
        return NotImplemented
    try:
        source = input.data_ptr()
    except RuntimeError:  # no memory (PyTorch's legacy vmap): the checked call knows
        return NotImplemented
    if autograd:
        key = seed if seed is not None else _LaterKey(None, None)
        arguments = (p, mode, stream, 0, _ops.TORCH_THREADS, [])
        return _eager.PLAIN_APPLY[False](input, key, *arguments)
    out = input if inplace else _ops.empty_like(input)
    # last: nothing is drawn for a declined call, nor before the output exists
    key = draw_key(None, None, True) if seed is None else seed
    threads = _ops._threads(_ops.TORCH_THREADS)
    if not _kernel.dropout_memory(
        source, out.data_ptr(), count, kind, p, key, mode, 0, threads, stream
    ):  # (p within 2**-33 of 1, or an address the kernel declines)
        _ops.run_dropout(input, out, key, p, mode, stream, 0, _ops.TORCH_THREADS, [])
    if inplace:  # as _apply: a backward that saved it refuses the new values
        torch.autograd.graph.increment_version(input)
    return out


def dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    mode: str = "inverted",
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: tuple[int | None, ...] | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """Dropout of a tensor by cdropout's kernel: torch.nn.functional.dropout's
    arguments, plus both conventions, a seed and the NumPy API's options.

    Parameters
    ----------
    input : torch.Tensor
        float16, bfloat16, float32 or float64, any shape and strides. On the CPU,
        cdropout's kernel; a meta tensor gives a result of the right shape; on
        another device, PyTorch's own dropout (its bytes, from that device's
        generator: `seed` and `offset` do not apply).
    p, training, inplace
        As for torch.nn.functional.dropout, positional as there (``dropout(x, self.p,
        self.training)``); the rest are keyword-only. ``inplace=True`` writes into
        `input` (refused, as PyTorch refuses it, for a leaf that requires grad while
        grad mode is on, a view that autograd forbids to modify in place, an
        inference tensor outside inference mode and a tensor whose elements share
        memory), where anything is written.
    mode : {"inverted", "classic"}
        inverted (PyTorch's): kept elements times 1/(1-p) in training, the identity in
        evaluation. classic: training keeps elements as they are, evaluation
        multiplies by 1-p.
    seed : int, optional
        The stream key: for the same int seed and stream the result is byte for byte
        ``cdropout.dropout(input.numpy(), p, seed=seed, stream=stream, ...)``. None
        draws 64 bits from `generator`, or from PyTorch's default CPU generator
        (torch.manual_seed), when a mask is drawn (in training, for 0 < p < 1 and a
        non-empty input, as PyTorch's dropout draws).
    generator : torch.Generator, optional
    offset, n_threads, noise_shape
        As for cdropout.dropout; n_threads None follows torch.get_num_threads(), at most
        the CPUs this process may use.
    stream : {"counter", "xoshiro"}
        The random stream (docs/stream.md). "counter", the default here, is the one a
        compiler can generate: under torch.compile and torch.export the call becomes
        PyTorch's own operations, fused into the kernels around it, with the bytes of
        the eager call. "xoshiro" (the NumPy API's default) is traced as cdropout's
        registered operators.

    Returns
    -------
    torch.Tensor
        A new tensor laid out like `input`, or `input` itself with ``inplace=True``
        (and, as in PyTorch, `input` itself in evaluation with the inverted
        convention).

    Notes
    -----
    Backward regenerates the mask from the key: nothing of the input's size is saved.
    With ``inplace=True`` on a tensor that requires grad, the result is computed into a
    new tensor and copied back, so that autograd sees an ordinary copy. Every check
    runs before anything is drawn: a failed call leaves the tensor and the generator
    as they were.

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> cdropout.torch.dropout(torch.ones(8), 0.5, seed=7)  # the counter stream
    tensor([2., 2., 2., 0., 0., 2., 0., 0.])
    >>> cdropout.torch.dropout(torch.ones(8), 0.5, seed=7, stream="xoshiro")
    tensor([2., 2., 0., 0., 2., 0., 0., 2.])
    >>> cdropout.torch.dropout(torch.ones(3), 0.5, training=False, mode="classic")
    tensor([0.5000, 0.5000, 0.5000])
    """
    if generator is None and offset == 0 and n_threads is None and noise_shape is None:
        result = _common_call(input, p, training, inplace, mode, seed, stream)
        if result is not NotImplemented:
            return result
    if has_torch_function_unary(input):  # torch.fx's Proxy, tensor subclasses
        return handle_torch_function(
            dropout, (input,), input, p, training, inplace, mode=mode, seed=seed,
            generator=generator, offset=offset, n_threads=n_threads,
            noise_shape=noise_shape, stream=stream,
        )  # fmt: skip
    return _run(DROPOUT, input, p, training, inplace, mode, seed, generator, offset,
                n_threads, noise_shape, stream)  # fmt: skip


def _channels(variant, input, p, training, inplace, mode, seed, generator, offset,
              n_threads, stream):  # fmt: skip
    """A channel (feature) dropout of torch.nn.functional's, by cdropout's kernel."""
    if has_torch_function_unary(input):
        return handle_torch_function(
            _CHANNEL_FUNCTIONS[variant.name], (input,), input, p, training, inplace,
            mode=mode, seed=seed, generator=generator, offset=offset,
            n_threads=n_threads, stream=stream,
        )  # fmt: skip
    return _run(variant, input, p, training, inplace, mode, seed, generator, offset,
                n_threads, None, stream)  # fmt: skip


def dropout1d(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    mode: str = "inverted",
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """Drop whole channels of (N, C, L) or (C, L) inputs, as
    torch.nn.functional.dropout1d (and its error for other ranks). Arguments as for
    dropout(); the mask has one decision per channel, the stream element of channel
    (n, c) being n * C + c, plus `offset`."""
    return _channels(DROPOUT1D, input, p, training, inplace, mode, seed, generator,
                     offset, n_threads, stream)  # fmt: skip


def dropout2d(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    mode: str = "inverted",
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """Drop whole channels of (N, C, H, W) inputs, as torch.nn.functional.dropout2d
    (and its warnings for other ranks; a 3-D input is read as (N, C, L), as PyTorch
    reads it). Arguments and stream as for dropout1d()."""
    return _channels(DROPOUT2D, input, p, training, inplace, mode, seed, generator,
                     offset, n_threads, stream)  # fmt: skip


def dropout3d(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    mode: str = "inverted",
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """Drop whole channels of (N, C, D, H, W) or (C, D, H, W) inputs, as
    torch.nn.functional.dropout3d (and its warnings for other ranks). Arguments and
    stream as for dropout1d()."""
    return _channels(DROPOUT3D, input, p, training, inplace, mode, seed, generator,
                     offset, n_threads, stream)  # fmt: skip


_CHANNEL_FUNCTIONS = {
    "dropout1d": dropout1d,
    "dropout2d": dropout2d,
    "dropout3d": dropout3d,
}


def alpha_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    *,
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: tuple[int | None, ...] | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """Alpha dropout of a tensor (torch.nn.functional.alpha_dropout's definition and
    defaults: ``training=False`` unless given), by cdropout's kernel. Arguments as for
    dropout(); evaluation is the identity. A dropped element becomes the constant of
    cdropout.alpha_dropout (PyTorch's, but for a dropped inf or NaN, which PyTorch
    turns into NaN). ``noise_shape=(None, None, 1, 1)`` drops whole channels, as
    feature_alpha_dropout does.

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> x = torch.zeros(4)
    >>> cdropout.torch.alpha_dropout(x, 0.5) is x  # training=False, as in PyTorch
    True
    """
    if has_torch_function_unary(input):
        return handle_torch_function(
            alpha_dropout, (input,), input, p, training, inplace, seed=seed,
            generator=generator, offset=offset, n_threads=n_threads,
            noise_shape=noise_shape, stream=stream,
        )  # fmt: skip
    return _run(ALPHA, input, p, training, inplace, "inverted", seed, generator,
                offset, n_threads, noise_shape, stream)  # fmt: skip


def feature_alpha_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    *,
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """Alpha dropout of whole channels (torch.nn.functional.feature_alpha_dropout's
    definition and defaults), by cdropout's kernel: one decision per (N, C) of an input
    of at least 2 dimensions. Arguments as for alpha_dropout()."""
    if has_torch_function_unary(input):
        return handle_torch_function(
            feature_alpha_dropout, (input,), input, p, training, inplace, seed=seed,
            generator=generator, offset=offset, n_threads=n_threads, stream=stream,
        )  # fmt: skip
    return _run(FEATURE_ALPHA, input, p, training, inplace, "inverted", seed,
                generator, offset, n_threads, None, stream)  # fmt: skip


def relu_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    mode: str = "inverted",
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: tuple[int | None, ...] | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """``dropout(torch.relu(input), ...)`` as one operation: the same function to the
    bit, forward and backward, in one pass over memory, with a backward computed from
    the output alone (no mask and no input saved: the output, which the next layer
    saves anyway). For models that call ``F.relu`` then ``F.dropout`` in forward;
    swap_dropout fuses nn.ReLU followed by a dropout module by itself.

    Arguments as for dropout(). Under torch.compile and torch.export with the counter
    stream (the default) the operation is PyTorch's own operations, which inductor
    fuses into one kernel with the layers around it.

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> x = torch.tensor([-1.0, 2.0, -3.0, 4.0, 5.0, -6.0])
    >>> y = cdropout.torch.relu_dropout(x, 0.5, seed=3)
    >>> torch.equal(y, cdropout.torch.dropout(torch.relu(x), 0.5, seed=3))
    True
    """
    if has_torch_function_unary(input):
        return handle_torch_function(
            relu_dropout, (input,), input, p, training, inplace, mode=mode, seed=seed,
            generator=generator, offset=offset, n_threads=n_threads,
            noise_shape=noise_shape, stream=stream,
        )  # fmt: skip
    return _run(DROPOUT, input, p, training, inplace, mode, seed, generator, offset,
                n_threads, noise_shape, stream, ("relu", 0.0))  # fmt: skip


def leaky_relu_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    negative_slope: float = 0.01,
    training: bool = True,
    inplace: bool = False,
    *,
    mode: str = "inverted",
    seed: Any = None,
    generator: torch.Generator | None = None,
    offset: int = 0,
    n_threads: int | None = None,
    noise_shape: tuple[int | None, ...] | None = None,
    stream: str = "counter",
) -> torch.Tensor:
    """``dropout(F.leaky_relu(input, negative_slope), ...)`` as one operation, as
    relu_dropout() is for relu: the same function to the bit, one pass, a backward
    from the output and the mask regenerated from the key. A negative slope (which
    makes LeakyReLU's result lose the input's sign) runs the two operations apart."""
    slope = _slope(negative_slope)
    if has_torch_function_unary(input):
        return handle_torch_function(
            leaky_relu_dropout, (input,), input, p, negative_slope, training, inplace,
            mode=mode, seed=seed, generator=generator, offset=offset,
            n_threads=n_threads, noise_shape=noise_shape, stream=stream,
        )  # fmt: skip
    if slope < 0:
        activated = torch.nn.functional.leaky_relu(input, slope, inplace)
        return dropout(activated, p, training, inplace, mode=mode, seed=seed,
                       generator=generator, offset=offset, n_threads=n_threads,
                       noise_shape=noise_shape, stream=stream)  # fmt: skip
    return _run(DROPOUT, input, p, training, inplace, mode, seed, generator, offset,
                n_threads, noise_shape, stream, ("leaky_relu", slope))  # fmt: skip


def _slope(value):
    """LeakyReLU's negative_slope: a real number (a float, as PyTorch takes it)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"negative_slope must be a real number, got {type(value).__name__}"
        )
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"negative_slope must be finite, got {value!r}")
    return float(value)
