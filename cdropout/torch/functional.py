"""cdropout.torch.dropout and alpha_dropout: the functional API for CPU tensors.

Arguments are checked here, in Python, before an operator runs (so that a failed call
leaves the tensor and the generator as they were); the operators in _ops do the work.
dropout()'s common eager call is checked and run in one Python call (common_call).
"""

import threading

import torch
from torch.autograd import forward_ad

from cdropout import _kernel, _params
from cdropout._threads import resolve_threads
from cdropout.torch import _eager, _ops

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_input(input, name="input"):
    """A CPU tensor of float16, bfloat16, float32 or float64."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    # is_cpu, not device.type: building the device object costs 3-4 us when the caches
    # are cold, as they are between a model's layers (2-core Intel Xeon, torch 2.13)
    if not input.is_cpu:
        raise ValueError(
            f"{name} must be on the CPU, got a tensor on {input.device} (cdropout runs "
            f"on the CPU; move it with {name}.cpu(), or use torch.nn.Dropout there)"
        )
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
    torch.nn.functional.dropout and torch.nn.Dropout take it."""
    if type(p) is not float and isinstance(p, torch.Tensor) and p.dim() == 0:
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
        return list(_params.noise_shape(noise_shape, shape))
    asked = list(_params.noise_spec(noise_shape)) + [None] * len(shape)
    stand_ins = [
        (1 if asked[axis] is None else asked[axis]) if symbolic[axis] else size
        for axis, size in enumerate(shape)
    ]
    resolved = _params.noise_shape(noise_shape, stand_ins)
    return [
        -1 if symbolic[axis] and asked[axis] is None else dim
        for axis, dim in enumerate(resolved)
    ]


_THREAD = threading.local()  # the buffer of _drawn_words, one per thread


def _drawn_words(generator):
    """Two 32-bit words from `generator`, as torch.randint(0, 2**32, (2,)) draws them,
    for an eager call. Written into a buffer of this thread's: one operator call
    instead of randint's two and an allocation, 8-11 us instead of 15-21 when the
    caches are cold (2-core Intel Xeon, torch 2.13). The buffer is made outside
    inference mode, so that it can be written both in and out of it. Under a
    torch.func transform, randint itself (vmap batches the draw)."""
    if torch._C._are_functorch_transforms_active():
        drawn = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=generator)
        try:
            return drawn.tolist()
        except RuntimeError:
            if torch._C._functorch.is_batchedtensor(drawn):
                raise NotImplementedError(
                    'cdropout.torch under torch.func.vmap(randomness="different") with '
                    "seed=None: one key per slice is not supported; pass a seed, or "
                    'use randomness="same" (one key, the same mask for every slice)'
                ) from None
            raise
    words = getattr(_THREAD, "words", None)
    if words is None:
        with torch.inference_mode(False):
            words = _THREAD.words = torch.empty(2, dtype=torch.int64)
    return words.random_(0, 2**32, generator=generator).tolist()


def draw_key(seed, generator, eager):
    """The stream key: an int seed (or any seed of the NumPy API) itself, else 64 bits
    drawn from `generator` (PyTorch's default CPU generator when None), so that
    torch.manual_seed makes runs reproducible. An int for an eager call, a 0-d int64
    tensor of the same bits for the operators (a tracer cannot read a tensor)."""
    if seed is not None:
        if generator is not None:
            raise ValueError("seed and generator must not both be given: choose one")
        key = _params.seed_value(seed)
        return key if eager else _ops.key_tensor(key)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}"
        )
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got {generator.device}")
    # two 32-bit draws in one operator call (a call costs microseconds), composed
    # without int64 overflow: (high - 2**31) * 2**32 + low spans int64
    if not eager:  # a tensor of the bits, which a tracer records
        drawn = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=generator)
        return (drawn[0] - 2**31) * 2**32 + drawn[1]
    high, low = _drawn_words(generator)
    return ((high - 2**31) * 2**32 + low) & (2**64 - 1)


