"""The Dropout layer: train/eval modes, per-call streams, a mask-free backward."""

import numbers
import threading
from typing import Any

import numpy as np

from cdropout import _call, _kernel, _params
from cdropout._typing import FloatArray, Mode, NoiseShape, Probability, Seed, Stream
from cdropout.functional import alpha_dropout, dropout, dropout_mask, gaussian_dropout


class _CallSeeds(_params.SeedSource):
    """A layer's seed source for one forward call: the stream of its next training call
    number, taken when the functional API draws the key, after every check (a refused
    call takes no number); `key` holds it after the call (None: nothing drawn)."""

    __slots__ = ("layer", "key")

    def __init__(self, layer):
        self.layer, self.key = layer, None

    def draw(self):
        self.key = _kernel.call_seed(self.layer.seed, self.layer._take_call_number())
        return self.key


class Dropout:
    """Dropout as a layer, with train/eval modes and a backward pass.

    Parameters
    ----------
    p : float
        Probability of dropping each element, 0 <= p <= 1 (checked here, once).
    mode : {"inverted", "classic"}
        inverted (PyTorch, Keras, Flax): training scales kept elements by 1/(1-p) and
        evaluation is the identity. classic (Srivastava et al. 2014): training keeps
        elements as they are and evaluation multiplies by 1-p.
    seed : None, int, or any seed that cdropout.dropout takes
        Resolved once, here, to a 64-bit layer seed (None: fresh OS entropy; a Generator
        gives one draw). Forward call number k in training uses the stream
        ``cdropout._kernel.call_seed(seed, k)``: successive calls differ, and the whole
        sequence is reproducible from the seed.
    inplace : bool
        Write the result into the input (``out=x``) instead of a new array.
    noise_shape : tuple, optional
        The mask's shape, per axis 1 (one decision broadcast along it) or None (the
        input's size): ``(None, None, 1, 1)`` drops whole channels of (N, C, H, W)
        inputs, like PyTorch's Dropout2d and Keras's SpatialDropout2D.
    stream : {"xoshiro", "counter"}
        The random stream, as for cdropout.dropout.

    Attributes
    ----------
    training : bool
        True at first; ``train()`` and ``eval()`` switch it. ``layer(x, training=...)``
        overrides it for one call, as Keras layers do.
    calls : int
        The number of the next training call's stream: the count of training calls so
        far, unless set. Settable: rewinding it (``layer.calls -= 1``) makes the next
        call draw the mask of the previous one, as a numerical gradient check needs.

    Notes
    -----
    ``backward(grad)`` returns the gradient with respect to the input of the last
    forward call made by the calling thread. It regenerates that call's mask from its
    stream instead of storing it, so a layer holds a few numbers, never an array. The
    whole state (seed, call counter, mode, training flag, last call) survives pickling,
    so a run resumes with the same masks.

    A layer may be called from several threads at once: each training call takes its
    own call number atomically, so no two calls share a mask (which thread gets which
    number depends on who comes first).

    To check the gradient numerically, rewind the counter before each forward call, so
    that every evaluation of the loss sees the same mask::

        def loss(x):
            layer.calls = k  # the same stream for every evaluation
            return float(np.sum(layer(x) * weights))

    MC dropout (dropout kept on at inference, to sample predictions) is the layer in
    training mode: each call draws a fresh mask.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> layer = cdropout.Dropout(0.5, seed=0)
    >>> layer
    Dropout(p=0.5, inplace=False, mode='inverted')
    >>> y = layer(np.ones(6))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> g = layer.backward(np.ones(6))  # the same mask and scale
    >>> bool(np.array_equal(g, y))
    True
    >>> layer.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    # the functional API's variant the layer runs (its rules for p)
    _variant = _call.DROPOUT

    def __init__(self, p: Probability = 0.5, *, mode: Mode = "inverted",
                 seed: Seed = None, inplace: bool = False,
                 noise_shape: NoiseShape | None = None,
                 stream: Stream = "xoshiro") -> None:  # fmt: skip
        self.p = self._variant.check_probability(p)
        self.mode = _params.mode(mode)
        self.stream = _params.stream(stream)
        self.inplace = _params.flag(inplace, "inplace")
        self.noise_shape = _params.noise_spec(noise_shape)
        # last: a Generator is drawn from only once all is valid
        self.seed = _params.seed_value(seed)
        self.training = True
        self._calls = 0  # the stream number of the next training call
        self._lock = threading.Lock()
        # per thread: (the key of its last call or None in evaluation, shape)
        self._local = threading.local()

    @property
    def calls(self) -> int:
        """The stream number of the next training call (settable, to replay masks)."""
        return self._calls

    @calls.setter
    def calls(self, value: int) -> None:
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, numbers.Integral
        ):
            raise TypeError(f"calls must be an int, got {type(value).__name__}")
        if not (0 <= value < 2**64):
            raise ValueError(f"calls must satisfy 0 <= calls < 2**64, got {value}")
        with self._lock:
            self._calls = int(value)

    def _take_call_number(self):
        with self._lock:
            number = self._calls
            self._calls = (number + 1) % 2**64
        return number

    @property
    def _last(self):
        return getattr(self._local, "last", None)

    @_last.setter
    def _last(self, value):
        self._local.last = value

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_local")}
        state["_last"] = self._last  # the pickling thread's last call
        return state

    def __setstate__(self, state):
        state = dict(state)
        if "calls" in state:  # pickled by cdropout 0.1, where it was a plain attribute
            state["_calls"] = state.pop("calls")
        state.setdefault("stream", "xoshiro")  # pickled before 0.3: the only stream
        last = state.pop("_last", None)
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._last = last

    # whether the repr shows the mode: the variants have a single convention
    _has_mode = True

    def __repr__(self) -> str:
        # p and inplace first, in PyTorch's order
        extra = f", mode={self.mode!r}" if self._has_mode else ""
        if self.noise_shape is not None:
            extra += f", noise_shape={self.noise_shape!r}"
        if self.stream != "xoshiro":
            extra += f", stream={self.stream!r}"
        return f"{type(self).__name__}(p={self.p!r}, inplace={self.inplace!r}{extra})"

    def train(self, mode: bool = True) -> "Dropout":
        """Set training mode (or evaluation with ``mode=False``); return the layer."""
        self.training = _params.flag(mode, "mode")
        return self

    def eval(self) -> "Dropout":
        """Set evaluation mode; return the layer."""
        return self.train(False)

    def _apply(self, x: Any, **kwargs: Any) -> FloatArray:
        """This layer's function of x (the subclasses' variants override it)."""
        return dropout(x, self.p, mode=self.mode, noise_shape=self.noise_shape,
                       stream=self.stream, **kwargs)  # fmt: skip

    def forward(self, x: Any, training: bool | None = None) -> FloatArray:
        """The layer's output for `x`: in the layer's mode, or in training if
        `training` is True and in evaluation if False (for this call only)."""
        training = self.training if training is None else training
        seeds = _CallSeeds(self)  # a number is taken only once the call is checked
        y = self._apply(
            x, training=training, seed=seeds, out=x if self.inplace else None
        )
        self._last = (seeds.key, y.shape)
        return y

    __call__ = forward

    def _checked_gradient(self, grad):
        """The last call's key (None in evaluation) and grad, checked against it."""
        if self._last is None:
            raise RuntimeError("backward() needs a forward call first; none was made")
        key, shape = self._last
        grad = _params.float_array(grad, "grad")
        if grad.shape != shape:
            raise ValueError(
                f"grad must have the shape {shape} of the last forward output, "
                f"got {grad.shape}"
            )
        return key, grad

    def backward(self, grad: Any) -> FloatArray:
        """The gradient with respect to the input of the last forward call.

        Dropout is linear in its input: the gradient is the same mask and the same scale
        applied to `grad`, regenerated from the last call's stream.
        """
        key, grad = self._checked_gradient(grad)
        if key is None:
            return self._apply(grad, training=False)
        return self._apply(grad, seed=key)


