"""cdropout.torch's modules and model tools: per-call streams of seeded modules and
their state, swap_dropout and convert_mode."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout  # noqa: E402
import cdropout.torch as ct  # noqa: E402

from torch_support import JIT_SCRIPT_DEPRECATED  # noqa: E402


def test_a_module_resumed_from_its_state_dict_draws_the_uninterrupted_masks():
    x = torch.ones(64)
    run = ct.Dropout(0.5, seed=11)
    outputs = [run(x) for _ in range(5)]
    first = ct.Dropout(0.5, seed=11)
    for _ in range(3):
        first(x)
    state = first.state_dict()
    assert int(state["calls"]) == 3
    resumed = ct.Dropout(0.5, seed=11)
    resumed.load_state_dict(state)
    assert torch.equal(resumed(x), outputs[3]) and torch.equal(resumed(x), outputs[4])
    # the NumPy layer's stream: call k of seed s is cdropout._kernel.call_seed(s, k)
    layer = cdropout.Dropout(0.5, seed=11, stream="counter")
    assert np.array_equal(outputs[0].numpy(), layer(np.ones(64, np.float32)))



_SEEDED = [  # every module class, seeded, with an input of a rank it takes
    (lambda: ct.Dropout(0.5, seed=4), (3, 8)),
    (lambda: ct.Dropout1d(0.5, seed=4), (3, 8, 2)),
    (lambda: ct.Dropout2d(0.5, seed=4), (3, 8, 2, 2)),
    (lambda: ct.Dropout3d(0.5, seed=4), (3, 8, 2, 2, 1)),
    (lambda: ct.AlphaDropout(0.5, seed=4), (3, 8)),
    (lambda: ct.FeatureAlphaDropout(0.5, seed=4), (3, 8, 2)),
]


def _first_masks(model, shape, calls=2):
    return [model(torch.ones(shape)) for _ in range(calls)]


@pytest.mark.parametrize("make, shape", _SEEDED, ids=[
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "Alpha", "FeatureAlpha"
])  # fmt: skip
def test_a_module_built_on_meta_and_materialised_draws_fresh_masks(make, shape):
    # deferred initialisation (FSDP's): build on meta, to_empty, reset_parameters;
    # to_empty once left the call counter uninitialised memory: another stream
    fresh = torch.nn.Sequential(make(), torch.nn.Identity())
    with torch.device("meta"):
        deferred = torch.nn.Sequential(make(), torch.nn.Linear(2, 2))
    assert deferred[0].calls.is_cpu  # a real counter: state, not data on meta
    deferred.to_empty(device="cpu")
    for module in deferred.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    assert int(deferred[0].calls) == 0
    expected = _first_masks(fresh[0], shape)
    for got, want in zip(_first_masks(deferred[0], shape), expected, strict=True):
        assert torch.equal(got, want)


def test_the_call_counter_stays_on_the_cpu_with_its_value_through_moves_and_casts():
    layer = ct.Dropout(0.5, seed=4)
    layer(torch.ones(4)), layer(torch.ones(4))
    for move in (
        lambda m: m.to(torch.float16), lambda m: m.double(), lambda m: m.to("meta"),
        lambda m: m.to_empty(device="cpu"), lambda m: m.share_memory(),
        lambda m: m.to("cpu"),
    ):  # fmt: skip
        move(layer)
        assert layer.calls.is_cpu and layer.calls.dtype == torch.int64
        assert int(layer.calls) == 2
    # a device context builds a CPU counter too (under "cuda" without CUDA, the build
    # of every module once failed)
    for device in ("meta", "cuda"):
        with torch.device(device):
            built = ct.Dropout(0.5, seed=1)
        assert built.calls.is_cpu and int(built.calls) == 0


def test_state_dicts_load_both_ways_between_seeded_cdropout_and_torch_nn_models():
    def model(dropout):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 4), dropout)

    plain, seeded = model(torch.nn.Dropout(0.5)), model(ct.Dropout(0.5, seed=9))
    seeded(torch.ones(2, 4)), seeded(torch.ones(2, 4))
    # torch.nn's checkpoint into a seeded model: strict, the counter kept as it is
    seeded.load_state_dict(plain.state_dict())
    assert int(seeded[1].calls) == 2
    # seeded into seeded: the counter restored
    resumed = model(ct.Dropout(0.5, seed=9))
    resumed.load_state_dict(seeded.state_dict())
    assert int(resumed[1].calls) == 2
    assert torch.equal(resumed(torch.ones(2, 4)), seeded(torch.ones(2, 4)))
    # into torch.nn's model: the counter is the one key torch.nn lacks; seed=None
    # leaves it out (the documented way to hand weights to a torch.nn model)
    result = plain.load_state_dict(seeded.state_dict(), strict=False)
    assert result.unexpected_keys == ["1.calls"] and result.missing_keys == []
    seeded[1].seed = None
    plain.load_state_dict(seeded.state_dict())


def test_only_a_seeded_module_keeps_its_call_number_in_the_state_dict():
    # without a seed the state_dict is torch.nn's: a checkpoint loads (strict) before
    # and after swap_dropout, and into the torch.nn model
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)
        )

    plain = model()
    swapped = ct.swap_dropout(model())
    assert list(swapped.state_dict()) == list(plain.state_dict())
    swapped.load_state_dict(plain.state_dict())
    plain.load_state_dict(swapped.state_dict())
    layer = ct.Dropout(0.5, seed=3)
    assert list(layer.state_dict()) == ["calls"]
    layer.seed = None  # the attribute decides, whenever it is set
    assert list(layer.state_dict()) == []
    layer.seed = 2**64 - 1
    assert list(layer.state_dict()) == ["calls"]
    for seed, error in [("3", TypeError), (-1, ValueError), (2**64, ValueError)]:
        with pytest.raises(error, match="seed must"):
            layer.seed = seed
    assert layer.seed == 2**64 - 1


@pytest.mark.parametrize(
    "name, value, error",
    [
        ("p", 1.5, ValueError),
        ("mode", "bogus", ValueError),
        ("inplace", "y", TypeError),
    ],
)
def test_a_seeded_module_with_a_bad_attribute_refuses_before_taking_a_call(
    name, value, error
):
    layer = ct.Dropout(0.5, seed=3)
    setattr(layer, name, value)
    x = torch.ones(8)
    with pytest.raises(error, match=name):
        layer(x)
    assert int(layer.calls) == 0 and torch.equal(x, torch.ones(8))


def test_a_seeded_module_called_from_threads_gives_each_call_its_own_number():
    # the NumPy layer's rule: 8 threads calling one module take 2,400 distinct
    # call numbers, so 2,400 different streams (without the lock some were shared)
    import concurrent.futures

    layer, x = ct.Dropout(0.5, seed=3), torch.ones(4096)

    def masks(_):
        return [tuple(torch.nonzero(layer(x)).flatten().tolist()) for _ in range(300)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        drawn = [mask for ms in pool.map(masks, range(8)) for mask in ms]
    assert int(layer.calls) == 2400
    assert len(set(drawn)) == 2400  # 4,096 elements: two streams never share a mask


def test_swap_dropout_replaces_every_torch_dropout_and_keeps_their_settings():
    model = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Dropout1d(0.2, inplace=True),
        torch.nn.Sequential(torch.nn.Dropout2d(0.3), torch.nn.Dropout3d(0.4)),
        torch.nn.AlphaDropout(0.5),
        torch.nn.FeatureAlphaDropout(0.6),
    )
    model[2].eval()
    assert ct.swap_dropout(model) is model
    modules = (model[0], model[1], model[2][0], model[2][1], model[3], model[4])
    assert [type(m) for m in modules] == [
        ct.Dropout,
        ct.Dropout1d,
        ct.Dropout2d,
        ct.Dropout3d,
        ct.AlphaDropout,
        ct.FeatureAlphaDropout,
    ]
    assert [model[0].p, model[1].inplace, model[2][0].training] == [0.1, True, False]
    assert [m.p for m in modules] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert type(ct.swap_dropout(torch.nn.Dropout(0.2))) is ct.Dropout
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ct.swap_dropout("model")


def test_convert_mode_keeps_training_and_evaluation_outputs():
    def model(mode):
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(8, 16),
            torch.nn.ReLU(),
            ct.Dropout(0.4, mode=mode, seed=2),
            torch.nn.Linear(16, 4),
            torch.nn.Unflatten(1, (4, 1, 1)),
            ct.Dropout2d(0.25, mode=mode, seed=3),  # (N, C, 1, 1): whole channels
            torch.nn.Flatten(),
            torch.nn.Linear(4, 3),
        )

    x = torch.randn(5, 8, dtype=torch.float64)
    for start, target in (("classic", "inverted"), ("inverted", "classic")):
        before, after = model(start).double(), model(start).double()
        bias = after[3].bias.clone()
        assert ct.convert_mode(after, target) is after
        assert after[2].mode == after[5].mode == target
        assert torch.equal(after[3].bias, bias)  # biases are never rescaled
        for train in (True, False):
            before.train(train)
            after.train(train)
            for _ in range(2):
                assert torch.allclose(before(x.reshape(5, 8)), after(x), atol=1e-12)


def _shared_consumer():
    # one Linear reads a dropout's output and, elsewhere, another input
    linear = torch.nn.Linear(4, 4)
    return torch.nn.Sequential(
        ct.Dropout(0.5, mode="classic"), linear, torch.nn.ReLU(), linear
    )


def _tied_consumer():
    # the consumer's weight is also the first layer's (tied weights)
    first, consumer = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    consumer.weight = first.weight
    return torch.nn.Sequential(first, ct.Dropout(0.5, mode="classic"), consumer)


def _old_weight_norm_consumer():
    # torch.nn.utils.weight_norm (deprecated) recomputes `weight` before each forward
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        consumer = torch.nn.utils.weight_norm(torch.nn.Linear(4, 4))
    return torch.nn.Sequential(ct.Dropout(0.5, mode="classic"), consumer)


def test_convert_mode_rescales_every_consumer_of_a_shared_dropout():
    torch.manual_seed(0)
    shared = ct.Dropout(0.5, mode="classic", seed=4)
    layers = [torch.nn.Linear(6, 6) for _ in range(3)]
    model = torch.nn.Sequential(layers[0], shared, layers[1], shared, layers[2])
    model = model.double()
    x = torch.randn(5, 6, dtype=torch.float64)
    expected = [model(x) for _ in range(2)]
    model.eval()
    expected.append(model(x))
    ct.convert_mode(model, "inverted")
    shared.calls.zero_()
    model.train()
    outputs = [model(x) for _ in range(2)]
    model.eval()
    outputs.append(model(x))
    for out, want in zip(outputs, expected, strict=True):
        assert torch.allclose(out, want, atol=1e-12)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (
            lambda: torch.nn.Sequential(
                torch.nn.Linear(4, 4), ct.Dropout(0.5, mode="classic")
            ),
            "last",
        ),
        (
            lambda: torch.nn.Sequential(
                ct.Dropout(0.5, mode="classic"), torch.nn.ReLU(), torch.nn.Linear(4, 4)
            ),
            "ReLU",
        ),
        (
            lambda: torch.nn.ModuleDict({"drop": ct.Dropout(0.5, mode="classic")}),
            "not in an nn.Sequential",
        ),
        (lambda: torch.nn.Sequential(ct.Dropout(1.0), torch.nn.Linear(4, 4)), "p = 1"),
        (lambda: _shared_consumer(), "more than one place"),
        (lambda: _tied_consumer(), "tied weights"),
        (
            lambda: torch.nn.Sequential(
                ct.Dropout(0.5, mode="classic"),
                torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(4, 4)),
            ),
            "parametrization",
        ),
        (lambda: _old_weight_norm_consumer(), "parametrization"),
        (
            lambda: torch.nn.Sequential(
                torch.nn.Linear(4, 4),
                ct.Dropout(0.5, mode="classic"),
                torch.nn.Linear(4, 4),
                ct.Dropout(0.5, mode="classic"),
                torch.nn.LazyLinear(4),
            ),
            "lazy",
        ),
    ],
)
def test_convert_mode_refuses_what_it_cannot_establish_and_changes_nothing(
    build, words
):
    model = build()
    target = "classic" if "p = 1" in words else "inverted"
    state = model.state_dict()
    lazy = torch.nn.parameter.UninitializedParameter  # (no values to compare)
    before = {k: v.clone() for k, v in state.items() if not isinstance(v, lazy)}
    with pytest.raises(ValueError, match=words):
        ct.convert_mode(model, target)
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    modes = {m.mode for m in model.modules() if isinstance(m, ct.Dropout)}
    assert modes == ({"inverted"} if "p = 1" in words else {"classic"})


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (ct.Dropout, torch.nn.Dropout),
        (ct.Dropout1d, torch.nn.Dropout1d),
        (ct.Dropout2d, torch.nn.Dropout2d),
        (ct.Dropout3d, torch.nn.Dropout3d),
        (ct.AlphaDropout, torch.nn.AlphaDropout),
        (ct.FeatureAlphaDropout, torch.nn.FeatureAlphaDropout),
    ],
)
def test_each_module_is_an_instance_of_the_torch_nn_module_it_replaces(ours, theirs):
    # the MC dropout idiom and tools that find dropouts by type keep working
    model = ct.swap_dropout(torch.nn.Sequential(torch.nn.Linear(4, 4), theirs(0.3)))
    assert type(model[1]) is ours and isinstance(model[1], theirs)
    model.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.train()
    assert model[1].training
    assert repr(ours(0.3, True)) == repr(theirs(0.3, True))


def test_swap_dropout_replaces_a_module_at_every_place_it_is_registered():
    # named_children() lists a module registered twice once: its second place stayed
    # torch.nn's
    shared = torch.nn.Dropout(0.2)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 2), shared, torch.nn.Linear(2, 2), shared
    )
    inner = torch.nn.Sequential(shared)
    model.append(inner)
    ct.swap_dropout(model)
    assert type(model[1]) is ct.Dropout
    assert model[3] is model[1] and model[4][0] is model[1]  # still one module


def test_swap_dropout_checks_every_dropout_before_changing_any():
    model = torch.nn.Sequential(
        torch.nn.Dropout(0.2), torch.nn.Linear(2, 2), torch.nn.Dropout(float("nan"))
    )
    with pytest.raises(ValueError, match="module '2' cannot be swapped: p must"):
        ct.swap_dropout(model)
    assert type(model[0]) is torch.nn.Dropout  # not half swapped


@pytest.mark.filterwarnings(JIT_SCRIPT_DEPRECATED)
def test_torchscript_is_refused_by_name():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.2))
    scripted = torch.jit.script(model)
    with pytest.raises(TypeError, match="TorchScript module"):
        ct.swap_dropout(scripted)
    with pytest.raises(RuntimeError, match="cannot be compiled by torch.jit.script"):
        torch.jit.script(ct.swap_dropout(model))


def test_torch_fx_records_each_module_as_a_call_of_it():
    # as torch.fx records torch.nn's modules: train() and eval() still switch it in
    # the traced graph, and a seeded module keeps counting its calls
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4),
        ct.Dropout(0.5, seed=2),
        torch.nn.Unflatten(1, (4, 1, 1)),
        ct.Dropout2d(0.3),
    )
    traced = torch.fx.symbolic_trace(model)
    targets = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert targets == ["0", "1", "2", "3"]
    x = torch.randn(3, 4)
    model.eval()
    traced.eval()
    assert torch.equal(traced(x), model[0](x).reshape(3, 4, 1, 1))
    traced.train()
    traced(x)
    assert int(traced.get_submodule("1").calls) == 1
    # the functions are recorded as calls too (torch_function dispatch)
    graph = torch.fx.symbolic_trace(lambda t: ct.dropout(t, 0.5, seed=1)).graph
    assert any(n.target is ct.dropout for n in graph.nodes)


class _Noisy(torch.utils.data.Dataset):
    """A dataset whose items go through a seeded dropout module."""

    def __init__(self):
        self.dropout = ct.Dropout(0.5, seed=11)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.dropout(torch.ones(64))


def _reseed_worker(worker_id):
    # the README's fix: each worker's module gets its own seed (PyTorch's per-worker
    # seed), as PyTorch's docs do for NumPy's seeds
    info = torch.utils.data.get_worker_info()
    info.dataset.dropout.seed = info.seed


def test_forked_workers_repeat_each_others_masks_unless_reseeded():
    import multiprocessing

    def masks(**kwargs):
        loader = torch.utils.data.DataLoader(
            _Noisy(), batch_size=1, num_workers=2,
            multiprocessing_context=multiprocessing.get_context("fork"), **kwargs,
        )  # fmt: skip
        return {tuple(batch[0].tolist()) for batch in loader}

    assert len(masks()) == 4  # each worker starts from calls = 0: repeated masks
    assert len(masks(worker_init_fn=_reseed_worker)) == 8
