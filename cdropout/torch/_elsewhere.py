"""Tensors that cdropout's kernel does not run on: meta tensors, which get results of
the right shape and nothing else (building a model under ``torch.device("meta")``),
and tensors on other devices (CUDA, MPS, XPU, ...), which get PyTorch's own dropout on
their device, in the call's convention. Their bytes are PyTorch's, from that device's
generator: `seed` and `offset` do not apply there.
"""

import torch
import torch.nn.functional as F

from cdropout import _params


def training_output(input, p, inplace, mode, alpha, noise, generator):
    """Training-mode dropout of a tensor the kernel does not run on; `noise` is the
    mask's shape ([] for the input's), p in (0, 1]."""
    if input.is_meta:
        return input if inplace else torch.empty_like(input)
    if generator is None and not noise and mode == "inverted":  # PyTorch's own call
        function = F.alpha_dropout if alpha else F.dropout
        return function(input, p, True, inplace)
    if p == 1.0:  # as PyTorch's dropout: the input times zero
        return input.mul_(0.0) if inplace else input * 0.0
    # PyTorch's own arithmetic (aten's feature dropout): a Bernoulli mask of the noise
    # shape, broadcast, times the scale
    shape = noise or input.shape
    keep = torch.empty(shape, dtype=input.dtype, device=input.device)
    keep.bernoulli_(1.0 - p, generator=generator)
    if alpha:
        a, b, _ = _params.alpha_constants(p, float)
        shift = (keep - 1.0) * (_params.SELU_ALPHA * a) + b
        factor = keep * a
        return input.mul_(factor).add_(shift) if inplace else input * factor + shift
    if mode == "inverted":
        keep.div_(1.0 - p)
    return input.mul_(keep) if inplace else input * keep
