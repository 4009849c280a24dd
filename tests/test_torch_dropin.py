"""cdropout.torch's modules as drop-ins: the behaviours that PyTorch's own tests of its
dropout modules check (test/nn/test_dropout.py's TestDropoutNN and
TestDropoutNNDeviceType, on the CPU), each checked here against cdropout's module of
the same name. Every test seeds PyTorch's generator, from which the modules draw their
keys: no test is left to chance."""

import itertools

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout.torch as ct  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(20261128)


MODULES = [ct.Dropout, ct.Dropout1d, ct.Dropout2d, ct.Dropout3d]
SHAPES = {
    ct.Dropout: (1000,),
    ct.Dropout1d: (40, 25, 3),
    ct.Dropout2d: (1000, 3, 2, 4),
    ct.Dropout3d: (1000, 2, 2, 3, 2),
}


@pytest.mark.parametrize("cls", [*MODULES, ct.AlphaDropout, ct.FeatureAlphaDropout])
@pytest.mark.parametrize("p", [-0.1, 1.1])
def test_a_probability_outside_0_1_is_a_value_error(cls, p):
    with pytest.raises(ValueError):
        cls(p)
    for function in (ct.dropout, ct.dropout1d, ct.dropout2d, ct.dropout3d):
        with pytest.raises(ValueError):
            function(torch.ones(2, 2, 2), p)


@pytest.mark.parametrize("cls", [*MODULES, ct.AlphaDropout])
def test_a_probability_may_be_a_0_d_tensor(cls):
    # as torch.nn.Dropout(torch.tensor(0.5)) and F.dropout(x, torch.tensor(0.5)) take it
    x = torch.ones(SHAPES.get(cls, (1000,)))
    layer = cls(torch.tensor(0.25))
    assert layer.p == 0.25
    for seed in (None, 3):  # the float's masks, drawn from the generator or the seed
        layer.seed, layer.p = seed, torch.tensor(0.5, dtype=torch.float64)
        twin = cls(0.5, seed=seed)
        torch.manual_seed(7)
        y = layer(x)
        torch.manual_seed(7)
        assert torch.equal(y, twin(x))
    y = ct.dropout(x, torch.tensor(0.5), seed=1)
    assert torch.equal(y, ct.dropout(x, 0.5, seed=1))
    for bad, error in [
        (torch.tensor(1.5), ValueError),
        (torch.tensor([0.5]), TypeError),
    ]:
        with pytest.raises(error, match="p must"):
            ct.dropout(x, bad)
        with pytest.raises(error, match="p must"):
            cls(bad)


@pytest.mark.parametrize("cls", [ct.Dropout, ct.Dropout1d, ct.Dropout2d, ct.Dropout3d])
@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_mean_is_kept_in_training_for_the_output_and_the_gradient(
    cls, memory_format, dtype
):
    if memory_format == torch.channels_last and cls is not ct.Dropout2d:
        pytest.skip("channels_last is a 4-d layout")
    p = 0.2
    data = torch.empty(SHAPES[cls], dtype=dtype).fill_(1 - p)
    for inplace in (False, True):
        leaf = data.clone(memory_format=memory_format).requires_grad_()
        out = cls(p, inplace)(leaf + 0 if inplace else leaf)
        assert out.is_contiguous(memory_format=memory_format)
        assert abs(out.float().mean() - (1 - p)) < 0.05
        out.backward(data)
        assert leaf.grad.is_contiguous(memory_format=memory_format)
        assert abs(leaf.grad.float().mean() - (1 - p)) < 0.05
    for inplace in (False, True):  # evaluation changes nothing
        assert torch.equal(cls(p, inplace).eval()(data), data)
    assert repr(cls(p)) and str(cls(p))


@pytest.mark.parametrize("cls", [ct.Dropout, ct.Dropout2d, ct.Dropout3d])
@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last]
)
def test_a_discontiguous_input_keeps_its_values_and_layout_at_p_near_0(
    cls, memory_format
):
    for p in (0.0, 1e-10):
        x = torch.empty(2, 3, 3, 6, memory_format=memory_format)[..., ::2]
        x.copy_(torch.ones(2, 3, 3, 3))
        out = cls(p)(x)
        if p != 0:
            assert out.is_contiguous(memory_format=memory_format)
        assert torch.equal(out, x)


def test_permuted_and_sliced_inputs_keep_their_axis_order_and_mean():
    ones = torch.ones(2, 3, 4, 5)
    for perm in itertools.permutations(range(4)):
        inverse = tuple(perm.index(d) for d in range(4))
        for start0, start1 in ((0, 0), (1, 0), (0, 1), (1, 1)):
            x = ones.permute(perm).contiguous().permute(inverse)[start0:, start1:]
            for p in (1e-10, 0.3, 0.5, 0.7):
                out = ct.Dropout(p)(x)
                assert out.permute(perm).is_contiguous()
                assert abs(float(out.mean()) - 1.0) <= 0.5 + 0.5
                assert torch.equal(out, x) == (p == 1e-10)