def check_inplace(input, inplace):
    """PyTorch's rules for writing in place: not a leaf that requires grad while grad
    mode is on (under torch.no_grad() it may be, as PyTorch's in-place operators
    allow), not an inference tensor outside inference mode, and not a tensor whose
    elements share memory (expanded, as_strided)."""
    if not inplace:
        return
    if input.requires_grad and input.is_leaf and torch.is_grad_enabled():
        raise RuntimeError(
            "input is a leaf tensor that requires grad: it cannot be dropped out in "
            "place (inplace=True); use inplace=False"
        )
    if torch.compiler.is_compiling():  # a traced tensor has neither (nor memory)
        return
    if input.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(
            "input is an inference tensor (made under torch.inference_mode()): it "
            "cannot be dropped out in place outside inference mode; clone() it, or "
            "use inplace=False"
        )
    # (a contiguous tensor cannot overlap itself: the common call skips the test)
    if not input.is_contiguous() and _params.may_self_overlap(_ops.as_numpy(input)):
        raise RuntimeError(
            f"input has elements that share memory (shape {tuple(input.shape)}, "
            f"strides {input.stride()}, as from expand or as_strided): it cannot be "
            "dropped out in place (inplace=True); clone() it, or use inplace=False"
        )


def is_traced(count):
    """Whether torch.jit.trace (deprecated by PyTorch) records the call, told by the
    input's element count, which the call reads anyway: a traced tensor under a trace,
    as all its sizes are, else an int (or a SymInt under torch.compile).
    torch.jit.is_tracing() would cost two more Python calls on every call, and
    torch._C._is_tracing() breaks torch.compile's graph."""
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
    """Evaluation-mode dropout: the identity for inverted dropout, a multiply by 1 - p
    for classic dropout."""
    if mode == "inverted" or p == 0.0:
        return input
    scaled = input * (1.0 - p) if p < 1.0 else torch.zeros_like(input)
    return input.copy_(scaled) if inplace else scaled


def autograd_sees(input):
    """Whether an eager call must go through its torch.autograd.Function: for backward
    (grad enabled and `input` requires grad), forward-mode AD (a dual level is open) or
    a torch.func transform. Otherwise the Function's ~5 us a call buys nothing: no-grad
    calls (inference, Monte Carlo dropout) run bare."""
    return (
        (torch.is_grad_enabled() and input.requires_grad)
        or forward_ad._current_level >= 0
        or torch._C._are_functorch_transforms_active()
    )


def apply_dropout(input, key, p, mode, inplace, offset, n_threads, noise):
    """Training-mode dropout, all arguments checked: eagerly for an int key (see
    cdropout.torch._eager), through the operators for a key tensor. In place where
    autograd or functionalization must see the call, the result is computed apart and
    copied back, an ordinary copy to them; otherwise in place writes straight into
    `input`."""
    if isinstance(key, int):
        if autograd_sees(input):
            result = _eager.Dropout.apply(input, key, p, mode, offset, n_threads, noise)
            return input.copy_(result) if inplace else result
        if not inplace:  # the Function's own work, without autograd
            return _eager.Dropout.forward(input, key, p, mode, offset, n_threads, noise)
        _ops.run_dropout(input, input, key, p, mode, offset, n_threads, noise)
        # written behind autograd's back: as PyTorch's in-place operators do, mark
        # `input` modified, so that a backward that saved it refuses the new values
        torch.autograd.graph.increment_version(input)
        return input
    if not inplace:
        return _ops.dropout_op(input, key, p, mode, offset, n_threads, noise)
    # torch.func.functionalize cannot take a custom operator that mutates: a copy too
    # (torch.compile can, and cannot trace the test)
    if (torch.is_grad_enabled() and input.requires_grad) or (
        not torch.compiler.is_compiling()
        and torch._C._functorch.is_functionaltensor(input)
    ):
        return input.copy_(
            _ops.dropout_op(input, key, p, mode, offset, n_threads, noise)
        )
    _ops.dropout_inplace_op(input, key, p, mode, offset, n_threads, noise)
    return input