class AlphaDropout(Dropout):
    """Alpha dropout as a layer, for self-normalising (SELU) networks.

    See cdropout.alpha_dropout for the arithmetic. Training draws a fresh stream per
    call as Dropout does; evaluation is the identity. ``backward(grad)`` gives
    ``grad * a`` where the last call kept the element and 0 where it dropped it.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> layer = cdropout.AlphaDropout(0.1, seed=0)
    >>> layer
    AlphaDropout(p=0.1, inplace=False)
    >>> y = layer(np.zeros(4))
    >>> layer.eval()(np.zeros(2))
    array([0., 0.])
    """

    def __init__(self, p: Probability = 0.5, *, seed: Seed = None,
                 inplace: bool = False, noise_shape: NoiseShape | None = None,
                 stream: Stream = "xoshiro") -> None:  # fmt: skip
        super().__init__(p, seed=seed, inplace=inplace, noise_shape=noise_shape,
                         stream=stream)  # fmt: skip

    _variant = _call.ALPHA
    _has_mode = False

    def _apply(self, x: Any, **kwargs: Any) -> FloatArray:
        return alpha_dropout(x, self.p, noise_shape=self.noise_shape,
                             stream=self.stream, **kwargs)  # fmt: skip

    def backward(self, grad: Any) -> FloatArray:
        """The gradient with respect to the input of the last forward call."""
        key, grad = self._checked_gradient(grad)
        if key is None or self.p == 0.0:
            return np.array(grad, grad.dtype.newbyteorder("="), order="C")
        a, _, _ = (
            _params.alpha_constants(self.p, grad.dtype) if self.p < 1 else (0, 0, 0)
        )
        keep = dropout_mask(_params.noise_shape(self.noise_shape, grad.shape), self.p,
                            seed=key, stream=self.stream)  # fmt: skip
        compute = np.float32 if grad.dtype.itemsize <= 4 else np.float64
        result = np.where(keep, grad.astype(compute) * compute(a), compute(0.0))
        return result.astype(grad.dtype.newbyteorder("="))


class GaussianDropout(Dropout):
    """Gaussian dropout as a layer (Keras's GaussianDropout).

    See cdropout.gaussian_dropout: training multiplies by N(1, p / (1 - p)), drawn
    from a fresh stream per call as Dropout does; evaluation is the identity.
    ``backward(grad)`` multiplies grad by the last call's factors (regenerated).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> layer = cdropout.GaussianDropout(0.2, seed=0)
    >>> layer
    GaussianDropout(p=0.2, inplace=False)
    >>> g = layer.backward(layer(np.ones(3)) * 0 + 1)  # the factors of that call
    >>> bool(np.array_equal(g, layer.backward(np.ones(3))))
    True
    """

    def __init__(self, p: Probability = 0.5, *, seed: Seed = None,
                 inplace: bool = False, noise_shape: NoiseShape | None = None,
                 stream: Stream = "xoshiro") -> None:  # fmt: skip
        super().__init__(p, seed=seed, inplace=inplace, noise_shape=noise_shape,
                         stream=stream)  # fmt: skip

    _variant = _call.GAUSSIAN
    _has_mode = False

    def _apply(self, x: Any, **kwargs: Any) -> FloatArray:
        return gaussian_dropout(x, self.p, noise_shape=self.noise_shape,
                                stream=self.stream, **kwargs)  # fmt: skip
