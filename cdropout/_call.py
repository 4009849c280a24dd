"""The one checked call that every dropout of the NumPy API, and of its reference
twin, goes through (as NumPy's Generator methods go through _common.cont).

checked() checks every argument, answers evaluation (training=False) itself, allocates
the output, and draws the key last: a failed call leaves x, out and the seed's source
(a Generator, a layer's call counter) as they were. The variants differ in a few
properties, not in a copied prologue.
"""

from cdropout import _params
from cdropout._eval import evaluate
from cdropout._threads import resolve_threads


class Variant:
    """What tells the variants' calls apart: their name (in messages), whether they take
    a convention (`mode`; the others compute as inverted dropout, whose evaluation is
    the identity), and whether they refuse p = 1 (Gaussian dropout's factor has no
    variance there)."""

    def __init__(self, name, has_mode=True, below_one=False):
        self.name, self.has_mode, self.below_one = name, has_mode, below_one

    def check_probability(self, p):
        """p for this variant: checked as every p is, then against its own bound."""
        p = _params.probability(p)
        if self.below_one and p == 1.0:
            raise ValueError(
                f"p must satisfy 0 <= p < 1 for {self.name} dropout, got 1.0"
            )
        return p


DROPOUT = Variant("dropout")
ALPHA = Variant("alpha", has_mode=False)
GAUSSIAN = Variant("Gaussian", has_mode=False, below_one=True)


class Call:
    """A checked training call: x (an ndarray of a kernel dtype), p, mode, the output
    `dst` (out, or a new array), the key, offset, the mask's shape, the thread count and
    the stream's name."""

    __slots__ = (
        "x", "p", "mode", "dst", "key", "offset", "noise", "n_threads", "stream"
    )  # fmt: skip

    def __init__(self, x, p, mode, dst, key, offset, noise, n_threads, stream):
        self.x, self.p, self.mode, self.dst, self.key = x, p, mode, dst, key
        self.offset, self.noise, self.n_threads = offset, noise, n_threads
        self.stream = stream


def checked(variant, x, p, seed, training, mode, out, offset, n_threads, noise_shape,
            stream):  # fmt: skip
    """A Call for a training call, or the finished result of an evaluation call."""
    p = variant.check_probability(p)
    training = _params.flag(training, "training")
    mode = _params.mode(mode) if variant.has_mode else "inverted"
    stream = _params.stream(stream)
    given = x
    x = _params.float_array(x)
    out = _params.output(out, x, given)
    offset = _params.offset(offset, x.size)
    noise = _params.noise_shape(noise_shape, x.shape)
    n_threads = resolve_threads(n_threads)
    if not training:
        _params.check_seed(seed)
        return evaluate(x, p, mode, out)
    dst = _params.new_output(x) if out is None else out
    # last: a Generator (or a layer's counter) is drawn from only once all is valid
    # and allocated
    key = _params.seed_value(seed)
    return Call(x, p, mode, dst, key, offset, noise, n_threads, stream)
