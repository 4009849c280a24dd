"""swap_dropout(model, functional=True): the dropouts a model's code calls as
functions run through cdropout, the model unchanged otherwise (class, state_dict,
pickling, deep copies, torch.compile(model)); activation checkpointing recomputes the
forward's masks; what the switch cannot reach is refused by name."""

import copy
import io
import statistics

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import torch.nn.functional as F  # noqa: E402

import cdropout.torch as ct  # noqa: E402
from cdropout.torch import reaching  # noqa: E402

from example_support import example  # noqa: E402
from torch_support import (  # noqa: E402, F401
    OPCHECK_NON_LEAF_GRAD,
    PyTorchDropouts,
    assert_within_seed_band,
    counted_dropout_elements,
    fresh_compilations,
)


def _gpt(**options):
    torch.manual_seed(0)
    return example("small_gpt").SmallGPT(**options)


def _data(seed=1):
    return torch.randint(0, 64, (4, 32), generator=torch.Generator().manual_seed(seed))


def _step(model, data, seed):
    """Loss and gradients of one training step, masks from torch.manual_seed(seed)."""
    model.zero_grad()
    torch.manual_seed(seed)
    loss = model(data, data)
    loss.backward()
    return loss, [p.grad.clone() for p in model.parameters()]


def test_every_dropout_element_of_a_step_is_cdropouts_and_none_is_pytorchs():
    model, data = ct.swap_dropout(_gpt(), functional=True), _data()
    with PyTorchDropouts() as pytorch, counted_dropout_elements(model) as counted:
        model(data, data).backward()
    assert pytorch.seen == []
    batch, length, width, heads, layers = 4, 32, 32, 4, 2
    expected = (1 + 2 * layers) * batch * length * width  # embeddings, residuals
    expected += layers * batch * heads * length * length  # attention probabilities
    assert counted["elements"] == expected
    assert reaching._entries() == []  # the mode left with the model's call


def test_without_functional_the_attention_dropout_stays_pytorchs():
    model, data = ct.swap_dropout(_gpt()), _data()
    with PyTorchDropouts() as pytorch:
        model(data, data)
    assert len(pytorch.seen) == 2  # one PyTorch mask per layer's attention


def test_the_model_keeps_its_class_state_and_pickles_with_the_switch():
    plain = _gpt()
    model = ct.swap_dropout(_gpt(), functional=True)
    assert type(model) is type(plain)
    assert model.state_dict().keys() == plain.state_dict().keys()
    data = _data()
    expected, _ = _step(model, data, seed=3)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for again in (torch.load(buffer, weights_only=False), copy.deepcopy(model)):
        with PyTorchDropouts() as pytorch:
            loss, _ = _step(again, data, seed=3)
        assert pytorch.seen == [] and torch.equal(loss, expected)
    plain.load_state_dict(model.state_dict())  # torch.nn's model reads its checkpoint


def test_a_second_swap_adds_no_hooks_and_the_mode_is_left_when_a_call_raises():
    model = ct.swap_dropout(_gpt(), functional=True)
    hooks = [len(m._forward_pre_hooks) for m in model.modules()]
    ct.swap_dropout(model, functional=True)
    assert [len(m._forward_pre_hooks) for m in model.modules()] == hooks
    with pytest.raises(IndexError):
        model(torch.full((2, 8), 99), torch.zeros(2, 8, dtype=torch.long))
    assert reaching._entries() == []
    assert torch.overrides._get_current_function_mode_stack() == []

    def refuse(module, args):
        raise KeyError("a hook of the user's")

    model = _gpt()
    model.blocks[0].register_forward_pre_hook(refuse)  # (before the swap's)
    ct.swap_dropout(model, functional=True)
    with pytest.raises(KeyError):
        model(_data(), _data())
    assert reaching._entries() == []
    assert torch.overrides._get_current_function_mode_stack() == []


def test_swap_refuses_a_functional_flag_that_is_not_a_bool():
    with pytest.raises(TypeError, match="functional must be a bool, got str"):
        ct.swap_dropout(_gpt(), functional="yes")


@pytest.mark.parametrize("reentrant", [False, True])
def test_a_checkpointed_layer_recomputes_the_forwards_masks(reentrant):
    model, data = ct.swap_dropout(_gpt(), functional=True), _data()
    loss, grads = _step(model, data, seed=5)
    for block in model.blocks:  # each block's forward checkpointed, as HF's layers
        block.forward = _checkpointed(block.forward, reentrant)
    again, checkpointed = _step(model, data, seed=5)
    assert torch.equal(again, loss)
    for a, b in zip(checkpointed, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def _checkpointed(forward, reentrant):
    def run(x):
        return torch.utils.checkpoint.checkpoint(forward, x, use_reentrant=reentrant)

    return run


@pytest.mark.parametrize("reentrant", [False, True])
def test_a_dropout_a_checkpointed_function_calls_outside_modules_is_refused(reentrant):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 8)

        def forward(self, x):
            return torch.utils.checkpoint.checkpoint(
                lambda t: F.dropout(self.linear(t).sin(), 0.5), x,
                use_reentrant=reentrant,
            )  # fmt: skip

    model = ct.swap_dropout(Model(), functional=True)
    with pytest.raises(RuntimeError, match="outside any module of the model"):
        model(torch.randn(4, 8, requires_grad=True))
    assert reaching._entries() == []


# (PyTorch 2.13's dynamo reads .grad of the forward's non-leaf output at the hook)
@pytest.mark.filterwarnings(OPCHECK_NON_LEAF_GRAD)
@pytest.mark.usefixtures("fresh_compilations")
def test_torch_compile_of_the_model_draws_the_eager_masks():
    model, data = ct.swap_dropout(_gpt(), functional=True), _data()
    eager, eager_grads = _step(model, data, seed=7)
    with torch._inductor.config.patch(fallback_random=True):  # PyTorch's randint
        compiled, compiled_grads = _step(torch.compile(model), data, seed=7)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.equal(_step(ct.swap_dropout(_gpt()), data, seed=7)[0], eager)


def _final_loss(model, seed, steps=25):
    """The mean loss of the last 5 of `steps` AdamW steps, masks from `seed`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    losses = []
    for _ in range(steps):
        data = torch.randint(0, 64, (8, 32), generator=generator)
        loss = model(data, data.roll(-1, dims=1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return statistics.fmean(losses[-5:])


def test_a_short_training_run_stays_within_torch_nns_seed_band():
    seeds = range(6)
    pytorch = [_final_loss(_gpt(), seed) for seed in seeds]
    ours = [_final_loss(ct.swap_dropout(_gpt(), functional=True), s) for s in seeds]
    assert_within_seed_band(ours, pytorch)