def apply_alpha(input, key, p, inplace, offset, n_threads, noise):
    """Training-mode alpha dropout, all arguments checked (an int key: eagerly)."""
    if not isinstance(key, int):
        result = _ops.alpha_dropout_op(input, key, p, offset, n_threads, noise)
    elif autograd_sees(input):
        result = _eager.AlphaDropout.apply(input, key, p, offset, n_threads, noise)
    else:  # the Function's own work, without autograd
        result = _eager.AlphaDropout.forward(input, key, p, offset, n_threads, noise)
    return input.copy_(result) if inplace else result


def common_call(input, p, training, inplace, mode, seed, generator, offset, n_threads,
                noise_shape):  # fmt: skip
    """dropout() in one Python call for its common call, else NotImplemented.

    Between a model's layers, and after any PyTorch call of some size, the caches
    hold PyTorch's code and data, and each Python call and tensor attribute read
    costs 0.5-1 us instead of 0.1; dropout()'s full path is about 25 Python calls.
    Measured on a 2-core Intel Xeon (torch 2.13), in place at 1e5 float32 elements
    right after PyTorch's calls: 35 us through the full path, 28 us here, the
    kernel alone 16-18 us. So the common call is checked and run here, as the NumPy
    API's is in C (cdropout._kernel.dropout_fast); every other call, valid or not,
    gets NotImplemented and the full path, which checks it and gives the same
    bytes. Nothing here raises.

    The common call: a Python float 0 < p < 1, training True, inplace a bool, a known
    mode, a Python int seed in [0, 2**64) or None (a key from PyTorch's default
    generator), every other argument its default; a plain non-empty contiguous CPU
    tensor of a kernel dtype, without a negative bit, that autograd need not see
    (autograd_sees), outside any tracer and dispatch mode; in place, not an inference
    tensor outside inference mode."""
    if (
        type(p) is not float
        or not 0.0 < p < 1.0
        or training is not True
        or (inplace is not True and inplace is not False)
        or type(mode) is not str
        or mode not in _params.MODES
        or type(offset) is not int
        or offset != 0
        or n_threads is not None
        or noise_shape is not None
        or generator is not None
        or not (seed is None or (type(seed) is int and 0 <= seed < 2**64))
        or type(input) is not torch.Tensor
        or (input.requires_grad and torch.is_grad_enabled())  # (in training, early)
        or torch.compiler.is_compiling()  # before the rest, which dynamo cannot read
        or forward_ad._current_level >= 0
        or torch._C._are_functorch_transforms_active()
        or torch._C._len_torch_dispatch_stack()
    ):
        return NotImplemented
    kind = _ops._KINDS.get(input.dtype)
    if (
        kind is None
        or not input.is_cpu
        or input.layout != torch.strided
        or not input.is_contiguous()
        or input.is_neg()
        or (inplace and input.is_inference() and not torch.is_inference_mode_enabled())
    ):
        return NotImplemented
    count = input.numel()
    if type(count) is not int or count == 0:  # a trace's count is a tensor
        return NotImplemented
    try:
        source = input.data_ptr()
    except RuntimeError:  # no memory (PyTorch's legacy vmap): the full path knows
        return NotImplemented
    # last: nothing is drawn for a declined call
    key = draw_key(seed, None, True) if seed is None else seed
    out = input if inplace else _ops.empty_like(input)
    threads = _ops._threads(_ops.TORCH_THREADS)
    if not _kernel.dropout_memory(
        source, out.data_ptr(), count, kind, p, key, mode, 0, threads
    ):  # (p within 2**-33 of 1, or an address the kernel declines)
        _ops.run_dropout(input, out, key, p, mode, 0, _ops.TORCH_THREADS, [])
    if inplace:  # as apply_dropout: a backward that saved it refuses the new values
        torch.autograd.graph.increment_version(input)
    return out


