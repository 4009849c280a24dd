"""Every question cdropout.torch asks of PyTorch's private state, named once.

cdropout.torch runs a call one of two ways: eagerly, on the tensor's memory (an
autograd.Function around cdropout's kernel), or as registered operators, which tracers
(torch.compile, torch.export, fake tensors, dispatch modes, functionalization) can
record. Which way depends on questions PyTorch answers only through private functions;
each is asked here and nowhere else, so that a PyTorch release that moves one breaks
this file. Checked on PyTorch 2.13.0 and 2.14.1; the public ones (torch.compiler,
torch.overrides, torch.autograd.graph, torch.fx) are used where they exist.
"""

import sys

import torch
import torch.utils.checkpoint
from torch.autograd import forward_ad

_functorch = torch._C._functorch


def compiling():
    """Whether torch.compile or torch.export (dynamo) is tracing this call."""
    return torch.compiler.is_compiling()


def exporting():
    """Whether torch.export (not torch.compile) is tracing this call."""
    return torch.compiler.is_exporting()


def transforms_active():
    """Whether a torch.func transform (grad, vmap, jvp, functionalize...) is active."""
    return torch._C._are_functorch_transforms_active()


def dispatch_mode_active():
    """Whether a TorchDispatchMode (fake tensors, FlopCounter, ...) is active."""
    return torch._C._len_torch_dispatch_stack() > 0


def dual_level_open():
    """Whether forward-mode AD (torch.autograd.forward_ad) has a dual level open."""
    return forward_ad._current_level >= 0


def is_functional(tensor):
    """Whether `tensor` is a FunctionalTensorWrapper (torch.func.functionalize)."""
    return _functorch.is_functionaltensor(tensor)


def is_batched(tensor):
    """Whether `tensor` is batched by torch.func.vmap."""
    return _functorch.is_batchedtensor(tensor)


def is_legacy_batched(tensor):
    """Whether `tensor` is batched by PyTorch's legacy vmap (vectorized jacobians and
    gradcheck's batched checks), which has no memory to read."""
    return _functorch.is_legacy_batchedtensor(tensor)


def eager(input):
    """Whether a call on `input` runs outside any tracer or dispatch mode. torch.func's
    transforms count as eager (cdropout's autograd.Functions have their rules), except
    functionalize, which takes the operators."""
    return (
        type(input) is torch.Tensor
        and not compiling()
        and not dispatch_mode_active()
        and not (transforms_active() and is_functional(input))
    )


def autograd_sees(input):
    """Whether an eager call must go through an autograd.Function: for backward
    (grad enabled and `input` requires grad), forward-mode AD or a torch.func
    transform. Otherwise the call runs bare."""
    return (
        (input.requires_grad and torch.is_grad_enabled())
        or dual_level_open()
        or transforms_active()
    )


def plain_autograd():
    """Whether autograd is the only thing that sees an eager call: no forward-mode AD
    and no torch.func transform. Such calls take an autograd.Function written the old
    way (forward(ctx, ...)), which PyTorch applies without binding the arguments to
    forward's signature, as it does for every call of a Function that has a
    setup_context (bench/NOTES.md, "The eager PyTorch path")."""
    return not dual_level_open() and not transforms_active()


_C_APPLY = torch._C._FunctionBase.__dict__["apply"]


def plain_apply(function):
    """`function.apply` for an autograd.Function written the old way, without
    PyTorch's Python layer: 2.13's apply is a classmethod that checks for a
    setup_context and for transforms and unwraps dead torch.func wrappers (tensors
    leaked from a finished transform) in Python before the C apply; 2.14's apply is the
    C apply. Only the input is a tensor here, so it alone is unwrapped."""
    c_apply = _C_APPLY.__get__(None, function)
    unwrap = _functorch.unwrap_if_dead

    def apply(input, *arguments):
        return c_apply(unwrap(input), *arguments)

    return apply


