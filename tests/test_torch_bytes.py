"""cdropout.torch's bytes: the NumPy API's for every dtype, layout and option, through
the eager path, the common call and the registered operators alike; keys drawn from
PyTorch's generators; threads and forked workers."""

import contextlib
import multiprocessing

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import cdropout  # noqa: E402
import cdropout.torch as ct  # noqa: E402
from cdropout import reference  # noqa: E402
from cdropout.torch import _ops  # noqa: E402
from cdropout.torch import functional as fn  # noqa: E402

from torch_support import DTYPES, alpha_dropout, bits, numpy_dropout  # noqa: E402


def _layouts(dtype):
    base = torch.randn(6, 7, 40, dtype=torch.float64).to(dtype)
    return {
        "contiguous": base,
        "transposed": base.transpose(0, 2),
        "sliced": base[:, 1:, ::3],
        "channels_last": base.reshape(6, 7, 5, 8).contiguous(
            memory_format=torch.channels_last
        ),
    }


@pytest.mark.parametrize(
    "layout", ["contiguous", "transposed", "sliced", "channels_last"]
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "classic"},
        {"offset": 4097},
        {"n_threads": 2},
        {"p": 1.0},
        {"p": 0.0},
    ],
)
@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
def test_the_op_gives_the_numpy_apis_bytes(dtype, layout, kwargs, stream):
    # for the same seed and stream (cdropout.torch's default is the counter stream)
    x = _layouts(dtype)[layout]
    kwargs = {"p": 0.3, **kwargs, "stream": stream}
    p = kwargs.pop("p")
    y = ct.dropout(x, p, seed=12, **kwargs)
    expected = numpy_dropout(x, p, seed=12, **kwargs)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(bits(y), np.ascontiguousarray(expected).view(bits(y).dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_contiguous_tensors_of_many_blocks_and_misaligned_ones_give_the_bytes(
    dtype, n_threads
):
    # contiguous tensors run on their addresses (_kernel.dropout_memory), a misaligned
    # one through a NumPy view: the reference's bytes either way, in place too
    n = 5 * cdropout._kernel.BLOCK + 3
    values = torch.randn(n, dtype=torch.float64).to(dtype)
    memory = bytearray(values.element_size() * n + 1)
    misaligned = torch.frombuffer(memory, dtype=dtype, offset=1, count=n)
    misaligned.copy_(values)
    expected = reference.dropout(_ops.as_numpy(values), 0.3, seed=8, stream="counter")
    for x in (values.clone(), misaligned):
        y = ct.dropout(x, 0.3, seed=8, n_threads=n_threads)
        assert np.array_equal(bits(y), expected.view(bits(y).dtype))
        assert ct.dropout(x, 0.3, seed=8, n_threads=n_threads, inplace=True) is x
        assert np.array_equal(bits(x), expected.view(bits(x).dtype))


def test_tensors_whose_memory_is_not_their_values_are_read_by_value():
    # a ZeroTensor has no memory (address 0), a negative view's memory holds -x: both
    # are read through a copy of their values, as F.dropout reads them; a ZeroTensor
    # is never written (PyTorch refuses it), a negative view is written by value
    values = torch.randn(5)
    for x in (torch._efficientzerotensor(5), values.clone()._neg_view()):
        expected = ct.dropout(x.clone().resolve_neg(), 0.5, seed=1)
        assert torch.equal(ct.dropout(x, 0.5, seed=1), expected)
    negative = values.clone()._neg_view()
    assert ct.dropout(negative, 0.5, seed=1, inplace=True) is negative
    assert torch.equal(negative, ct.dropout(-values, 0.5, seed=1))
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    with pytest.raises(RuntimeError, match="ZeroTensor"):
        zeros = torch._efficientzerotensor(5)
        ct.dropout(zeros, 0.5, inplace=True, generator=generator)
    assert torch.equal(generator.get_state(), state)


def _checked_call_only(monkeypatch):
    monkeypatch.setattr(fn, "_common_call", lambda *args: NotImplemented)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(  # (in place with autograd is declined: the next test)
    ("inplace", "grad"), [(False, False), (True, False), (False, True)]
)
@pytest.mark.parametrize("mode", ["inverted", "classic"])
@pytest.mark.parametrize("seed", [7, 2**64 - 1, None])
@pytest.mark.parametrize("p", [0.3, 1 - 2**-34])  # (the second: the kernel declines)
@pytest.mark.parametrize("stream", ["counter", "xoshiro"])
def test_the_common_call_gives_the_checked_calls_bytes_key_and_version(
    dtype, inplace, grad, mode, seed, p, stream, monkeypatch
):
    # functional._common_call runs the common eager call in one Python call: the
    # same bytes, gradient, draw from PyTorch's generator and version bump
    values = torch.randn(3 * cdropout._kernel.BLOCK + 5, dtype=torch.float64).to(dtype)
    results = []
    for path in ("common", "checked"):
        if path == "checked":
            _checked_call_only(monkeypatch)
        x = values.clone().requires_grad_(grad)
        version = x._version
        torch.manual_seed(11)
        call = (p, True, inplace, mode, seed, stream)
        taken = fn._common_call(x.detach().clone(), *call)
        assert (taken is NotImplemented) == (path == "checked")
        torch.manual_seed(11)
        y = ct.dropout(x, p, inplace=inplace, mode=mode, seed=seed, stream=stream)
        assert (y is x) == inplace and y.is_contiguous()
        next_draw = torch.randint(2**62, ())
        gradient = torch.autograd.grad(y.sum(), x)[0] if grad else None
        results.append((bits(y.detach()), next_draw, x._version - version, gradient))
    (common, common_next, common_bump, common_grad), checked = results
    assert np.array_equal(common, checked[0])
    assert common_next == checked[1] and common_bump == checked[2] == int(inplace)
    assert common_grad is None or torch.equal(common_grad, checked[3])


def _declined_calls():
    x = torch.randn(6, 4)
    grad = torch.randn(6, 4, requires_grad=True) * 1
    calls = {  # name: (tensor, keyword arguments, context)
        "requires grad, in place": (grad, {"inplace": True}, contextlib.nullcontext),
        "dual tensor level": (x, {}, torch.autograd.forward_ad.dual_level),
        "dispatch mode": (x, {}, _PassThroughMode),
        "in place on an inference tensor": (
            _inference_tensor(),
            {"inplace": True},
            contextlib.nullcontext,
        ),
        "transposed": (x.t(), {}, contextlib.nullcontext),
        "negative view": (x._neg_view(), {}, contextlib.nullcontext),
        "ZeroTensor": (torch._efficientzerotensor(3), {}, contextlib.nullcontext),
        "parameter": (torch.nn.Parameter(x, False), {}, contextlib.nullcontext),
        "empty": (torch.ones(0), {}, contextlib.nullcontext),
        "int64": (torch.ones(3, dtype=torch.int64), {}, contextlib.nullcontext),
        "meta": (torch.ones(3, device="meta"), {}, contextlib.nullcontext),
        "sparse": (x.to_sparse(), {}, contextlib.nullcontext),
        "ndarray": (np.ones(3, np.float32), {}, contextlib.nullcontext),
    }
    arguments = {
        "p": [0, 1.0, 0.0, np.float64(0.5), torch.tensor(0.5), "0.5", float("nan")],
        "training": [False, 1, np.bool_(True)],
        "inplace": [1, "yes", np.bool_(True)],
        "mode": ["bogus", np.array(["inverted"]), None],
        "seed": [-1, 2**64, np.uint64(3), 3.0, [1, 2]],
        "stream": ["philox", None, b"counter"],
    }
    for name, values in arguments.items():
        for value in values:
            calls[f"{name}={value!r}"] = (x, {name: value}, contextlib.nullcontext)
    return calls


class _PassThroughMode(torch.utils._python_dispatch.TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _inference_tensor():
    with torch.inference_mode():
        return torch.randn(6, 4)


@pytest.mark.parametrize("name", list(_declined_calls()))
def test_the_common_call_declines_every_other_call_and_touches_nothing(name):
    # what it does not check goes to the checked call, which checks it (nothing
    # raises here)
    tensor, kwargs, context = _declined_calls()[name]
    call = {"p": 0.5, "training": True, "inplace": False, "mode": "inverted",
            "seed": None, "stream": "counter", **kwargs}  # fmt: skip
    if isinstance(tensor, np.ndarray):
        before, same = tensor.copy(), np.array_equal
    else:  # (meta and sparse tensors have no values to compare)
        dense = tensor.is_cpu and tensor.layout == torch.strided
        before, same = tensor.clone(), torch.equal if dense else lambda a, b: True
    state = torch.get_rng_state()
    with context():
        assert fn._common_call(tensor, *call.values()) is NotImplemented
    assert torch.equal(torch.get_rng_state(), state)
    assert same(tensor, before)


@pytest.mark.parametrize(
    "option",
    [
        {"offset": 1},
        {"n_threads": 1},
        {"noise_shape": (None, 1)},
        {"generator": torch.Generator()},
    ],
    ids=lambda option: next(iter(option)),
)
def test_calls_with_the_other_options_never_enter_the_common_call(option, monkeypatch):
    def refuse(*args):
        raise AssertionError("the common call was entered")

    monkeypatch.setattr(fn, "_common_call", refuse)
    ct.dropout(torch.randn(6, 4), 0.5, **option)


def test_the_common_call_declines_under_torch_func_transforms():
    x = torch.randn(3, 4)

    def declined(t):
        taken = fn._common_call(t, 0.5, True, False, "inverted", 1, "counter")
        assert taken is NotImplemented
        return ct.dropout(t, 0.5, seed=1)

    torch.func.vmap(declined)(x)
    torch.func.grad(lambda t: declined(t).sum())(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_in_place_and_noise_shape_give_the_same_bytes(dtype):
    x = torch.randn(4, 5, 6, 7).to(dtype)
    expected = numpy_dropout(x, 0.4, seed=3, noise_shape=(None, None, 1, 1),
                             stream="counter")  # fmt: skip
    assert ct.dropout(x, 0.4, seed=3, inplace=True, noise_shape=(None, None, 1, 1)) is x
    assert np.array_equal(bits(x), expected.view(bits(x).dtype))


def test_bfloat16_is_rounded_once_from_the_float32_result():
    x = torch.randn(10_000).to(torch.bfloat16)
    y = ct.dropout(x, 0.3, seed=5)
    y32 = ct.dropout(x.float(), 0.3, seed=5)
    assert torch.equal(y, y32.to(torch.bfloat16))  # PyTorch's own rounding
    np_ref = reference.dropout(_ops.as_numpy(x), 0.3, seed=5, stream="counter")
    assert np.array_equal(bits(y), np_ref.view(np.int16))


def test_manual_seed_and_generators_make_runs_reproducible():
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = ct.dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(ct.dropout(x, 0.5), first)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(
        ct.dropout(x, 0.5, generator=g1), ct.dropout(x, 0.5, generator=g2)
    )
    assert not torch.equal(
        ct.dropout(x, 0.5, generator=g1), ct.dropout(x, 0.5, generator=g1)
    )
    with pytest.raises(ValueError, match="seed and generator"):
        ct.dropout(x, 0.5, seed=1, generator=g1)


def test_a_drawn_key_is_the_generators_next_two_32_bit_words():
    # pinned, so that a generator state saved with a model keeps giving its masks:
    # the key is high * 2**32 + low (mod 2**64) of two draws made as version 0.2 made
    # them, one by one, eager and compiled alike
    def key_after(seed):
        g = torch.Generator().manual_seed(seed)
        high = int(torch.randint(-(2**31), 2**31, (), generator=g))
        low = int(torch.randint(0, 2**32, (), generator=g))
        return (high * 2**32 + low) % 2**64

    x = torch.randn(1000)
    compiled = torch.compile(ct.dropout, fullgraph=True)
    for seed in (0, 1, 11):
        expected = cdropout.dropout(x.numpy(), 0.5, seed=key_after(seed),
                                    stream="counter").view(np.int32)  # fmt: skip
        y = ct.dropout(x, 0.5, generator=torch.Generator().manual_seed(seed))
        assert np.array_equal(bits(y), expected)
        for call in (ct.dropout, compiled):  # PyTorch's default generator
            torch.manual_seed(seed)
            assert np.array_equal(bits(call(x, 0.5)), expected)


def test_keys_are_drawn_in_and_out_of_inference_mode_and_per_thread():
    # eager keys are drawn into a buffer of each thread's (functional._drawn_words):
    # made in inference mode first, it must still take draws outside it, and threads
    # drawing at once must never read each other's words
    import concurrent.futures

    def keys(count):
        with torch.inference_mode():
            first = fn.draw_key(None, None, True)
        return [first] + [fn.draw_key(None, None, True) for _ in range(count)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        drawn = [k for ks in pool.map(keys, [300] * 8) for k in ks]
    assert len(set(drawn)) == len(drawn) == 8 * 301
    torch.manual_seed(3)
    expected = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
    torch.manual_seed(3)
    with torch.inference_mode():
        key = fn.draw_key(None, None, True)
    assert key == ((expected[0] - 2**31) * 2**32 + expected[1]) % 2**64


def test_the_seeds_example_both_conventions():
    x = torch.ones(5, 5)
    inverted = ct.dropout(x, 0.5, seed=0)
    classic = ct.dropout(x, 0.5, seed=0, mode="classic")
    assert set(inverted.unique().tolist()) <= {0.0, 2.0}
    assert set(classic.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(inverted == 0, classic == 0)  # the same mask
    assert torch.equal(ct.dropout(x, 0.5, training=False, mode="classic"), x * 0.5)
    assert ct.dropout(x, 0.5, training=False) is x


def test_threads_follow_torch_get_num_threads_when_none():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _ops._threads(_ops.TORCH_THREADS) == 1
    finally:
        torch.set_num_threads(before)
    x = torch.randn(1_000_000)
    assert torch.equal(
        ct.dropout(x, 0.5, seed=1), ct.dropout(x, 0.5, seed=1, n_threads=2)
    )


class _Noisy(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return ct.dropout(torch.ones(70_000), 0.5, seed=i)


def test_dataloader_fork_workers_give_the_serial_bytes():
    ct.dropout(torch.ones(200_000), 0.5, seed=0, n_threads=2)  # OpenMP used before fork
    loader = torch.utils.data.DataLoader(
        _Noisy(),
        batch_size=2,
        num_workers=2,
        multiprocessing_context=multiprocessing.get_context("fork"),
    )
    batches = torch.cat(list(loader))
    serial = torch.stack([_Noisy()[i] for i in range(8)])
    assert torch.equal(batches, serial)


def test_the_registered_operators_and_the_eager_path_agree():
    # eager calls take autograd.Functions; tracers take the torch.library operators
    seed = 2**63 + 5  # a key whose int64 reading is negative
    key = _ops.key_tensor(seed)
    x = torch.randn(3000, dtype=torch.float64, requires_grad=True)
    for mode in ("inverted", "classic"):
        by_op = torch.ops.cdropout.dropout(x, key, 0.3, mode, 7, 1, [])
        eager = ct.dropout(x, 0.3, seed=seed, offset=7, mode=mode, stream="xoshiro")
        assert torch.equal(by_op, eager)
        grads = [torch.autograd.grad(y.sum(), x)[0] for y in (by_op, eager)]
        assert torch.equal(*grads)
    alpha_op = torch.ops.cdropout.alpha_dropout(x, key, 0.3, 7, 1, [])
    assert torch.equal(alpha_op, alpha_dropout(x, 0.3, seed=seed, offset=7,
                                               stream="xoshiro"))  # fmt: skip
    small = x[:40].detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: torch.ops.cdropout.dropout(t, key, 0.4, "inverted", 0, 1, []),
        (small,),
    )
    assert torch.autograd.gradcheck(
        lambda t: torch.ops.cdropout.alpha_dropout(t, key, 0.4, 0, 1, []), (small,)
    )


def test_tensors_of_more_than_64_dimensions_give_the_bytes_of_their_values():
    # NumPy has at most 64 axes: such a tensor that is not contiguous goes through a
    # contiguous copy, as F.dropout takes it (it raised NumPy's error, after drawing)
    values = torch.randn([2] + [1] * 63 + [3], dtype=torch.float64)
    x = values.transpose(0, 64)
    expected = ct.dropout(x.contiguous(), 0.4, seed=3)
    for call in (ct.dropout, alpha_dropout):
        wanted = call(x.contiguous(), 0.4, seed=3)
        assert torch.equal(call(x, 0.4, seed=3), wanted)
        copy = x.clone()  # (keeps x's strides)
        assert call(copy, 0.4, seed=3, inplace=True) is copy
        assert torch.equal(copy, wanted)
    assert expected.shape == x.shape
