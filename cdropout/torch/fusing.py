"""ReLU + dropout as one operation inside an nn.Sequential, decided by the container at
each call, so that every module stays what it is.

swap_dropout(model) turns each plain nn.Sequential that holds a fusable pair into a
FusingSequential: its forward runs a ReLU (or LeakyReLU of slope >= 0) followed by one
of cdropout's element or channel dropout modules, or such a dropout followed by a ReLU,
as one pass forward and a backward from the output alone (one kernel with no mask saved
under torch.compile). The modules themselves are untouched: ``model[1]`` is still the
ReLU, ``model[:2]`` still ends with it, and a hook registered on either, at any time,
sees what it would see in torch.nn's model, since a pair with a hook is run apart.
"""

import torch

from cdropout.torch import _state, functional, modules


def _is_fusable_dropout(module):
    """One of cdropout's dropout modules of torch.nn's element or channel kinds: not
    the alpha variants, whose dropped elements are not zero."""
    return (
        isinstance(module, modules._Module) and module.function in functional.VARIANTS
    )


def fusable_activation(module):
    """("relu", 0.0) or ("leaky_relu", slope) for a module that can be fused, else
    None: exactly nn.ReLU, or nn.LeakyReLU whose slope keeps the input's sign. Those
    are positively homogeneous (dropout's scale and zeros commute with them) and their
    output alone gives their gradient."""
    if type(module) is torch.nn.ReLU:
        return ("relu", 0.0)
    if type(module) is torch.nn.LeakyReLU:
        slope = module.negative_slope
        if isinstance(slope, (int, float)) and 0.0 <= slope < float("inf"):
            return ("leaky_relu", float(slope))
    return None


def _hooked(module):
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or getattr(module, "_backward_pre_hooks", None)
    )


def fusion(first, second):
    """How the pair (first, second) of a Sequential runs as one operation: (dropout
    module, activation, whether the activation comes after the dropout), or None. An
    activation before a dropout: ReLU or LeakyReLU; after one, ReLU only (relu of a
    dropout is the dropout of the relu to the bit; LeakyReLU's multiply rounds in
    another order). Never a pair with a hook, which would see other values."""
    if _is_fusable_dropout(second) and not _is_fusable_dropout(first):
        dropout, activation, after = second, fusable_activation(first), False
    elif _is_fusable_dropout(first) and type(second) is torch.nn.ReLU:
        dropout, activation, after = first, ("relu", 0.0), True
    else:
        return None
    if activation is None or _hooked(first) or _hooked(second):
        return None
    return dropout, activation, after


class FusingSequential(torch.nn.Sequential):
    """nn.Sequential whose forward runs each fusable (activation, dropout) pair of
    adjacent children as one operation (see the module's docstring): the same function
    to the bit, the same children, state_dict keys and indices. fused_pairs() lists
    the pairs the next call fuses."""

    def fused_pairs(self) -> list[tuple[int, int]]:
        """The index pairs of children that the next call runs as one operation
        (pairs taken from the left: in ReLU, Dropout, ReLU the first two)."""
        return [(i, i + 1) for i, fused in _steps(self) if fused is not None]

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if _state.fx_proxy(input):
            return super().forward(input)  # each child called, as torch.nn's
        children = list(self._modules.values())
        for i, fused in _steps(self):
            if fused is None:
                input = children[i](input)
                continue
            dropout, activation, after = fused
            input = functional.activated_module_call(
                dropout.function, activation, after, input, dropout.p,
                dropout.training, dropout.inplace, dropout.mode, dropout.key_source(),
                dropout.noise_shape, dropout.stream,
            )  # fmt: skip
        return input


def _steps(sequential):
    """(index, fusion or None) for each step of a call: a pair from the left where
    `fusion` gives one (then the step covers children index and index + 1), else one
    child. No pair while a global module hook is in force (it sees every module)."""
    children = list(sequential._modules.values())
    pairs = not _state.global_module_hooks()
    i = 0
    while i < len(children):
        fused = (fusion(children[i], children[i + 1])
                 if pairs and i + 1 < len(children) else None)  # fmt: skip
        yield i, fused
        i += 1 if fused is None else 2


def fuse(model):
    """Make each plain nn.Sequential of `model` that holds a fusable pair a
    FusingSequential (in place). A subclass of nn.Sequential may call its children
    otherwise, and is left as it is."""
    for parent in model.modules():
        if type(parent) is torch.nn.Sequential:
            children = list(parent._modules.values())
            if any(fusion(a, b) for a, b in zip(children, children[1:], strict=False)):
                parent.__class__ = FusingSequential