def inside_backward():
    """Whether this call runs during a backward pass (as activation checkpointing's
    recomputation does)."""
    return torch._C._current_graph_task_id() != -1


# views that autograd refuses to see modified in place (outputs of unbind or split,
# views made under no_grad or inference mode, views made inside a custom Function)
_NO_INPLACE_VIEWS = {
    torch._C._autograd.CreationMeta.MULTI_OUTPUT_NODE,
    torch._C._autograd.CreationMeta.NO_GRAD_MODE,
    torch._C._autograd.CreationMeta.INFERENCE_MODE,
    torch._C._autograd.CreationMeta.IN_CUSTOM_FUNCTION,
}


def inplace_view_refused(tensor):
    """Whether autograd would refuse an in-place write to `tensor` (a view whose
    creation forbids it), asked before the write so that nothing is drawn first."""
    return (
        torch.is_grad_enabled()
        and tensor.requires_grad
        and tensor._is_view()
        and torch._C._autograd._get_creation_meta(tensor) in _NO_INPLACE_VIEWS
    )


def values_not_in_memory(tensor):
    """Whether `tensor`'s memory does not hold its values: a negative view (its memory
    holds -tensor) or a ZeroTensor (no memory; autograd's zero gradients). Such a
    tensor is read through a copy, and is immutable (ZeroTensor) or written through
    copy_ (negative view)."""
    return tensor.is_neg() or tensor._is_zerotensor()


def immutable(tensor):
    """Whether PyTorch refuses any write to `tensor` (a ZeroTensor)."""
    return tensor._is_zerotensor()


def fx_proxy(value):
    """Whether `value` is a torch.fx Proxy (symbolic tracing)."""
    return type(value) is not torch.Tensor and isinstance(value, torch.fx.Proxy)


def record_module_call(module, proxy):
    """Record a call of `module` as torch.fx records torch.nn's modules (a call_module
    node, run when the traced graph runs), so that train() and eval() still switch it
    after tracing: torch.fx traces through modules defined outside torch.nn."""
    tracer = proxy.tracer
    return tracer.create_proxy(
        "call_module", tracer.path_of_module(module), (proxy,), {}
    )


def checkpoint_forward():
    """Whether this call runs in the forward pass of torch.utils.checkpoint, whose
    recomputation runs in the backward pass without the TorchFunctionModes that were
    active."""
    return checkpoint_region() is not None


# the reentrant checkpoint's forward (use_reentrant=True): an autograd.Function's
_REENTRANT_FORWARD = torch.utils.checkpoint.CheckpointFunction.forward.__code__


def checkpoint_region():
    """The innermost torch.utils.checkpoint forward this call runs in, as an object
    that tells one checkpoint from another, or None outside one: the non-reentrant
    form's saved-tensors hook, or the reentrant form's frame (its forward runs with
    gradients off, so the stack is read only then). Not asked under torch.compile,
    which cannot trace the question (and records checkpoint as a region of its own):
    None there."""
    if compiling():
        return None
    hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    pack = hooks[0] if hooks else None
    if getattr(pack, "__qualname__", "").startswith("_checkpoint_hook."):
        return pack
    if torch.is_grad_enabled():
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not _REENTRANT_FORWARD:
        frame = frame.f_back
    return frame


def global_module_hooks():
    """Whether hooks registered for every module (torch.nn.modules.module's
    register_module_forward_hook and its kin) are in force."""
    hooks = torch.nn.modules.module
    return bool(
        hooks._global_forward_hooks
        or hooks._global_forward_pre_hooks
        or hooks._global_backward_hooks
        or hooks._global_backward_pre_hooks
    )


def make_non_persistent(module, name, non_persistent):
    """Keep the buffer `name` of `module` out of its state_dict (or put it back):
    register_buffer's persistent flag, for a buffer already registered."""
    if non_persistent:
        module._non_persistent_buffers_set.add(name)
    else:
        module._non_persistent_buffers_set.discard(name)