def dropout(
    input,
    p=0.5,
    training=True,
    inplace=False,
    *,
    mode="inverted",
    seed=None,
    generator=None,
    offset=0,
    n_threads=None,
    noise_shape=None,
):
    """Dropout of a CPU tensor by cdropout's kernel: torch.nn.functional.dropout's
    arguments, plus both conventions, a seed and the NumPy API's options.

    Parameters
    ----------
    input : torch.Tensor
        On the CPU, float16, bfloat16, float32 or float64, any shape and strides.
    p, training, inplace
        As for torch.nn.functional.dropout, positional as there (``dropout(x, self.p,
        self.training)``); the rest are keyword-only. ``inplace=True`` writes into
        `input` (refused, as PyTorch refuses it, for a leaf that requires grad while
        grad mode is on, an inference tensor outside inference mode and a tensor whose
        elements share memory).
    mode : {"inverted", "classic"}
        inverted (PyTorch's): kept elements times 1/(1-p) in training, the identity in
        evaluation. classic: training keeps elements as they are, evaluation
        multiplies by 1-p.
    seed : int, optional
        The stream key: for the same int seed the result is byte for byte
        ``cdropout.dropout(input.numpy(), p, seed=seed, ...)``. None draws 64 bits from
        `generator`, or from PyTorch's default CPU generator (torch.manual_seed).
    generator : torch.Generator, optional
    offset, n_threads, noise_shape
        As for cdropout.dropout; n_threads None follows torch.get_num_threads(), at most
        the CPUs this process may use.

    Returns
    -------
    torch.Tensor
        A new contiguous tensor, or `input` itself with ``inplace=True`` (and, as in
        PyTorch, `input` itself in evaluation with the inverted convention).

    Notes
    -----
    Backward regenerates the mask from the key: nothing of the input's size is saved.
    With ``inplace=True`` on a tensor that requires grad, the result is computed into a
    new tensor and copied back, so that autograd sees an ordinary copy.
    """
    result = common_call(input, p, training, inplace, mode, seed, generator, offset,
                         n_threads, noise_shape)  # fmt: skip
    if result is not NotImplemented:
        return result
    check_input(input)
    p = probability(p)
    training = _params.flag(training, "training")
    inplace = _params.flag(inplace, "inplace")
    mode = _params.mode(mode)
    count = input.numel()
    if is_traced(count):  # the sizes are tensors: not checked
        if training:
            refuse_traced_training()
        return evaluation(input, p, inplace, mode)
    offset = _params.offset(offset, known_size(count))
    noise = noise_list(noise_shape, input)
    n_threads = threads(n_threads)
    check_inplace(input, inplace)
    if not training:
        _params.check_seed(seed)
        return evaluation(input, p, inplace, mode)
    # last: nothing is drawn for a refused call
    key = draw_key(seed, generator, _eager.is_eager(input))
    return apply_dropout(input, key, p, mode, inplace, offset, n_threads, noise)


def alpha_dropout(
    input,
    p=0.5,
    training=True,
    inplace=False,
    *,
    seed=None,
    generator=None,
    offset=0,
    n_threads=None,
    noise_shape=None,
):
    """Alpha dropout of a CPU tensor (torch.nn.functional.alpha_dropout's definition),
    by cdropout's kernel. Arguments as for dropout(); evaluation is the identity.
    `training` defaults to True, as for dropout() and cdropout.alpha_dropout, where
    torch.nn.functional.alpha_dropout's defaults to False.
    ``noise_shape=(None, None, 1, 1)`` gives PyTorch's feature_alpha_dropout."""
    check_input(input)
    p = probability(p)
    training = _params.flag(training, "training")
    inplace = _params.flag(inplace, "inplace")
    count = input.numel()
    if is_traced(count):  # the sizes are tensors: not checked
        if training:
            refuse_traced_training()
        return input
    offset = _params.offset(offset, known_size(count))
    noise = noise_list(noise_shape, input)
    n_threads = threads(n_threads)
    check_inplace(input, inplace)
    if not training or p == 0.0:
        _params.check_seed(seed)
        return input
    key = draw_key(seed, generator, _eager.is_eager(input))
    return apply_alpha(input, key, p, inplace, offset, n_threads, noise)
