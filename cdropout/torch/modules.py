"""Drop-ins for torch.nn's dropout modules, by cdropout's kernel, with both conventions
and reproducible per-call streams: each is a subclass of the torch.nn module it
replaces (code that finds dropouts with isinstance keeps finding them), and its forward
is one call of the functional API, as torch.nn's modules make one."""

import threading
from typing import Any

import torch

from cdropout import _kernel, _params
from cdropout.torch import _state, _traced, functional, reaching

# Taken while an eager call of a seeded module reads and advances its call number, as
# the NumPy layer does: modules called from several threads at once drew the same
# number, so the same mask, for some calls. One lock for all modules: a lock in a
# module would have to be kept out of its pickles and deep copies.
_CALL_NUMBERS = threading.Lock()


class _CallKeys:
    """The key source of a module with an int seed (functional.KeySource): training
    call number k draws the stream of ``call_seed(seed, k)``, k being the module's
    buffer ``calls``, advanced by each call that draws a mask."""

    __slots__ = ("module",)

    def __init__(self, module):
        self.module = module

    def check(self):
        calls = self.module.calls
        if not (
            isinstance(calls, torch.Tensor)
            and calls.dtype == torch.int64
            and calls.dim() == 0
        ):
            raise TypeError(
                f"calls must be a 0-d int64 tensor, got {calls!r}: the module's "
                "call counter"
            )
        if calls.is_meta:
            raise RuntimeError(
                "calls is on the meta device, where it has no value: materialise the "
                "module (to_empty(), then load its state_dict) before a training call"
            )
        if calls.is_cpu and _state.eager(calls) and int(calls) < 0:
            raise ValueError(
                f"calls must be a non-negative call number, got {int(calls)}"
            )

    def draw(self, eager):
        module = self.module
        if eager:
            if _state.inside_backward():
                raise RuntimeError(
                    f"{module._get_name()} with an int seed was called during a "
                    "backward pass, as torch.utils.checkpoint's recomputation calls "
                    "it: it would draw the next call's mask, not the forward's, and "
                    "the gradients would be wrong. Use seed=None inside checkpointed "
                    "code (keys then come from PyTorch's generator, which checkpoint "
                    "restores)"
                )
            with _CALL_NUMBERS:  # read and advanced as one: threads never share one
                number = int(module.calls)
                module.calls.add_(1)
            return _kernel.call_seed(module.seed, number)
        seed = module.seed - 2**64 if module.seed >= 2**63 else module.seed
        key = _traced.call_key(module.calls, seed)
        # (an int64 buffer records nothing for autograd: no torch.no_grad(), whose
        # region torch.export.load refuses in a training-mode program)
        if _state.exporting():  # recorded as a buffer mutation of the program
            module.calls.add_(1)
        else:
            # A new tensor, not add_: torch.compile's backward may recompute the key
            # from the counter it was given rather than save it, and add_ advanced
            # that very tensor after the forward, so the backward drew call n + 1's
            # mask (a wrong gradient). torch.export drops a reassignment.
            module.calls = module.calls + 1
        return key


