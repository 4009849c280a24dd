"""A real client: Hugging Face transformers' GPT-2 and BERT (small configs, random
weights, no download), "eager" and "sdpa" attention, after
swap_dropout(model, functional=True): every dropout element of a training step is
cdropout's, training stays within torch.nn's seed band, and the library's own ways of
using a model keep working (save_pretrained/from_pretrained, generate, activation
checkpointing, torch.compile). Skipped without transformers (CI installs the newest
release in a leg of its own)."""

import statistics

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")
transformers = pytest.importorskip("transformers")

import cdropout.torch as ct  # noqa: E402

from torch_support import (  # noqa: E402, F401
    OPCHECK_NON_LEAF_GRAD,
    PyTorchDropouts,
    assert_within_seed_band,
    counted_dropout_elements,
    fresh_compilations,
)

BATCH, LENGTH, WIDTH, HEADS, LAYERS, VOCABULARY = 4, 16, 32, 4, 2, 96
CLIENTS = [(kind, attention) for kind in ("gpt2", "bert")
           for attention in ("eager", "sdpa")]  # fmt: skip


def _model(kind, attention, dropout=0.1):
    """A model of `kind` with random weights (torch.manual_seed(0)), in training."""
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(
            n_layer=LAYERS, n_embd=WIDTH, n_head=HEADS, vocab_size=VOCABULARY,
            n_positions=LENGTH, resid_pdrop=dropout, embd_pdrop=dropout,
            attn_pdrop=dropout,
        )  # fmt: skip
        model = transformers.AutoModelForCausalLM.from_config(
            config, attn_implementation=attention
        )
    else:
        config = transformers.BertConfig(
            num_hidden_layers=LAYERS, hidden_size=WIDTH, num_attention_heads=HEADS,
            intermediate_size=4 * WIDTH, vocab_size=VOCABULARY,
            max_position_embeddings=LENGTH, hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
        )  # fmt: skip
        model = transformers.AutoModelForMaskedLM.from_config(
            config, attn_implementation=attention
        )
    assert model.config._attn_implementation == attention
    return model.train()


def _tokens(seed, batch=BATCH):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCABULARY, (batch, LENGTH), generator=generator)


def _step(model, tokens, seed):
    """Loss and gradients of one training step, masks from torch.manual_seed(seed)."""
    model.zero_grad()
    torch.manual_seed(seed)
    loss = model(input_ids=tokens, labels=tokens).loss
    loss.backward()
    return loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("kind, attention", CLIENTS)
def test_every_dropout_element_of_a_training_step_is_cdropouts(kind, attention):
    model = ct.swap_dropout(_model(kind, attention), functional=True)
    with PyTorchDropouts() as pytorch, counted_dropout_elements(model) as counted:
        model(input_ids=_tokens(1), labels=_tokens(1)).loss.backward()
    assert pytorch.seen == []
    hidden = BATCH * LENGTH * WIDTH  # embeddings, then two residual branches a layer
    probabilities = BATCH * HEADS * LENGTH * LENGTH
    assert counted["elements"] == hidden + LAYERS * (probabilities + 2 * hidden)


@pytest.mark.parametrize("kind, attention", CLIENTS)
def test_without_the_switch_the_attention_dropout_is_pytorchs(kind, attention):
    model = ct.swap_dropout(_model(kind, attention))
    with PyTorchDropouts() as pytorch:
        model(input_ids=_tokens(1), labels=_tokens(1))
    assert len(pytorch.seen) == LAYERS


def _final_loss(model, seed, steps=20):
    """The mean loss of the last 5 of `steps` AdamW steps, masks from `seed`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(seed)
    losses = []
    for step in range(steps):
        tokens = _tokens(step, batch=8) % 8  # the same data; a small vocabulary
        loss = model(input_ids=tokens, labels=tokens).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return statistics.fmean(losses[-5:])


@pytest.mark.parametrize("kind, attention", CLIENTS)
def test_a_short_training_run_stays_within_torch_nns_seed_band(kind, attention):
    seeds = range(6)
    pytorch = [_final_loss(_model(kind, attention, 0.3), seed) for seed in seeds]
    ours = [
        _final_loss(ct.swap_dropout(_model(kind, attention, 0.3), functional=True), s)
        for s in seeds
    ]
    assert_within_seed_band(ours, pytorch)


@pytest.mark.parametrize("kind, attention", CLIENTS)
def test_save_pretrained_and_from_pretrained_round_trip(kind, attention, tmp_path):
    model = ct.swap_dropout(_model(kind, attention), functional=True)
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path, attn_implementation=attention)
    saved = model.state_dict()
    assert loaded.state_dict().keys() == saved.keys()
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, saved[name]), name
    loaded = ct.swap_dropout(loaded.train(), functional=True)
    assert torch.equal(_step(loaded, _tokens(2), 9)[0], _step(model, _tokens(2), 9)[0])


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_generate_in_evaluation_is_the_models(attention):
    plain = _model("gpt2", attention).eval()
    model = ct.swap_dropout(_model("gpt2", attention), functional=True).eval()
    prompt = _tokens(3)[:, :4]
    options = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(model.generate(prompt, **options),
                       plain.generate(prompt, **options))  # fmt: skip


def _enable_checkpointing(model, reentrant):
    options = {"use_reentrant": reentrant}
    if hasattr(model, "activation_checkpointing_enable"):  # (5.x's name)
        model.activation_checkpointing_enable(options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("kind, attention", CLIENTS)
def test_activation_checkpointing_recomputes_the_forwards_masks(
    kind, attention, reentrant
):
    model = ct.swap_dropout(_model(kind, attention), functional=True)
    loss, grads = _step(model, _tokens(4), seed=5)
    _enable_checkpointing(model, reentrant)
    with PyTorchDropouts() as pytorch:
        again, checkpointed = _step(model, _tokens(4), seed=5)
    assert pytorch.seen == []  # the recomputation's dropouts are cdropout's too
    assert torch.equal(again, loss)
    for a, b in zip(checkpointed, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# (dynamo reads .grad of the loss's non-leaf logits while tracing transformers' loss)
@pytest.mark.filterwarnings(OPCHECK_NON_LEAF_GRAD)
@pytest.mark.usefixtures("fresh_compilations")
@pytest.mark.parametrize("kind, attention", [("gpt2", "eager"), ("bert", "sdpa")])
def test_torch_compile_of_the_model_draws_the_eager_masks(kind, attention):
    model = ct.swap_dropout(_model(kind, attention), functional=True)
    eager, eager_grads = _step(model, _tokens(6), seed=7)
    with torch._inductor.config.patch(fallback_random=True):  # PyTorch's randint
        compiled, compiled_grads = _step(torch.compile(model), _tokens(6), seed=7)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
