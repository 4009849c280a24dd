"""Whole-model tools: put cdropout's modules in place of torch.nn's, and convert a model
between the two dropout conventions by rescaling the weights that read dropped units."""

from collections import Counter
from typing import TypeVar

import torch

from cdropout import _params
from cdropout.torch import fusing, modules, reaching

# torch.nn's dropout modules and their cdropout drop-ins (exact types: a subclass of
# torch.nn.Dropout may do something else, and cdropout's own are subclasses)
SWAPS = {
    torch.nn.Dropout: modules.Dropout,
    torch.nn.Dropout1d: modules.Dropout1d,
    torch.nn.Dropout2d: modules.Dropout2d,
    torch.nn.Dropout3d: modules.Dropout3d,
    torch.nn.AlphaDropout: modules.AlphaDropout,
    torch.nn.FeatureAlphaDropout: modules.FeatureAlphaDropout,
}
# layers whose weights read the dropped units along axis 1: (out, in, ...) weights
CONSUMERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
# layers between a dropout and its consumer that pass each unit through unchanged
TRANSPARENT = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity)

Model = TypeVar("Model", bound=torch.nn.Module)


def swap_dropout(
    model: Model, stream: str = "counter", fuse: bool = True, functional: bool = False
) -> Model:
    """Replace, in place, every torch.nn Dropout, Dropout1d/2d/3d, AlphaDropout and
    FeatureAlphaDropout of `model` (and `model` itself, if it is one) by cdropout's,
    with the same p, inplace and training flag and the given stream; return the model.

    With `fuse` (the default), each nn.ReLU, or nn.LeakyReLU with a slope of at least
    0, directly followed in an nn.Sequential by a dropout, Dropout1d/2d/3d, and each
    nn.ReLU directly after one, runs with that dropout as one operation: one pass
    forward, a backward from the output alone, and under torch.compile one kernel with
    no mask saved. Such a Sequential becomes a FusingSequential (cdropout.torch.fusing),
    which decides at each call: every child stays what it is (``model[1]`` is still the
    ReLU, a slice still ends with it), and a pair with a hook is run apart, so that the
    hook sees what it sees in torch.nn's model.

    Each nn.MultiheadAttention (nn.TransformerEncoderLayer's and DecoderLayer's too)
    becomes a cdropout.torch.MultiheadAttention, in place: the same module
    and parameters, its attention dropout by cdropout's scaled_dot_product_attention.

    With `functional`, the dropouts the model's code calls as functions are
    cdropout's too: F.dropout and its variants, torch.dropout and
    F.scaled_dot_product_attention's dropout_p (as cdropout.torch.intercept runs them;
    keys from PyTorch's generator). The forwards of the model and of its own modules
    (classes that are not PyTorch's or cdropout's) run inside that mode, entered by
    forward hooks: the model keeps its class and state_dict, pickles, and
    torch.compile(model) traces the hooks; a layer recomputed by
    torch.utils.checkpoint (or Hugging Face's gradient_checkpointing_enable) enters
    the mode again and draws the forward's masks. A dropout that a checkpointed
    function calls outside any module of the model is refused in the forward, by
    name. torch.nn's recurrent layers' dropout (inside one PyTorch operator) stays
    PyTorch's.

    Every place of a module registered at several places is replaced (one drop-in for
    all of its places, as the module was one). Every dropout is checked first: a p
    that cdropout refuses (torch.nn takes NaN) raises ValueError naming the module, and
    nothing is changed.

    Raises
    ------
    TypeError
        For a TorchScript model (torch.jit.script), whose modules cannot be replaced.
    ValueError
        For a dropout whose p is not a probability.

    Examples
    --------
    >>> import torch, cdropout.torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.2))
    >>> cdropout.torch.swap_dropout(model)[1]
    Dropout(p=0.2, inplace=False)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "model must be a torch.nn.Module, got a TorchScript module "
            f"({type(model).__name__}): its modules are compiled and cannot be "
            "replaced; swap the dropouts of the Python model, then script or export it"
        )
    stream = _params.stream(stream)
    fuse = _params.flag(fuse, "fuse")
    functional = _params.flag(functional, "functional")
    if type(model) in SWAPS:
        return _swapped("", model, stream)
    # every (parent, name) of every dropout, duplicates included: named_children()
    # and named_modules() list a module registered twice only once
    places = []
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        for name, child in parent._modules.items():
            if type(child) in SWAPS:
                path = ".".join(filter(None, (parent_name, name)))
                places.append((parent, name, path, child))
    swapped = {}  # one drop-in per dropout module, made before anything changes
    for _, _, path, child in places:
        if id(child) not in swapped:
            swapped[id(child)] = _swapped(path, child, stream)
    for parent, name, _, child in places:
        parent._modules[name] = swapped[id(child)]
    for module in model.modules():  # attention dropout: the class, in place
        if type(module) is torch.nn.MultiheadAttention:
            module.__class__ = modules.MultiheadAttention
    if fuse:
        fusing.fuse(model)
    if functional:
        reaching.reach(model, stream)
    return model


def _swapped(path, module, stream):
    """cdropout's drop-in for a torch.nn dropout module (checked: ValueError naming
    the module for a p cdropout refuses)."""
    try:
        new = SWAPS[type(module)](module.p, module.inplace, stream=stream)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"module {path or type(module).__name__!r} cannot be swapped: {error}"
        ) from None
    new.train(module.training)
    return new


def convert_mode(model: Model, to_mode: str) -> Model:
    """Convert a model between the dropout conventions, in place; return it.

    For each cdropout Dropout (1d, 2d, 3d) module of another mode, the layer that
    reads its output, an nn.Linear or nn.Conv1d/2d/3d following it in an
    nn.Sequential (through Flatten, Unflatten or Identity), gets its weights multiplied
    by 1-p (classic to inverted) or 1/(1-p) (inverted to classic), never its bias, and
    the module's mode is switched. Training and evaluation outputs are unchanged up to
    rounding: the dropout paper's rule. A dropout module used at several places of the
    model has each of its consumers rescaled.

    Raises
    ------
    ValueError
        Naming the module, where rescaling could change what else the model computes
        or would not last, so the outputs could not be kept: a dropout module whose
        consumer cannot be established (not in an nn.Sequential, last in it, or
        followed by another kind of layer); a consumer that also reads other inputs
        (used at another place of the model), whose weight is shared with another
        layer (tied weights), computed (a parametrization such as weight_norm) or not
        yet initialised (a lazy module); inverted to classic with p = 1. Nothing is
        changed then.
    """
    to_mode = _params.mode(to_mode)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    # every place of every module and parameter: shared ones appear more than once
    places = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    tied = Counter(id(w) for _, w in model.named_parameters(remove_duplicate=False))
    plan = []  # (dropout module, consumer), all checked before anything changes
    for name, module in model.named_modules(remove_duplicate=False):
        if not _is_convertible(module) or module.mode == to_mode:
            continue
        consumer_name, consumer = _consumer(model, name)
        if to_mode == "classic" and module.p == 1.0:
            raise ValueError(
                f"module {name!r} has p = 1: inverted weights cannot be converted to "
                "classic ones (dividing by a keep probability of 0)"
            )
        _check_rescalable(name, consumer_name, consumer, places, tied)
        plan.append((module, consumer))
    with torch.no_grad():
        for module, consumer in plan:
            keep = 1.0 - module.p
            consumer.weight.mul_(keep if to_mode == "inverted" else 1.0 / keep)
        for module, _ in plan:  # (after: a shared module is planned once per place)
            module.mode = to_mode
    return model


def _check_rescalable(name, consumer_name, consumer, places, tied):
    """Refuses a consumer whose rescaled weights would change more than what reads
    the dropout `name`, or would not keep the rescaling."""
    where = f"module {name!r} feeds {consumer_name!r}, "
    if places[id(consumer)] > 1:
        raise ValueError(
            where + "which is used at more than one place of the model: rescaling "
            "its weights would change what it computes from its other inputs"
        )
    weight = consumer._parameters.get("weight")
    if not isinstance(weight, torch.nn.Parameter):
        raise ValueError(
            where + "whose weight is computed, not a parameter of its own (a "
            "parametrization or weight_norm): rescaling it would not last; rescale "
            "what it is computed from, with cdropout.rescale_weights"
        )
    if isinstance(weight, torch.nn.parameter.UninitializedParameter):
        raise ValueError(
            where + "whose weight is not initialised yet (a lazy module): run a "
            "forward pass first"
        )
    if tied[id(weight)] > 1:
        raise ValueError(
            where + "whose weight is shared with another layer (tied weights): "
            "rescaling it would change that layer too"
        )


def _is_convertible(module):
    return isinstance(module, modules._Module) and module.has_mode


def _consumer(model, name):
    """The layer that reads the output of the module called `name` in `model`, and
    its name."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if name else None  # "" is the model
    if not isinstance(parent, torch.nn.Sequential):
        raise ValueError(
            f"module {name or type(model).__name__!r} is not in an nn.Sequential: "
            "what reads its output cannot be established, so its weights cannot be "
            "rescaled; convert that layer's weights with cdropout.rescale_weights"
        )
    names = list(parent._modules)
    for index in range(names.index(child) + 1, len(names)):
        layer = parent._modules[names[index]]
        if isinstance(layer, CONSUMERS):
            return ".".join(filter(None, (parent_name, names[index]))), layer
        if not isinstance(layer, TRANSPARENT):
            raise ValueError(
                f"module {name!r} is followed by {type(layer).__name__}, not by an "
                "nn.Linear or nn.Conv1d/2d/3d: its consumer cannot be established"
            )
    raise ValueError(
        f"module {name!r} is the last of its nn.Sequential: what reads its output "
        "cannot be established"
    )
