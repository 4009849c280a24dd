"""Drop-ins for torch.nn.Dropout, Dropout1d, Dropout2d, Dropout3d and AlphaDropout,
by cdropout's kernel, with both conventions and reproducible per-call streams."""

import threading
import warnings

import torch

from cdropout import _kernel, _params
from cdropout.torch import _eager, _ops
from cdropout.torch.functional import (
    alpha_dropout,
    apply_alpha,
    apply_dropout,
    check_inplace,
    check_input,
    dropout,
    is_traced,
    noise_list,
    probability,
    refuse_traced_training,
    threads,
)

# Taken while an eager call of a seeded module reads and advances its call number, as
# the NumPy layer does: modules called from several threads at once drew the same
# number, so the same mask, for some calls. One lock for all modules: a lock in a
# module would have to be kept out of its pickles and deep copies.
_CALL_NUMBERS = threading.Lock()


class Dropout(torch.nn.Module):
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

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> layer = cdropout.torch.Dropout(0.5, seed=0)
    >>> layer
    Dropout(p=0.5, inplace=False)
    >>> sorted(set(layer(torch.ones(8)).tolist()))
    [0.0, 2.0]
    """

    def _noise(self, input):
        """The noise shape for this input (the channel modules' rules override it)."""
        return self.noise_shape

    def __init__(
        self, p=0.5, inplace=False, *, mode="inverted", seed=None, noise_shape=None
    ):
        super().__init__()
        self.p = probability(p)
        self.inplace = _params.flag(inplace, "inplace")
        self.mode = _params.mode(mode)
        self.noise_shape = _params.noise_spec(noise_shape)
        # the number of the next training call's stream (used with an int seed)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.seed = seed

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
        if self._seed is None:
            self._non_persistent_buffers_set.add("calls")
        else:
            self._non_persistent_buffers_set.discard("calls")

    def extra_repr(self):
        extra = f"p={self.p}, inplace={self.inplace}"
        if self.mode != "inverted":
            extra += f", mode={self.mode!r}"
        if self.seed is not None:
            extra += f", seed={self.seed}"
        if self.noise_shape is not None:
            extra += f", noise_shape={self.noise_shape}"
        return extra

    def _key(self, input):
        """The key of the next training call with an int seed; advances `calls`. An
        int for an eager call, else a tensor from the call_key operator."""
        if _eager.is_eager(input):
            if torch._C._current_graph_task_id() != -1:  # called inside a backward
                raise RuntimeError(
                    f"{self._get_name()} with an int seed was called during a "
                    "backward pass, as torch.utils.checkpoint's recomputation calls "
                    "it: it would draw the next call's mask, not the forward's, and "
                    "the gradients would be wrong. Use seed=None inside checkpointed "
                    "code (keys then come from PyTorch's generator, which checkpoint "
                    "restores)"
                )
            with _CALL_NUMBERS:  # read and advanced as one: threads never share one
                number = int(self.calls)
                self.calls.add_(1)
            return _kernel.call_seed(self.seed, number)
        seed = self.seed - 2**64 if self.seed >= 2**63 else self.seed
        key = _ops.call_key_op(self.calls, seed)
        # (an int64 buffer records nothing for autograd: no torch.no_grad(), whose
        # region torch.export.load refuses in a training-mode program, torch 2.13)
        self.calls.add_(1)
        return key

    def forward(self, input):
        if not self.training or self.seed is None:
            return dropout(
                input,
                self.p,
                training=self.training,
                inplace=self.inplace,
                mode=self.mode,
                noise_shape=self._noise(input),
            )
        p, noise = self._checked(input)
        return apply_dropout(
            input,
            self._key(input),
            p,
            self.mode,
            self.inplace,
            0,
            threads(None),
            noise,
        )

    def _checked(self, input):
        """The functional API's checks, of the input and of the attributes (which may
        have been set since construction), before a call number is taken: p as a
        float, and the noise."""
        check_input(input)
        p = probability(self.p)
        _params.mode(self.mode)
        _params.flag(self.inplace, "inplace")
        if is_traced(input.numel()):
            refuse_traced_training()
        noise = noise_list(self._noise(input), input)
        check_inplace(input, self.inplace)
        return p, noise


def _channels(rank, batched):
    """The noise shape that drops whole channels: one decision per (N, C), or per C for
    an input without a batch axis (PyTorch's feature dropout)."""
    kept = 2 if batched else 1
    # None: the input's size there, so that no size is read (a symbolic one under
    # torch.compile or torch.export would be compared, and guarded)
    return (None,) * kept + (1,) * (rank - kept)


class Dropout1d(Dropout):
    """torch.nn.Dropout1d: whole channels of (N, C, L) or (C, L) inputs."""

    def _noise(self, input):
        if input.dim() not in (2, 3):
            raise RuntimeError(
                f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D "
                "input (input must be (N, C, L) or (C, L))"
            )
        return _channels(input.dim(), input.dim() == 3)


class Dropout2d(Dropout):
    """torch.nn.Dropout2d: whole channels of (N, C, H, W) inputs, with PyTorch's
    warnings and its reading of other ranks (a 3-D input is (N, C, L))."""

    def _noise(self, input):
        if input.dim() not in (3, 4):
            warnings.warn(
                f"Received a {input.dim()}-D input to dropout2d, which is deprecated "
                "in PyTorch; cdropout follows PyTorch and drops whole channels of "
                "(N, C, ...). Use Dropout for element-wise dropout.",
                UserWarning,
                stacklevel=3,
            )
        elif input.dim() == 3:
            warnings.warn(
                "dropout2d: Received a 3D input to dropout2d and assuming that "
                "channel-wise 1D dropout behavior is desired - input is interpreted "
                "as shape (N, C, L), as PyTorch does; use Dropout1d for it.",
                UserWarning,
                stacklevel=3,
            )
        return _channels(input.dim(), True)


class Dropout3d(Dropout):
    """torch.nn.Dropout3d: whole channels of (N, C, D, H, W) or (C, D, H, W) inputs,
    with PyTorch's warnings for other ranks."""

    def _noise(self, input):
        if input.dim() not in (4, 5):
            warnings.warn(
                f"Received a {input.dim()}-D input to dropout3d, which is deprecated "
                "in PyTorch; cdropout follows PyTorch's reading of it.",
                UserWarning,
                stacklevel=3,
            )
        return _channels(input.dim(), input.dim() == 5)


class AlphaDropout(Dropout):
    """torch.nn.AlphaDropout (SELU networks) by cdropout's kernel; evaluation is the
    identity. Seeds and the ``calls`` buffer as for Dropout."""

    def __init__(self, p=0.5, inplace=False, *, seed=None, noise_shape=None):
        super().__init__(p, inplace, seed=seed, noise_shape=noise_shape)

    def forward(self, input):
        if not self.training or self.seed is None:
            return alpha_dropout(
                input,
                self.p,
                training=self.training,
                inplace=self.inplace,
                noise_shape=self.noise_shape,
            )
        p, noise = self._checked(input)
        return apply_alpha(
            input, self._key(input), p, self.inplace, 0, threads(None), noise
        )
