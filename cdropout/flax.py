"""Drop-ins for flax's dropout modules by cdropout.jax, with both conventions; a helper
that swaps them into an nnx model, and the dropout paper's weight rule to convert an
nnx.Sequential between the conventions.

``Dropout`` subclasses ``flax.nnx.Dropout`` and ``LinenDropout`` subclasses
``flax.linen.Dropout``: the same arguments (rate, broadcast_dims, deterministic,
rng_collection, rngs), the same keys drawn from the same rng streams, plus `mode` and
`stream`. Their masks are cdropout's (the key becomes the stream's seed by
cdropout.jax.stream_seed), not jax.random.bernoulli's. Needs the flax extra:
``pip install "cdropout[flax]"``.
"""

import numbers
from collections.abc import Sequence

from cdropout import _extras

_extras.require("flax", "JAX and flax", "jax", "flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen, nnx  # noqa: E402
from flax.nnx.nn import attention as _flax_attention  # noqa: E402
from flax.nnx.nn import dtypes as _flax_dtypes  # noqa: E402

from cdropout import _params  # noqa: E402
from cdropout.jax import functional  # noqa: E402


def _broadcast_dims(value):
    """flax's broadcast_dims: a sequence of ints (axes, negative from the end)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
        isinstance(dim, numbers.Integral) and not isinstance(dim, (bool, np.bool_))
        for dim in value
    ):
        raise TypeError(f"broadcast_dims must be a sequence of ints, got {value!r}")
    return tuple(int(dim) for dim in value)


def _noise_shape(broadcast_dims, ndim):
    """flax's broadcast_dims as cdropout's noise_shape: 1 on those axes."""
    if not broadcast_dims:
        return None
    if not all(-ndim <= dim < ndim for dim in broadcast_dims):
        raise ValueError(
            f"broadcast_dims must hold axes of the input (-{ndim} <= axis < {ndim} "
            f"for an input of {ndim} dimensions), got {tuple(broadcast_dims)}"
        )
    shared = {dim % ndim for dim in broadcast_dims}
    return tuple(1 if axis in shared else None for axis in range(ndim))


def _checked(inputs, rate, deterministic, mode, stream, broadcast_dims):
    """Every argument of a call checked before a key is drawn (a refused call leaves
    the rng streams as they were); returns (inputs as an array, rate, deterministic,
    the noise shape)."""
    inputs = jnp.asarray(inputs)
    rate = functional.probability(rate, "rate")
    deterministic = _params.flag(deterministic, "deterministic")
    noise = _noise_shape(_broadcast_dims(broadcast_dims), inputs.ndim)
    # dtype, mode, stream and noise shape, as the call will check them after the draw
    functional._check(inputs, rate, None, None, False, mode, stream, 0, noise, "inputs")
    return inputs, rate, deterministic, noise


def _apply(inputs, rate, deterministic, key, mode, stream, noise):
    """One checked call: evaluation (the identity, or classic's 1 - rate), or training
    with the mask of `key` (a JAX key)."""
    if deterministic:
        return functional.dropout(inputs, rate, training=False, mode=mode)
    return functional.dropout(
        inputs, rate, key=key, mode=mode, stream=stream, noise_shape=noise
    )


class Dropout(nnx.Dropout):
    """flax.nnx.Dropout by cdropout: the same arguments and keys, plus the classic
    convention and the stream.

    Parameters
    ----------
    rate, broadcast_dims, deterministic, rng_collection, rngs
        As for flax.nnx.Dropout.
    mode : {"inverted", "classic"}
        inverted (flax's): kept elements times 1/(1 - rate) in training, the identity
        in evaluation. classic: kept elements as they are in training, evaluation
        multiplies by 1 - rate.
    stream : {"counter", "xoshiro"}
        "counter" (the default) is fused by XLA into the operations around the
        dropout; "xoshiro" runs cdropout's C kernel (CPU only).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import cdropout.flax
    >>> layer = cdropout.flax.Dropout(0.5, mode="classic", rngs=nnx.Rngs(dropout=0))
    >>> sorted(set(layer(jnp.ones(16)).tolist()))
    [0.0, 1.0]
    >>> layer(jnp.ones(2), deterministic=True)
    Array([0.5, 0.5], dtype=float32)
    """

    def __init__(
        self,
        rate: float,
        *,
        broadcast_dims: Sequence[int] = (),
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        mode: str = "inverted",
        stream: str = "counter",
    ) -> None:
        rate = functional.probability(rate, "rate")
        broadcast_dims = _broadcast_dims(broadcast_dims)
        if deterministic is not None:
            deterministic = _params.flag(deterministic, "deterministic")
        self.mode = _params.mode(mode)
        self.stream = _params.stream(stream)
        super().__init__(
            rate, broadcast_dims=broadcast_dims, deterministic=deterministic,
            rng_collection=rng_collection, rngs=rngs,
        )  # fmt: skip

    def __call__(
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        if deterministic is None:
            deterministic = self.deterministic
        if deterministic is None:  # flax.nnx.Dropout's words, which callers match
            raise ValueError(
                "No `deterministic` argument was provided to Dropout: give "
                "deterministic=True (evaluation) or False (training) to Dropout, to "
                "its call, or by nnx.view(model, deterministic=...)"
            )
        inputs, rate, deterministic, noise = _checked(
            inputs, self.rate, deterministic, self.mode, self.stream,
            self.broadcast_dims,
        )  # fmt: skip
        key = None
        if not deterministic and 0.0 < rate < 1.0:
            key = self._key(rngs if rngs is not None else self.rngs)
        return _apply(inputs, rate, deterministic, key, self.mode, self.stream, noise)

    def _key(self, rngs):
        if rngs is None:  # flax.nnx.Dropout's error and words
            raise ValueError(
                "`deterministic` is False, but no `rngs` argument was provided to "
                "Dropout as either a __call__ argument or class attribute: give "
                "rngs=nnx.Rngs(dropout=...) to Dropout or to its call"
            )
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        if isinstance(rngs, jax.Array):
            return rngs
        raise TypeError(
            "rngs must be an nnx.Rngs, an nnx.RngStream or a JAX key, given to "
            f"Dropout or to its call, got {type(rngs).__name__}"
        )


class LinenDropout(linen.Dropout):
    """flax.linen.Dropout by cdropout: the same fields (rate, broadcast_dims,
    deterministic, rng_collection) and call (deterministic, rng), plus `mode` and
    `stream` as for Dropout.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, cdropout.flax
    >>> layer = cdropout.flax.LinenDropout(0.5, mode="classic")
    >>> y = layer.apply({}, jnp.ones(16), deterministic=False,
    ...                 rngs={"dropout": jax.random.key(1)})
    >>> sorted(set(y.tolist()))
    [0.0, 1.0]
    """

    mode: str = "inverted"
    stream: str = "counter"

    @linen.compact
    def __call__(
        self,
        inputs: jax.Array,
        deterministic: bool | None = None,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        deterministic = linen.merge_param(
            "deterministic", self.deterministic, deterministic
        )
        inputs, rate, deterministic, noise = _checked(
            inputs, self.rate, deterministic, self.mode, self.stream,
            self.broadcast_dims,
        )  # fmt: skip
        if not deterministic and 0.0 < rate < 1.0 and rng is None:
            rng = self.make_rng(self.rng_collection)
        return _apply(inputs, rate, deterministic, rng, self.mode, self.stream, noise)


def dot_product_attention(
    query, key, value, bias=None, mask=None, broadcast_dropout=True, dropout_rng=None,
    dropout_rate=0.0, deterministic=False, dtype=None, precision=None, module=None,
    promote_dtype=_flax_dtypes.promote_dtype, is_causal=False, *, seed=None,
):  # fmt: skip
    """flax.nnx.dot_product_attention (flax's arguments, shapes [batch..., length,
    heads, features]) with the dropout of its attention weights by cdropout's counter
    stream: usable as ``nnx.MultiHeadAttention(attention_fn=...)``, and what
    swap_dropout gives an nnx model's MultiHeadAttention.

    The weights are flax's (dot_product_attention_weights: scale, bias, mask,
    is_causal, softmax, sowing to `module`); weight (batch..., h, i, j) is kept where
    the counter stream's element (g * L + i) * S + j of the key is, g the flat index of
    (batch..., h): the rule of cdropout.torch.scaled_dot_product_attention, so an int
    `seed` gives its mask (docs/stream.md, "Attention"). With broadcast_dropout (flax's
    default) one mask serves every batch element: the rule with batch 0.
    """
    query, key, value = promote_dtype((query, key, value), dtype=dtype)
    weights = _flax_attention.dot_product_attention_weights(
        query, key, bias, mask, broadcast_dropout, None, 0.0, True, dtype, precision,
        module, promote_dtype, is_causal,
    )  # fmt: skip
    rate = functional.probability(dropout_rate, "dropout_rate")
    if not deterministic and rate > 0.0:
        batch = weights.ndim - 3
        noise = (1,) * batch + (None,) * 3 if broadcast_dropout else None
        key = None if seed is not None else dropout_rng
        weights = functional.dropout(weights, rate, key=key, seed=seed,
                                     noise_shape=noise)  # fmt: skip
    return jnp.einsum("...hqk,...khd->...qhd", weights, value, precision=precision)


def swap_dropout(model: nnx.Module, stream: str = "counter") -> nnx.Module:
    """Replace, in place, every flax.nnx.Dropout of an nnx model by cdropout.flax's,
    with the same rate, broadcast_dims, deterministic flag, rng collection and rng
    stream (the same keys), and the given stream; return the model. Each
    nnx.MultiHeadAttention with flax's attention function gets cdropout.flax's
    dot_product_attention, which drops its weights by the counter stream.

    Examples
    --------
    >>> from flax import nnx
    >>> import cdropout.flax
    >>> model = nnx.Sequential(nnx.Linear(4, 4, rngs=nnx.Rngs(0)),
    ...                        nnx.Dropout(0.2, rngs=nnx.Rngs(dropout=1)))
    >>> type(cdropout.flax.swap_dropout(model).layers[1]).__module__
    'cdropout.flax'
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be an nnx.Module, got {type(model).__name__}")
    stream = _params.stream(stream)
    if type(model) is nnx.Dropout:
        raise TypeError(
            "model is itself an nnx.Dropout, which cannot be replaced in place: "
            "construct cdropout.flax.Dropout instead"
        )
    # id -> (path, dropout): each dropout once, however often it is held
    found: dict[int, tuple] = {}
    _rebuilt(model, lambda path, child: found.setdefault(id(child), (path, child))[1])
    replacements = {}  # made, so checked, before anything changes
    for key, (path, child) in found.items():
        try:
            new = Dropout(
                child.rate, broadcast_dims=child.broadcast_dims,
                deterministic=child.deterministic,
                rng_collection=child.rng_collection, stream=stream,
            )  # fmt: skip
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"module {'.'.join(map(str, path))!r} cannot be swapped: {error}"
            ) from None
        new.rngs = child.rngs  # the same stream of keys, not a fork of it
        replacements[key] = new
    _rebuilt(model, lambda path, child: replacements[id(child)])
    # attention dropout: flax's attention function in each MultiHeadAttention (one
    # given by the user is left alone)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.MultiHeadAttention) and (
            node.attention_fn is nnx.dot_product_attention
        ):
            node.attention_fn = dot_product_attention
    return model


