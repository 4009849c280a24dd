"""cdropout.torch on every device: meta tensors (shape only, as when a model is built
under torch.device("meta")), default-device contexts (which never reach CPU calls),
and tensors on devices other than the CPU, which get PyTorch's own dropout there, in
the call's convention. No GPU here: the other-device route is taken by CPU tensors
with the kernel's device test turned off (functional.runs_on_kernel); .ci/gpu_check.py
runs a swapped model on a GPU where one is lent."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout.torch as ct  # noqa: E402
from cdropout.torch import functional as fn  # noqa: E402


def _model():
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(16, 16),
        torch.nn.Dropout1d(0.3),
        torch.nn.AlphaDropout(0.2),
        torch.nn.Linear(16, 2),
    )


def test_a_default_device_context_never_reaches_cpu_calls_or_later_ones():
    # the thread's key buffer and every new tensor are made on the CPU: before, a call
    # inside the context failed, and every later seed=None call of the thread too
    x, transposed = torch.ones(64), torch.ones(16, 4).t()
    seeded = ct.Dropout(0.5, seed=2)
    for context in (lambda: torch.device("meta"), _default_device_meta):
        with context():
            for y in (
                ct.dropout(x, 0.5),
                ct.dropout(transposed, 0.5, seed=1),
                ct.dropout(transposed, 0.5),
                ct.Dropout2d(0.5)(torch.ones(2, 3, 4, 4, device="cpu")),
                ct.alpha_dropout(transposed, 0.5, True),
                seeded(x),
            ):
                assert y.device.type == "cpu" and y.abs().sum() > 0
        assert ct.dropout(x, 0.5).device.type == "cpu"


class _default_device_meta:
    def __enter__(self):
        torch.set_default_device("meta")

    def __exit__(self, *exc):
        torch.set_default_device(None)


@pytest.mark.parametrize("swap_first", [False, True])
def test_a_model_built_on_the_meta_device_runs_and_materialises(swap_first):
    # PyTorch's lazy initialisation: build on meta, swap, run shape-only, then
    # to_empty() on the CPU and initialise; the swapped dropouts follow
    with torch.device("meta"):
        model = _model()
        if swap_first:
            ct.swap_dropout(model)
    if not swap_first:
        ct.swap_dropout(model)
    state = torch.get_rng_state()
    y = model(torch.ones(4, 8, device="meta"))
    assert y.device.type == "meta" and y.shape == (4, 2)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn on meta
    model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    assert model(torch.ones(4, 8)).device.type == "cpu"


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ct.dropout(x, 0.5),
        lambda x: ct.dropout(x, 0.5, inplace=True),
        lambda x: ct.dropout(x, 0.5, mode="classic", noise_shape=(None, 1)),
        lambda x: ct.dropout(x, 0.5, training=False, mode="classic"),
        lambda x: ct.alpha_dropout(x, 0.3, True),
        lambda x: ct.dropout2d(x.reshape(2, 3, 2, 2), 0.5),
        lambda x: ct.Dropout(0.5, seed=3)(x),
    ],
)
def test_meta_tensors_give_shape_only_results(call):
    x = torch.empty(6, 4, device="meta")
    y = call(x)
    assert y.device.type == "meta" and y.numel() == 24


def _elsewhere(monkeypatch):
    """CPU tensors take the route of tensors on other devices (the common call reads
    the device itself, and is turned off)."""
    monkeypatch.setattr(fn, "runs_on_kernel", lambda input: False)
    monkeypatch.setattr(fn, "_common_call", lambda *args: NotImplemented)


def test_other_devices_get_pytorchs_dropout_in_each_convention(monkeypatch):
    _elsewhere(monkeypatch)
    x = torch.randn(2000, dtype=torch.float64)
    for inplace in (False, True):
        torch.manual_seed(4)
        theirs = torch.nn.functional.dropout(x.clone(), 0.3, True, inplace)
        torch.manual_seed(4)
        ours = ct.dropout(x.clone(), 0.3, inplace=inplace)
        assert torch.equal(ours, theirs)  # PyTorch's own call: its bytes
        torch.manual_seed(4)
        alpha = torch.nn.functional.alpha_dropout(x.clone(), 0.3, True, inplace)
        torch.manual_seed(4)
        assert torch.equal(ct.alpha_dropout(x.clone(), 0.3, True, inplace), alpha)
    # classic: the same Bernoulli mask, kept elements unscaled; evaluation * (1 - p)
    torch.manual_seed(4)
    classic = ct.dropout(x, 0.3, mode="classic")
    torch.manual_seed(4)
    inverted = ct.dropout(x, 0.3, generator=None, noise_shape=(None,))  # mask path
    assert torch.equal(classic == 0, inverted == 0)
    kept = classic != 0
    assert torch.equal(classic[kept], x[kept])
    assert torch.allclose(inverted[kept], x[kept] / 0.7)
    evaluated = ct.dropout(x, 0.3, training=False, mode="classic")
    assert torch.equal(evaluated, x * 0.7)
    # channels: one decision per (N, C)
    images = torch.ones(8, 6, 3, 3)
    y = ct.Dropout2d(0.5, mode="classic")(images)
    assert set(y.sum(dim=(2, 3)).unique().tolist()) <= {0.0, 9.0}
    assert torch.equal(ct.dropout(x, 1.0), x * 0.0)


def test_a_swapped_model_trains_on_another_device_and_back(monkeypatch):
    # what model.to("cuda") does to a swapped model, every dropout through PyTorch's
    # own there: forward, backward and an SGD step, eager and seeded alike
    torch.manual_seed(0)
    model = ct.swap_dropout(_model())
    model[2].seed = 7  # a seeded module: PyTorch's generator there (seed not applied)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _elsewhere(monkeypatch)
    calls = int(model[2].calls)
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(torch.randn(32, 8)).square().mean()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and int(model[2].calls) == calls
    model.eval()
    x = torch.randn(4, 8)
    assert torch.equal(model(x), model(x))  # evaluation: no randomness