@pytest.mark.parametrize(
    ("cls", "shape"), [(ct.Dropout1d, (50, 2)), (ct.Dropout3d, (50, 2, 2, 2))]
)
def test_an_unbatched_input_is_dropped_as_a_batch_of_one(cls, shape):
    x = torch.rand(shape)
    for inplace in (False, True):
        state = torch.get_rng_state()
        alone = cls(0.5, inplace)(x.clone())
        torch.set_rng_state(state)
        batched = cls(0.5, inplace)(x.clone().unsqueeze(0)).squeeze(0)
        assert torch.equal(alone, batched)


@pytest.mark.parametrize(
    ("cls", "shape"),
    [
        (ct.Dropout1d, (10, 4, 2)),
        (ct.Dropout2d, (10, 4, 2, 2)),
        (ct.Dropout3d, (10, 4, 2, 2, 2)),
    ],
)
def test_whole_channels_are_dropped(cls, shape):
    for inplace in (False, True):
        out = cls(0.5, inplace)(torch.ones(shape))
        counts = out.reshape(shape[0], shape[1], -1).count_nonzero(dim=2)
        per_channel = out[0, 0].numel()
        assert set(counts.unique().tolist()) <= {0, per_channel}


def test_dropout1d_refuses_other_ranks_with_pytorchs_error():
    with pytest.raises(
        RuntimeError, match="Expected 2D or 3D input, but received a 4D"
    ):
        ct.Dropout1d(0.5)(torch.rand(1, 2, 2, 2))
    with pytest.raises(
        RuntimeError, match="Expected 2D or 3D input, but received a 1D"
    ):
        ct.Dropout1d(0.5)(torch.rand(2))


@pytest.mark.parametrize(
    ("cls", "shape", "words"),
    [
        (ct.Dropout2d, (1, 2, 2, 2, 2), "Received a 5-D input to dropout2d"),
        (ct.Dropout2d, (1, 2), "Received a 2-D input to dropout2d"),
        (ct.Dropout2d, (1, 2, 2), "assuming that channel-wise 1D dropout behavior"),
        (ct.Dropout3d, (1, 2, 2, 2, 2, 2), "Received a 6-D input to dropout3d"),
        (ct.Dropout3d, (1, 2, 2), "Received a 3-D input to dropout3d"),
    ],
)
def test_other_ranks_warn_as_pytorch_warns(cls, shape, words):
    with pytest.warns(UserWarning, match=words):
        cls(0.5)(torch.rand(shape))


def test_an_empty_input_keeps_its_size():
    x = torch.tensor([])
    assert ct.dropout(x).size() == x.size()
    assert ct.Dropout2d(0.5)(torch.empty(0, 3, 2, 2)).shape == (0, 3, 2, 2)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (ct.Dropout, torch.nn.Dropout),
        (ct.Dropout1d, torch.nn.Dropout1d),
        (ct.Dropout2d, torch.nn.Dropout2d),
        (ct.Dropout3d, torch.nn.Dropout3d),
        (ct.AlphaDropout, torch.nn.AlphaDropout),
    ],
)
def test_the_repr_is_pytorchs_for_its_arguments(ours, theirs):
    assert repr(ours(0.3, True)) == repr(theirs(0.3, True))
    assert repr(
        ours(0.3, mode="classic") if ours is not ct.AlphaDropout else ours(0.3)
    ).startswith(type(ours(0.3)).__name__)


@pytest.mark.parametrize("function", [ct.dropout, ct.alpha_dropout])
def test_training_and_inplace_are_positional_as_in_torch_functional(function):
    # code written for F.dropout(x, self.p, self.training) and F.dropout(x, p, True,
    # True) runs unchanged against cdropout.torch's functions
    x = torch.randn(1000)
    torch.manual_seed(5)
    by_name = function(x, 0.5, training=True)
    torch.manual_seed(5)
    assert torch.equal(function(x, 0.5, True), by_name)
    assert function(x, 0.5, False) is x  # evaluation: the input itself
    y = x.clone()
    torch.manual_seed(5)
    assert function(y, 0.5, True, True) is y
    assert torch.equal(y, by_name)
    with pytest.raises(TypeError, match="inplace"):
        function(x, 0.5, True, "yes")
    with pytest.raises(TypeError):  # the options beyond PyTorch's stay keyword-only
        function(x, 0.5, True, False, 1)


@pytest.mark.parametrize(
    ("cls", "shape"),
    [
        (ct.AlphaDropout, (5000,)),
        (ct.FeatureAlphaDropout, (1000, 3, 2, 4, 5)),
        (ct.FeatureAlphaDropout, (50, 20, 64, 64)),
    ],
)
def test_alpha_dropout_keeps_the_mean_and_the_standard_deviation(cls, shape):
    # PyTorch's _test_alpha_dropout: a zero-mean, unit-std input keeps both within
    # 0.1 at p = 0.2, 0.5 and 0.8, and backward runs
    values = torch.randn(shape)
    mean, std = values.mean(), values.std()
    for p in (0.2, 0.5, 0.8):
        leaf = values.detach().clone().requires_grad_()
        output = cls(p)(leaf)
        assert abs(output.detach().mean() - mean) < 0.1
        assert abs(output.detach().std() - std) < 0.1
        output.backward(values)
