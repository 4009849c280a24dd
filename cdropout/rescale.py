"""Weight rescaling between the two dropout conventions (plain NumPy)."""

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from cdropout import _params
from cdropout._typing import FloatArray, Mode


def rescale_weights(
    weights: Any,
    p: npt.ArrayLike,
    *,
    axis: int,
    from_mode: Mode,
    to_mode: Mode,
) -> FloatArray:
    """Convert weights trained with one dropout convention for use with the other.

    A layer whose inputs went through dropout of keep probability 1-p, trained with
    classic dropout, expects its inputs scaled by 1-p at evaluation; folding that factor
    once into its weights gives the weights of the inverted convention, which evaluates
    with no rescaling at all. Classic to inverted multiplies by 1-p; inverted to classic
    divides by it.

    Parameters
    ----------
    weights : array_like of float
        The weights of the layer that *receives* the dropped-out units.
    p : float or array_like of float
        The drop probability: one for all units, or one per input unit (the length of
        ``weights.shape[axis]``).
    axis : int
        The axis of `weights` that indexes the input units: 0 for an (in, out) matrix
        used as ``x @ W``; 1 (or -1) for a torch-style Linear weight of shape (out, in)
        used as ``x @ W.T``.
    from_mode, to_mode : {"inverted", "classic"}

    Returns
    -------
    ndarray
        New rescaled weights of the same dtype in native byte order, a plain ndarray
        (np.matrix input included); `weights` is left alone. Biases are not
        inputs of dropped units and are never rescaled: do not pass them here.

    Raises
    ------
    ValueError
        p outside [0, 1], a p vector of the wrong length, an unknown mode, or inverted
        to classic with p = 1 (division by a keep probability of zero).
    numpy.exceptions.AxisError
        axis out of range (a ValueError and an IndexError).

    Examples
    --------
    >>> import numpy as np, cdropout
    >>> W = np.ones((3, 2))                       # (in, out), used as x @ W
    >>> cdropout.rescale_weights(W, 0.5, axis=0,
    ...                          from_mode="classic", to_mode="inverted")
    array([[0.5, 0.5],
           [0.5, 0.5],
           [0.5, 0.5]])
    >>> W_torch = np.ones((2, 3))                 # (out, in), used as x @ W.T
    >>> cdropout.rescale_weights(W_torch, [0.0, 0.5, 0.75], axis=1,
    ...                          from_mode="classic", to_mode="inverted")
    array([[1.  , 0.5 , 0.25],
           [1.  , 0.5 , 0.25]])
    """
    from_mode = _params.mode(from_mode)
    to_mode = _params.mode(to_mode)
    # a plain array (float_array drops subclasses): with np.matrix the product below
    # would be a matrix product
    weights = _params.float_array(weights, "weights")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    axis = np.lib.array_utils.normalize_axis_index(int(axis), weights.ndim, "axis")
    units = weights.shape[axis]
    keep = 1.0 - _probabilities(p, units, axis)
    native = weights.dtype.newbyteorder("=")
    if from_mode == to_mode:
        return weights.astype(native)  # a copy, in native byte order as below
    if from_mode == "inverted" and np.any(keep == 0.0):
        raise ValueError(
            "p must be below 1 to convert inverted weights to classic ones: dividing "
            "by a keep probability of 0 is undefined; got p = 1"
            + ("" if keep.ndim == 0 else f" for unit(s) {np.flatnonzero(keep == 0)}")
        )
    factor = keep if from_mode == "classic" else 1.0 / keep
    shape = [1] * weights.ndim
    shape[axis] = units
    factor = np.broadcast_to(factor, units).reshape(shape)
    # float64 arithmetic, rounded once to the dtype of the weights
    return (weights.astype(np.float64) * factor).astype(native)


def _probabilities(p, units, axis):
    """p as a float or a float64 vector of `units` probabilities, each checked."""
    if np.ndim(p) == 0:
        return np.float64(_params.probability(p))
    values = np.asarray(p)
    if values.ndim != 1 or values.shape[0] != units:
        raise ValueError(
            f"p must be a scalar or hold one probability per input unit, got shape "
            f"{values.shape}: the weights have {units} input units on axis "
            f"{axis} (is axis the axis of the units the dropout came before?)"
        )
    if values.dtype.kind not in "fiu":
        raise TypeError(f"p must hold real numbers, got dtype {values.dtype}")
    values = values.astype(np.float64)
    bad = ~((values >= 0.0) & (values <= 1.0))  # NaN-proof
    if np.any(bad):
        raise ValueError(
            f"p must satisfy 0 <= p <= 1 for every unit, got {values[bad][:5]} "
            f"at unit(s) {np.flatnonzero(bad)[:5]}"
        )
    return values
