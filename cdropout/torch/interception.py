"""Every dropout of a model, reached without editing it: a TorchFunctionMode inside
which PyTorch's functional dropouts and the dropout of its attention run through
cdropout.

swap_dropout replaces dropout modules; real model code also calls
torch.nn.functional.dropout on attention probabilities, passes dropout_p to
F.scaled_dot_product_attention, or calls torch.dropout. PyTorch lets a
TorchFunctionMode see each of those calls (the functions check for one before they
run), so `intercept` answers them with cdropout's functions and the call's own
arguments. A call it cannot serve (a tensor that is not float16, bfloat16, float32 or
float64, strided and not nested) goes to PyTorch unchanged; a tensor on another device
gets what cdropout.torch gives it there (PyTorch's own dropout, in the call's
convention).
"""

import threading
import types

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from cdropout import _kernel, _params
from cdropout.torch import _state, attention, functional


class _Sequence:
    """The keys of the calls inside one `with intercept(seed=s)` block: call number k
    (counted from the block's start) uses call_seed(s, k), as a seeded module does."""

    def __init__(self, seed):
        self.seed, self.count = seed, 0
        self.lock = threading.Lock()

    def check(self):
        if _state.compiling():
            raise RuntimeError(
                "cdropout.torch.intercept(seed=...) cannot number the calls of a "
                "compiled program (each call of it would reuse its keys): under "
                "torch.compile use seed=None, whose keys come from PyTorch's generator"
            )

    def draw(self, eager):
        if _state.inside_backward():
            raise RuntimeError(
                "cdropout.torch.intercept(seed=...) saw a dropout during a backward "
                "pass, as torch.utils.checkpoint's recomputation calls it: it would "
                "draw the next call's mask, not the forward's. Use seed=None inside "
                "checkpointed code (keys then come from PyTorch's generator, which "
                "checkpoint restores)"
            )
        with self.lock:
            number = self.count
            self.count += 1
        return _kernel.call_seed(self.seed, number)


def _servable(tensor):
    """A tensor cdropout's functions take: float16, bfloat16, float32 or float64,
    strided, not nested (PyTorch drops out nested tensors; cdropout's stream has no
    flat index for them)."""
    return (
        isinstance(tensor, torch.Tensor)
        and tensor.dtype in functional.DTYPES
        and tensor.layout == torch.strided
        and not tensor.is_nested
    )


class intercept(TorchFunctionMode):  # noqa: N801 (a context manager, named as one)
    """Inside ``with cdropout.torch.intercept():``, every functional dropout runs
    through cdropout with the call's own arguments: torch.nn.functional's dropout,
    dropout1d/2d/3d, alpha_dropout and feature_alpha_dropout (so torch.nn's dropout
    modules too), torch.dropout, alpha_dropout, feature_dropout, feature_alpha_dropout
    and their in-place forms, and attention's dropout: F.scaled_dot_product_attention
    with dropout_p > 0 runs as cdropout.torch.scaled_dot_product_attention (the mask
    never stored), and nn.MultiheadAttention's F.multi_head_attention_forward as
    PyTorch's code with its attention calls bound to cdropout's.

    Parameters
    ----------
    mode : {"inverted", "classic"}
        The convention of the dropout functions (attention's dropout is inverted, as
        PyTorch's: under "classic" attention runs as PyTorch's).
    stream : {"counter", "xoshiro"}
        The stream of the dropout functions (attention's is the counter stream).
    seed : int, optional
        The calls inside the mode draw the keys call_seed(seed, k), k = 0, 1, ... in
        call order (counted per intercept object: each ``with intercept(seed=s):``
        block starts at 0), and PyTorch's generator is not touched. Eager only (under
        torch.compile, and in checkpoint's recomputation, it is refused by name).
    generator : torch.Generator, optional
        Without a seed, keys are drawn from it (PyTorch's default generator when
        None), as cdropout.torch's functions draw them: torch.manual_seed makes runs
        reproducible, and torch.utils.checkpoint's recomputation draws the same masks.

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5))
    >>> x = torch.ones(2, 8)
    >>> with cdropout.torch.intercept(seed=7):
    ...     a = model(x)
    >>> with cdropout.torch.intercept(seed=7):  # each block: the same sequence
    ...     b = model(x)
    >>> torch.equal(a, b)
    True
    """

    def __init__(self, *, mode="inverted", stream="counter", seed=None, generator=None,
                 _checkpointed=False):  # fmt: skip
        super().__init__()
        self.checkpointed = _checkpointed  # one of checkpoint_context()'s pair
        self.mode = _params.mode(mode)
        self.stream = _params.stream(stream)
        functional.check_seed(seed, generator)
        if seed is not None and type(seed) is not int:
            raise TypeError(
                f"seed must be an int in [0, 2**64) or None, got {type(seed).__name__}"
            )
        self.seed, self.generator = seed, generator
        # numbered per object, which `with intercept(seed=...)` makes anew for each
        # block (no __enter__ of its own: torch.compile traces the mode's entry)
        self.keys = None if seed is None else _Sequence(seed)
        self.multi_head = _rebound_multi_head(self)

    def options(self, has_mode=True):
        """The keyword options of a cdropout call inside the mode."""
        options = {"seed": self.keys, "generator": self.generator}
        options["stream"] = self.stream
        if has_mode:
            options["mode"] = self.mode
        return options

    def attention(self, *args, **kwargs):
        """F.scaled_dot_product_attention's call, as cdropout's."""
        return attention.scaled_dot_product_attention(
            *args, **kwargs, seed=self.keys, generator=self.generator
        )

    def dropout(self, *args, **kwargs):
        """F.dropout's call, as cdropout's."""
        return functional.dropout(*args, **kwargs, **self.options())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _HANDLERS.get(func)
        if handler is None:
            return func(*args, **kwargs)
        self.check_checkpoint()
        return handler(self, func, args, kwargs)

    def check_checkpoint(self):
        """Refuses a dropout whose checkpoint would recompute it without the mode."""
        if not self.checkpointed and _state.checkpoint_forward():
            raise RuntimeError(
                "cdropout.torch.intercept around torch.utils.checkpoint: the "
                "checkpoint's recomputation runs without the mode, and would draw "
                "PyTorch's masks, not these (wrong gradients). Give the checkpoint "
                "the mode: checkpoint(f, x, use_reentrant=False, "
                "context_fn=cdropout.torch.checkpoint_context())"
            )