def _rebuilt(value, swap, path=(), seen=None):
    """`value` with each nnx.Dropout held in it replaced by swap(path, dropout):
    through modules' attributes, lists, dicts (nnx.List and nnx.Dict too) and tuples,
    nested (nnx.data containers). Lists and dicts change in place; a tuple holding a
    replacement becomes a new tuple of its type; each module is visited once."""
    seen = set() if seen is None else seen
    if type(value) is nnx.Dropout:
        return swap(path, value)
    if isinstance(value, (list, nnx.List)):
        for index, item in enumerate(value):
            new = _rebuilt(item, swap, path + (index,), seen)
            if new is not item:
                value[index] = new
    elif isinstance(value, (dict, nnx.Dict)):
        for name, item in list(value.items()):
            new = _rebuilt(item, swap, path + (name,), seen)
            if new is not item:
                value[name] = new
    elif isinstance(value, tuple):
        items = [
            _rebuilt(item, swap, path + (index,), seen)
            for index, item in enumerate(value)
        ]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            named = hasattr(value, "_fields")  # a namedtuple takes its fields apart
            return type(value)(*items) if named else type(value)(items)
    elif isinstance(value, nnx.Module) and id(value) not in seen:
        seen.add(id(value))
        for name, item in list(vars(value).items()):
            if name.startswith("_"):
                continue  # flax's own bookkeeping, and private state
            new = _rebuilt(item, swap, path + (name,), seen)
            if new is not item:
                setattr(value, name, new)
    return value