class _Module:
    """What cdropout's modules add to torch.nn's: the convention, a seed and its call
    counter, and one call of `function` (a functional of cdropout.torch) in forward.
    First in each module's bases, before the torch.nn class it stands in for."""

    function = "dropout"  # the name of the functional a forward calls
    has_mode = True  # the alpha variants have one convention
    # the stream of a module pickled before cdropout 0.3, which had this one only
    stream = "xoshiro"
    has_noise = True  # the channel variants take their noise from the input's rank
    # set by the torch.nn module the class stands in for
    p: float
    inplace: bool
    training: bool

    def _setup(self, p, inplace, mode, seed, noise_shape, stream):
        p = functional.probability(p)
        inplace = _params.flag(inplace, "inplace")
        mode = _params.mode(mode)
        noise_shape = _params.noise_spec(noise_shape)
        stream = _params.stream(stream)
        if seed is not None:
            _params.check_seed(seed)
        super().__init__(p, inplace)  # torch.nn's own initialisation
        self.mode = mode
        self.noise_shape = noise_shape
        self.stream = stream
        # the number of the next training call's stream (used with an int seed): state
        # of the module, not data a device owns, so made on the CPU whatever device
        # context builds the model (meta for deferred initialisation, cuda), and kept
        # by _apply
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64, device="cpu"))
        self.seed = seed

    def _apply(self, fn, recurse=True):
        # .to(), .cuda(), .half(), to_empty() and share_memory() reach here: to_empty
        # would leave the counter uninitialised memory (another stream, silently), and
        # a move would put it where the kernel never runs; the counter stays as it is
        calls = self._buffers["calls"]
        result = super()._apply(fn, recurse)
        self._buffers["calls"] = calls
        return result

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):  # fmt: skip
        # a checkpoint of torch.nn's model (or of an unseeded module) has no counter:
        # it loads, strict too, and the counter stays where it is
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys,
            unexpected_keys, error_msgs,
        )  # fmt: skip
        if prefix + "calls" not in state_dict and prefix + "calls" in missing_keys:
            missing_keys.remove(prefix + "calls")

    @property
    def seed(self):
        """The int key of the module's streams, or None: keys drawn from PyTorch's
        generator."""
        return self._seed

    @seed.setter
    def seed(self, value):
        self._seed = None if value is None else _params.seed_value(value)
        # `calls` is state only with a seed. Without one the state_dict holds what
        # torch.nn's module holds, nothing, so that a checkpoint of a model loads
        # before and after swap_dropout, and into torch.nn's model
        _state.make_non_persistent(self, "calls", self._seed is None)

    def extra_repr(self):
        extra = f"p={self.p}, inplace={self.inplace}"
        if self.has_mode and self.mode != "inverted":
            extra += f", mode={self.mode!r}"
        if self.seed is not None:
            extra += f", seed={self.seed}"
        if self.has_noise and self.noise_shape is not None:
            extra += f", noise_shape={self.noise_shape}"
        if self.stream != "counter":
            extra += f", stream={self.stream!r}"
        return extra

    def key_source(self):
        """What a call passes as `seed`: None (PyTorch's generator), or the source of
        the module's per-call keys."""
        return None if self.seed is None else _CallKeys(self)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if _state.fx_proxy(input):  # recorded as torch.fx records torch.nn's modules
            return _state.record_module_call(self, input)
        options: dict[str, Any] = {"seed": self.key_source(), "stream": self.stream}
        if self.has_mode:
            options["mode"] = self.mode
        if self.has_noise:
            options["noise_shape"] = self.noise_shape
        call = getattr(functional, self.function)
        return call(input, self.p, self.training, self.inplace, **options)

    def __prepare_scriptable__(self):
        raise RuntimeError(
            f"cdropout.torch.{type(self).__name__} cannot be compiled by "
            "torch.jit.script (TorchScript, deprecated by PyTorch): its functional "
            "API takes keyword-only arguments and seeds. Use torch.compile or "
            "torch.export, which record cdropout's operators, or torch.jit.trace on "
            "a model in eval() mode"
        )


class Dropout(_Module, torch.nn.Dropout):
    """torch.nn.Dropout by cdropout's kernel, with the classic convention too.

    Parameters
    ----------
    p : float
        Probability of dropping an element, 0 <= p <= 1.
    inplace : bool
        Write the result into the input.
    mode : {"inverted", "classic"}
        inverted (PyTorch's): kept elements times 1/(1-p) in training, the identity in
        evaluation. classic: training keeps elements as they are, evaluation
        multiplies by 1-p.
    seed : int, optional
        None: each training call draws its key from PyTorch's default CPU generator,
        as torch.nn.Dropout does (torch.manual_seed makes runs reproducible). An int:
        training call number k uses the stream of ``call_seed(seed, k)``, as
        cdropout.Dropout does; the call number is the buffer ``calls``, saved in the
        state_dict, so that a checkpoint resumed draws the masks the uninterrupted run
        would have drawn.
    noise_shape : tuple, optional
        The mask's shape, per axis 1 or None (the input's size), as for
        cdropout.dropout.
    stream : {"counter", "xoshiro"}
        The random stream, as for cdropout.torch.dropout: "counter" (the default) is
        generated by torch.compile inside the kernels around the dropout.

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> layer = cdropout.torch.Dropout(0.5, seed=0)
    >>> layer
    Dropout(p=0.5, inplace=False, seed=0)
    >>> isinstance(layer, torch.nn.Dropout)
    True
    >>> sorted(set(layer(torch.ones(8)).tolist()))
    [0.0, 2.0]
    """

    def __init__(
        self,
        p: float = 0.5,
        inplace: bool = False,
        *,
        mode: str = "inverted",
        seed: int | None = None,
        noise_shape: tuple[int | None, ...] | None = None,
        stream: str = "counter",
    ) -> None:
        self._setup(p, inplace, mode, seed, noise_shape, stream)