def checkpoint_context(*, mode="inverted", stream="counter", generator=None):
    """The context_fn of torch.utils.checkpoint (non-reentrant) for code that runs
    inside cdropout.torch.intercept: ``checkpoint(f, x, use_reentrant=False,
    context_fn=cdropout.torch.checkpoint_context())``. Returns a function that gives
    the checkpoint an intercept for its forward and one for its recomputation, so that
    both draw cdropout's masks; keys come from `generator` (PyTorch's default when
    None), whose state checkpoint restores, so the recomputation draws the forward's
    masks. (An int seed cannot be: the recomputation would number its calls anew.)"""

    def contexts():
        options = {"mode": mode, "stream": stream, "generator": generator}
        return (intercept(**options, _checkpointed=True),
                intercept(**options, _checkpointed=True))  # fmt: skip

    return contexts


def _dropout_handler(target, has_mode=True, inplace=None, variant=None):
    """A handler of a dropout function: its call, with its own arguments (PyTorch's
    `train` named `training`), as `target` (a cdropout.torch function), or the
    feature variant `variant`; in place where the PyTorch function is."""

    def handle(mode, func, args, kwargs):
        input = args[0] if args else kwargs.get("input")
        if not _servable(input):
            return func(*args, **kwargs)
        if "train" in kwargs:
            kwargs["training"] = kwargs.pop("train")
        if inplace is not None:
            kwargs["inplace"] = inplace
        if variant is not None:
            return _feature_dropout(variant, mode, *args, **kwargs)
        return target(*args, **kwargs, **mode.options(has_mode))

    return handle


def _feature_dropout(variant, mode, input, p, training, inplace=False):
    """torch.feature_dropout: one decision per (N, C) of (N, C, ...)."""
    return functional._run(variant, input, p, training, inplace, mode.mode, mode.keys,
                           mode.generator, 0, None, None, mode.stream)  # fmt: skip


def _attention_handler(mode, func, args, kwargs):
    if mode.mode != "inverted":
        return func(*args, **kwargs)
    return mode.attention(*args, **kwargs)


def _multi_head_handler(mode, func, args, kwargs):
    if mode.mode != "inverted":
        return func(*args, **kwargs)
    return mode.multi_head(*args, **kwargs)


def _rebound_multi_head(mode):
    """F.multi_head_attention_forward's code, its attention calls bound to the mode's
    (another globals dict for the same code object: nothing of PyTorch's changes)."""
    function = F.multi_head_attention_forward
    namespace = dict(function.__globals__)

    # plain functions, not the mode's bound methods: PyTorch 2.13's torch.compile
    # could not build its guards on a bound method in a function's globals
    def attention_call(*args, **kwargs):
        return mode.attention(*args, **kwargs)

    def dropout_call(*args, **kwargs):
        return mode.dropout(*args, **kwargs)

    namespace["scaled_dot_product_attention"] = attention_call
    namespace["dropout"] = dropout_call
    # no module name: torch.compile (2.13) finds a function's globals by their
    # __name__, and would read torch.nn.functional's own names
    del namespace["__name__"]
    rebound = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__,
        function.__closure__,
    )
    rebound.__kwdefaults__ = function.__kwdefaults__
    return rebound


_FEATURE = functional._Variant(
    "feature_dropout", False, functional._feature_alpha_noise
)
_FEATURE_ALPHA = functional.FEATURE_ALPHA

_HANDLERS = {
    F.dropout: _dropout_handler(functional.dropout),
    F.dropout1d: _dropout_handler(functional.dropout1d),
    F.dropout2d: _dropout_handler(functional.dropout2d),
    F.dropout3d: _dropout_handler(functional.dropout3d),
    F.alpha_dropout: _dropout_handler(functional.alpha_dropout, has_mode=False),
    F.feature_alpha_dropout: _dropout_handler(functional.feature_alpha_dropout,
                                              has_mode=False),  # fmt: skip
    torch.dropout: _dropout_handler(functional.dropout),
    torch.dropout_: _dropout_handler(functional.dropout, inplace=True),
    torch.alpha_dropout: _dropout_handler(functional.alpha_dropout, has_mode=False),
    torch.alpha_dropout_: _dropout_handler(functional.alpha_dropout, has_mode=False,
                                           inplace=True),  # fmt: skip
    torch.feature_dropout: _dropout_handler(None, variant=_FEATURE),
    torch.feature_dropout_: _dropout_handler(None, variant=_FEATURE, inplace=True),
    torch.feature_alpha_dropout: _dropout_handler(None, variant=_FEATURE_ALPHA),
    torch.feature_alpha_dropout_: _dropout_handler(None, variant=_FEATURE_ALPHA,
                                                   inplace=True),  # fmt: skip
    F.scaled_dot_product_attention: _attention_handler,
    F.multi_head_attention_forward: _multi_head_handler,
}
