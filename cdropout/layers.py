"""The Dropout layer: train/eval modes, per-call streams, a mask-free backward."""

import numpy as np

from cdropout import _kernel, _params
from cdropout.functional import alpha_dropout, dropout, dropout_mask, gaussian_dropout


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
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
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

    Attributes
    ----------
    training : bool
        True at first; ``train()`` and ``eval()`` switch it.

    Notes
    -----
    ``backward(grad)`` returns the gradient with respect to the input of the last
    forward call. It regenerates that call's mask from its stream instead of storing
    it, so a layer holds a few numbers, never an array. The whole state (seed, call
    counter, mode, training flag, last call) survives pickling, so a run resumes with
    the same masks.

    MC dropout (dropout kept on at inference, to sample predictions) is the layer in
    training mode: each call draws a fresh mask.

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> layer = cdropout.Dropout(0.5, seed=0)
    >>> layer
    Dropout(p=0.5, mode='inverted')
    >>> y = layer(np.ones(6))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> g = layer.backward(np.ones(6))  # the same mask and scale
    >>> bool(np.array_equal(g, y))
    True
    >>> layer.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p=0.5, *, mode="inverted", seed=None, inplace=False,
                 noise_shape=None):  # fmt: skip
        self.p = _params.probability(p)
        self.mode = _params.mode(mode)
        self.inplace = _params.flag(inplace, "inplace")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = _params.seed_value(seed)
        self.training = True
        # training forward calls so far: the next one uses stream `calls`
        self.calls = 0
        self._last = None  # (stream seed or None in evaluation, shape) of the last call

    def __repr__(self):
        extra = ", inplace=True" if self.inplace else ""
        if self.noise_shape is not None:
            extra += f", noise_shape={self.noise_shape!r}"
        return f"Dropout(p={self.p!r}, mode={self.mode!r}{extra})"

    def train(self, mode=True):
        """Set training mode (or evaluation with ``mode=False``); return the layer."""
        self.training = _params.flag(mode, "mode")
        return self

    def eval(self):
        """Set evaluation mode; return the layer."""
        return self.train(False)

    def _apply(self, x, **kwargs):
        """This layer's function of x (the subclasses' variants override it)."""
        return dropout(
            x, self.p, mode=self.mode, noise_shape=self.noise_shape, **kwargs
        )

    def forward(self, x):
        """The layer's output for `x` in its mode (training draws the next stream)."""
        out = x if self.inplace else None
        if not self.training:
            y = self._apply(x, training=False, out=out)
            self._last = (None, y.shape)
            return y
        stream = _kernel.call_seed(self.seed, self.calls)
        y = self._apply(x, seed=stream, out=out)
        self.calls += 1  # after the call: a refused input consumes no stream
        self._last = (stream, y.shape)
        return y

    __call__ = forward

    def _checked_gradient(self, grad):
        """The last call's stream (None in evaluation) and grad, checked against it."""
        if self._last is None:
            raise RuntimeError("backward() needs a forward call first; none was made")
        stream, shape = self._last
        grad = _params.float_array(grad)
        if grad.shape != shape:
            raise ValueError(
                f"grad must have the shape {shape} of the last forward output, "
                f"got {grad.shape}"
            )
        return stream, grad

    def backward(self, grad):
        """The gradient with respect to the input of the last forward call.

        Dropout is linear in its input: the gradient is the same mask and the same scale
        applied to `grad`, regenerated from the last call's stream.
        """
        stream, grad = self._checked_gradient(grad)
        if stream is None:
            return self._apply(grad, training=False)
        return self._apply(grad, seed=stream)


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
    AlphaDropout(p=0.1)
    >>> y = layer(np.zeros(4))
    >>> layer.eval()(np.zeros(2))
    array([0., 0.])
    """

    def __init__(self, p=0.5, *, seed=None, inplace=False):
        super().__init__(p, seed=seed, inplace=inplace)

    def __repr__(self):
        extra = ", inplace=True" if self.inplace else ""
        return f"AlphaDropout(p={self.p!r}{extra})"

    def _apply(self, x, **kwargs):
        return alpha_dropout(x, self.p, **kwargs)

    def backward(self, grad):
        """The gradient with respect to the input of the last forward call."""
        stream, grad = self._checked_gradient(grad)
        if stream is None or self.p == 0.0:
            return np.array(grad, grad.dtype.newbyteorder("="), order="C")
        a, _, _ = (
            _params.alpha_constants(self.p, grad.dtype) if self.p < 1 else (0, 0, 0)
        )
        keep = dropout_mask(grad.shape, self.p, seed=stream)
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
    GaussianDropout(p=0.2)
    >>> g = layer.backward(layer(np.ones(3)) * 0 + 1)  # the factors of that call
    >>> bool(np.array_equal(g, layer.backward(np.ones(3))))
    True
    """

    def __init__(self, p=0.5, *, seed=None, inplace=False):
        super().__init__(p, seed=seed, inplace=inplace)
        if self.p == 1.0:
            raise ValueError("p must satisfy 0 <= p < 1 for Gaussian dropout, got 1.0")

    def __repr__(self):
        extra = ", inplace=True" if self.inplace else ""
        return f"GaussianDropout(p={self.p!r}{extra})"

    def _apply(self, x, **kwargs):
        return gaussian_dropout(x, self.p, **kwargs)