class _Channels(_Module):
    """The channel modules: their noise comes from the input's rank, as torch.nn's."""

    has_noise = False

    def __init__(
        self,
        p: float = 0.5,
        inplace: bool = False,
        *,
        mode: str = "inverted",
        seed: int | None = None,
        stream: str = "counter",
    ) -> None:
        self._setup(p, inplace, mode, seed, None, stream)


class Dropout1d(_Channels, torch.nn.Dropout1d):
    """torch.nn.Dropout1d: whole channels of (N, C, L) or (C, L) inputs."""

    function = "dropout1d"


class Dropout2d(_Channels, torch.nn.Dropout2d):
    """torch.nn.Dropout2d: whole channels of (N, C, H, W) inputs, with PyTorch's
    warnings and its reading of other ranks (a 3-D input is (N, C, L))."""

    function = "dropout2d"


class Dropout3d(_Channels, torch.nn.Dropout3d):
    """torch.nn.Dropout3d: whole channels of (N, C, D, H, W) or (C, D, H, W) inputs,
    with PyTorch's warnings for other ranks."""

    function = "dropout3d"


class AlphaDropout(_Module, torch.nn.AlphaDropout):
    """torch.nn.AlphaDropout (SELU networks) by cdropout's kernel; evaluation is the
    identity. Seeds and the ``calls`` buffer as for Dropout."""

    function = "alpha_dropout"
    has_mode = False

    def __init__(
        self,
        p: float = 0.5,
        inplace: bool = False,
        *,
        seed: int | None = None,
        noise_shape: tuple[int | None, ...] | None = None,
        stream: str = "counter",
    ) -> None:
        self._setup(p, inplace, "inverted", seed, noise_shape, stream)


class FeatureAlphaDropout(_Module, torch.nn.FeatureAlphaDropout):
    """torch.nn.FeatureAlphaDropout: alpha dropout of whole channels (one decision
    per (N, C)); evaluation is the identity. Seeds as for Dropout."""

    function = "feature_alpha_dropout"
    has_mode = False
    has_noise = False

    def __init__(
        self,
        p: float = 0.5,
        inplace: bool = False,
        *,
        seed: int | None = None,
        stream: str = "counter",
    ) -> None:
        self._setup(p, inplace, "inverted", seed, None, stream)


class MultiheadAttention(torch.nn.MultiheadAttention):
    """torch.nn.MultiheadAttention whose attention dropout (its `dropout` argument) is
    cdropout's: its training forward is PyTorch's inside cdropout.torch.intercept()
    (the mode of swap_dropout(functional=True), entered by this forward, so also when
    a checkpoint recomputes it), so the attention call is
    cdropout.torch.scaled_dot_product_attention (and, with need_weights=True, the
    weights' dropout cdropout.torch.dropout, by the same index rule). The same
    parameters, state_dict and results at dropout 0 or in eval(). swap_dropout(model)
    makes each nn.MultiheadAttention of a model one, in place
    (nn.TransformerEncoderLayer's and DecoderLayer's too)."""

    def forward(self, *args, **kwargs):
        if not self.training or self.dropout == 0.0:
            return super().forward(*args, **kwargs)
        # the mode swap_dropout(functional=True) gives a model's modules: entered
        # here, so also in a checkpoint's recomputation of this module
        reaching.enter("counter")
        try:
            return super().forward(*args, **kwargs)
        finally:
            reaching.leave("counter")