def convert_mode(model: nnx.Sequential, to_mode: str) -> nnx.Sequential:
    """Convert an nnx.Sequential between the dropout conventions, in place; return it.

    For each cdropout.flax.Dropout of another mode, the nnx.Linear or nnx.Conv right
    after it gets its kernel multiplied by 1 - rate (classic to inverted) or
    1 / (1 - rate) (inverted to classic), never its bias, and the module's mode is
    switched: the dropout paper's weight rule, outputs unchanged up to rounding.

    Raises
    ------
    ValueError
        Naming the layer, for a dropout that is last or followed by another kind of
        layer, a consumer used at another place, or inverted to classic with rate 1.
        Nothing is changed then.
    """
    to_mode = _params.mode(to_mode)
    if not isinstance(model, nnx.Sequential):
        raise TypeError(
            f"model must be an nnx.Sequential (whose layers say which reads each "
            f"dropout), got {type(model).__name__}"
        )
    layers = list(model.layers)
    plan = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, Dropout) or layer.mode == to_mode:
            continue
        consumer = layers[index + 1] if index + 1 < len(layers) else None
        if not isinstance(consumer, (nnx.Linear, nnx.Conv)):
            after = "nothing" if consumer is None else type(consumer).__name__
            raise ValueError(
                f"layer {index} (a dropout) is not followed by an nnx.Linear or "
                f"nnx.Conv, whose kernel could take its keep probability; got {after}"
            )
        if sum(layer is other for other in layers) > 1 or sum(
            consumer is other for other in layers
        ) > 1:
            raise ValueError(
                f"layer {index + 1} is used at more than one place of the model: "
                "rescaling its kernel would change its other uses"
            )
        if to_mode == "classic" and layer.rate == 1.0:
            raise ValueError(
                f"layer {index} has rate 1: inverted weights cannot be converted to "
                "classic ones (dividing by a keep probability of 0)"
            )
        plan.append((layer, consumer))
    for layer, consumer in plan:
        keep = 1.0 - layer.rate
        factor = keep if to_mode == "inverted" else 1.0 / keep
        kernel = consumer.kernel[...]
        consumer.kernel[...] = kernel * jnp.asarray(factor, kernel.dtype)
        layer.mode = to_mode
    return model
