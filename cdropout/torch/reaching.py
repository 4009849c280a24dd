"""swap_dropout(model, functional=True): the dropouts a model's code calls as functions
(F.dropout on attention probabilities, F.scaled_dot_product_attention's dropout_p,
torch.dropout) run through cdropout, without editing the model.

Each forward of the model, and of each of its modules whose class is not PyTorch's or
cdropout's own, runs inside one cdropout.torch.intercept mode, entered by a forward
pre-hook and left by an always-called forward hook. The model keeps its class,
parameters and state_dict; the hooks are module-level functions, so the model still
pickles (torch.save) and deep-copies, and torch.compile(model) traces them with the
model.

Why hooks on the inner modules and not only on the model: activation checkpointing
(torch.utils.checkpoint, Hugging Face's gradient_checkpointing_enable) recomputes a
layer in the backward pass, outside the model's call and so outside the mode; the
layer's own modules enter it again there. Keys come from PyTorch's generator, which
checkpoint restores, so the recomputation draws the forward's masks. A dropout that a
checkpointed function calls outside any module of the model cannot be reached in the
recomputation: it is refused, by name, in the forward.
"""

import functools
import threading

from cdropout.torch import _state
from cdropout.torch.interception import intercept


class _ModelMode(intercept):
    """The intercept a swapped model runs in: a dropout inside a checkpoint is
    served when the innermost module call around it started inside that checkpoint
    (its recomputation enters the mode again), and refused otherwise."""

    def check_checkpoint(self):
        region = _state.checkpoint_region()
        if region is not None and region is not _entries()[-1]:
            raise RuntimeError(
                "a dropout inside torch.utils.checkpoint, called outside any module "
                "of the model swapped with functional=True: the checkpoint's "
                "recomputation would run it as PyTorch's (another mask, wrong "
                "gradients). Checkpoint a module call, or give the checkpoint the "
                "mode: checkpoint(f, x, use_reentrant=False, "
                "context_fn=cdropout.torch.checkpoint_context())"
            )


_MODES = {stream: _ModelMode(stream=stream) for stream in ("counter", "xoshiro")}
_LOCAL = threading.local()


def _entries():
    """This thread's open module calls, innermost last: the checkpoint region each
    started in (None outside one)."""
    entries = getattr(_LOCAL, "entries", None)
    if entries is None:
        entries = _LOCAL.entries = []
    return entries


def enter(stream):
    """Opens a module call of this thread: the outermost enters the mode."""
    entries = _entries()
    entries.append(_state.checkpoint_region())
    if len(entries) == 1:
        _MODES[stream].__enter__()


def leave(stream):
    """Closes this thread's innermost module call: the outermost leaves the mode."""
    entries = _entries()
    entries.pop()
    if not entries:
        _MODES[stream].__exit__(None, None, None)


def _enter_hook(stream, module, args):
    """Forward pre-hook."""
    enter(stream)


def _leave_hook(stream, module, args, output):
    """Forward hook, called also when the forward or another hook raises."""
    leave(stream)


def _reaches(module):
    """Whether `module` already runs in a mode (a second swap adds no hooks)."""
    return any(
        isinstance(hook, functools.partial) and hook.func is _enter_hook
        for hook in module._forward_pre_hooks.values()
    )


def _own_code(module):
    """Whether `module`'s class is the model's own code, not PyTorch's or cdropout's
    (whose modules call no functional dropout, or enter the mode themselves:
    cdropout.torch.MultiheadAttention)."""
    package = type(module).__module__.partition(".")[0]
    return package not in ("torch", "cdropout")


def reach(model, stream):
    """Hooks `model` and its own modules so that their forwards run in the mode."""
    for module in model.modules():
        if (module is model or _own_code(module)) and not _reaches(module):
            # entered first and left last (also when a forward or another hook
            # raises), so that every call's entry and exit pair up
            module.register_forward_pre_hook(
                functools.partial(_enter_hook, stream), prepend=True
            )
            module.register_forward_hook(
                functools.partial(_leave_hook, stream), always_call=True
            )
