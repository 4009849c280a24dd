"""cdropout.torch.scaled_dot_product_attention: PyTorch's function at dropout_p = 0, and
with dropout the mask of docs/stream.md ("Attention") inside a blocked attention that
never stores it: against the written-out reference, gradcheck, the kept and dropped
probabilities, compiled against eager, threads, seeds, and memory linear in T."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import torch.nn.functional as F  # noqa: E402

import cdropout.torch as ct  # noqa: E402
from cdropout import _params, reference  # noqa: E402
from cdropout.torch import attention  # noqa: E402
from cdropout.torch.attention import scaled_dot_product_attention as sdpa  # noqa: E402

from torch_support import JIT_SCRIPT_DEPRECATED, fresh_compilations  # noqa: E402, F401


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of a few queries and keys, so that small inputs cross many tile edges."""
    monkeypatch.setattr(attention, "QUERY_TILE", 3)
    monkeypatch.setattr(attention, "KEY_TILE", 5)


def _qkv(shape_q, shape_k, value_features, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(shape_q, generator=generator, dtype=torch.float64)
    k = torch.randn(shape_k, generator=generator, dtype=torch.float64)
    v = torch.randn(*shape_k[:-1], value_features, generator=generator,
                    dtype=torch.float64)  # fmt: skip
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _reference(q, k, v, p, seed, **options):
    arrays = [t.detach().double().numpy() for t in (q, k, v)]
    return torch.from_numpy(reference.attention(*arrays, p, seed=seed, **options))


@pytest.mark.usefixtures("small_tiles")
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", [(13, 13), (7, 23), (23, 7)], ids=str)
def test_the_blocked_attention_is_the_written_out_reference(lengths, causal):
    length, size = lengths
    q, k, v = _qkv((2, 3, length, 8), (2, 3, size, 8), 4)
    got = sdpa(q, k, v, dropout_p=0.3, is_causal=causal, seed=9)
    expected = _reference(q, k, v, 0.3, 9, is_causal=causal)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("small_tiles")
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_peaked_scores_whose_exp_underflows_give_the_reference(dtype, causal):
    # scores 100s apart: exp of the smaller ones underflows (raised to exp(-87) to
    # keep PyTorch's exp off its slow path), the masked ones stay 0
    q, k, v = _qkv((2, 2, 13, 8), (2, 2, 13, 8), 4, dtype)
    q = (q * 40).requires_grad_()
    got = sdpa(q, k, v, dropout_p=0.3, is_causal=causal, seed=9)
    expected = _reference(q, k, v, 0.3, 9, is_causal=causal)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.double(), expected, rtol=tolerance, atol=tolerance)
    (grad,) = torch.autograd.grad(got.sum(), q)
    assert torch.isfinite(grad).all()


@pytest.mark.usefixtures("small_tiles")
@pytest.mark.parametrize(
    "mask",
    [
        lambda: torch.rand(7, 11, generator=torch.Generator().manual_seed(1)) > 0.3,
        lambda: torch.randn(3, 1, 11, generator=torch.Generator().manual_seed(2),
                            dtype=torch.float64),  # fmt: skip
        lambda: torch.zeros(7, 11, dtype=torch.bool).index_fill_(0, torch.tensor([2]),
                                                                 True),  # fmt: skip
    ],
    ids=["bool", "float-broadcast", "rows-without-keys"],
)
def test_masks_as_pytorchs_and_the_reference(mask):
    mask = mask()
    q, k, v = _qkv((2, 3, 7, 4), (2, 3, 11, 4), 5)
    expected = F.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(sdpa(q, k, v, mask), expected)
    got = sdpa(q, k, v, mask, dropout_p=0.25, seed=4)
    expected = _reference(q, k, v, 0.25, 4, attn_mask=mask.numpy())
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("small_tiles")
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_gradcheck_with_dropout_the_backward_mask_is_the_forwards(causal):
    q, k, v = (t.requires_grad_() for t in _qkv((1, 2, 6, 3), (1, 2, 9, 3), 2))
    mask = None if causal else torch.rand(6, 9, generator=torch.Generator()) > 0.2

    def call(q, k, v):
        return sdpa(q, k, v, mask, dropout_p=0.4, is_causal=causal, seed=3)

    assert torch.autograd.gradcheck(call, (q, k, v))
    assert torch.autograd.gradgradcheck is not None  # (first order only: as flash)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_kept_probabilities_are_softmax_over_1_minus_p_and_a_share_p_is_dropped(p):
    # with value the identity, the output is the dropped probabilities themselves
    q, k, _ = _qkv((4, 2, 64, 16), (4, 2, 64, 16), 1)
    eye = torch.eye(64, dtype=torch.float64).expand(4, 2, 64, 64)
    got = sdpa(q, k, eye, dropout_p=p, seed=21)
    softmax = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1)
    kept = got != 0
    torch.testing.assert_close(got[kept], (softmax / (1 - p))[kept], rtol=1e-12,
                               atol=0)  # fmt: skip
    share = 1 - kept.double().mean().item()
    assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / kept.numel())


def test_the_mean_over_seeds_is_the_attention_without_dropout():
    q, k, v = _qkv((1, 1, 6, 4), (1, 1, 10, 4), 3)
    draws = torch.stack([sdpa(q, k, v, dropout_p=0.3, seed=s) for s in range(400)])
    mean, spread = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    exact = F.scaled_dot_product_attention(q, k, v)
    assert ((mean - exact).abs() <= 5 * spread + 1e-12).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_16_and_32_bit_inputs_compute_in_float32_and_round_once(dtype):
    q, k, v = _qkv((2, 2, 40, 16), (2, 2, 300, 16), 8, dtype=dtype)
    got = sdpa(q, k, v, dropout_p=0.2, seed=6)
    assert got.dtype == dtype
    expected = _reference(q, k, v, 0.2, 6).to(dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)


def test_gqa_scale_and_causal_at_p_zero_are_pytorchs_and_with_dropout_the_reference():
    q, k, v = _qkv((2, 6, 9, 4), (2, 2, 9, 4), 3)
    options = {"is_causal": True, "scale": 0.3, "enable_gqa": True}
    expected = F.scaled_dot_product_attention(q, k, v, **options)
    torch.testing.assert_close(sdpa(q, k, v, **options), expected)
    got = sdpa(q, k, v, dropout_p=0.5, seed=2, **options)
    wide_k, wide_v = (t.repeat_interleave(3, dim=1) for t in (k, v))
    expected = _reference(q, wide_k, wide_v, 0.5, 2, is_causal=True, scale=0.3)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda q, k, v: dict(query=q, key=k.float(), value=v),  # dtypes differ
        lambda q, k, v: dict(query=q, key=k[..., :3], value=v),  # features differ
        lambda q, k, v: dict(query=q, key=k, value=v[..., :4, :]),  # lengths differ
        lambda q, k, v: dict(query=q, key=k, value=v, is_causal=True,
                             attn_mask=torch.ones(5, 6, dtype=torch.bool)),
        lambda q, k, v: dict(query=q, key=k[:, :2], value=v[:, :2], enable_gqa=True),
        lambda q, k, v: dict(query=q, key=k, value=v, dropout_p=1.5),
    ],
    ids=["dtype", "features", "lengths", "mask-and-causal", "gqa-heads", "p"],
)  # fmt: skip
def test_what_pytorch_refuses_is_refused(call):
    q, k, v = _qkv((1, 3, 5, 4), (1, 3, 6, 4), 2)
    arguments = call(q, k, v)
    with pytest.raises((RuntimeError, ValueError, TypeError)):
        F.scaled_dot_product_attention(**arguments)
    with pytest.raises((ValueError, TypeError)):
        sdpa(**arguments)


def test_dropout_p_one_gives_zeros_and_seeds_draw_as_cdropout_torch():
    q, k, v = _qkv((1, 2, 5, 4), (1, 2, 6, 4), 3)
    assert not sdpa(q, k, v, dropout_p=1.0, seed=1).any()
    torch.manual_seed(8)
    first = sdpa(q, k, v, dropout_p=0.5)
    torch.manual_seed(8)
    assert torch.equal(sdpa(q, k, v, dropout_p=0.5), first)
    generator = torch.Generator().manual_seed(8)
    assert torch.equal(sdpa(q, k, v, dropout_p=0.5, generator=generator), first)
    with pytest.raises(ValueError, match="seed and generator"):
        sdpa(q, k, v, dropout_p=0.5, seed=1, generator=generator)


def _mask_of(call, q, k):
    """The kept decisions a call makes: its output for a value that is the identity."""
    eye = torch.eye(k.shape[-2], dtype=q.dtype).expand(*k.shape[:-1], k.shape[-2])
    return call(q, k, eye) != 0


@pytest.mark.usefixtures("fresh_compilations")
def test_compiled_is_eager_the_same_mask_and_gradients():
    inputs = _qkv((2, 2, 33, 8), (2, 2, 40, 8), 4)
    q, k, v = (t.float().requires_grad_() for t in inputs)

    def call(q, k, v):
        return sdpa(q, k, v, dropout_p=0.3, is_causal=True, seed=12)

    compiled = torch.compile(call, fullgraph=True)
    assert torch.equal(_mask_of(compiled, q.detach(), k.detach()),
                       _mask_of(call, q.detach(), k.detach()))  # fmt: skip
    eager, traced = call(q, k, v), compiled(q, k, v)
    torch.testing.assert_close(traced, eager)
    gradient = torch.randn(eager.shape, generator=torch.Generator().manual_seed(3))
    for a, b in zip(torch.autograd.grad(traced, (q, k, v), gradient),
                    torch.autograd.grad(eager, (q, k, v), gradient), strict=True):
        torch.testing.assert_close(a, b)  # fmt: skip


def test_the_bytes_are_the_same_for_any_thread_count():
    q, k, v = _qkv((2, 4, 200, 32), (2, 4, 300, 32), 16, dtype=torch.float32)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(sdpa(q, k, v, dropout_p=0.2, seed=1))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1])


def test_more_than_65536_keys_past_the_32_bit_index():
    # G * L * S past 2**32 would take long; 70000 keys cross 2**16 in a row, and the
    # known answers of docs/stream.md (tests/test_spec.py) reach index 4899999999
    q, k, v = _qkv((1, 1, 2, 4), (1, 1, 70000, 4), 2)
    got = sdpa(q, k, v, dropout_p=0.5, seed=11)
    torch.testing.assert_close(got, _reference(q, k, v, 0.5, 11), rtol=1e-10,
                               atol=1e-12)  # fmt: skip


_PEAK = """
    import resource, sys, torch
    from cdropout.torch.attention import scaled_dot_product_attention
    torch.set_num_threads(1)
    length = int(sys.argv[1])
    q, k, v = (torch.randn(1, 2, length, 32, requires_grad=True) for _ in range(3))
    scaled_dot_product_attention(q, k, v, dropout_p=0.1, seed=1).sum().backward()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB
"""


def test_memory_grows_linearly_in_t_not_as_t_squared():
    # at T = 4096 one (B, H, T, T) float32 tensor is 134 MB, and PyTorch's path with
    # dropout keeps several; the inputs are 1 MB each
    peaks = []
    for length in (1024, 4096):
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(_PEAK),
                               str(length)], capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stdout.split()[-1]) / 1024)  # MiB
    assert peaks[1] - peaks[0] < 40, peaks


def test_the_stream_index_is_the_flat_index_of_the_probabilities():
    q, k, _ = _qkv((2, 3, 4, 5), (2, 3, 6, 5), 1)
    kept = _mask_of(lambda q, k, v: sdpa(q, k, v, dropout_p=0.5, seed=7), q, k)
    flat = np.ones(kept.numel(), np.float32)
    expected = reference.dropout(flat, 0.5, seed=7, stream="counter") != 0
    assert np.array_equal(kept.reshape(-1).numpy(), expected)
    assert _params.threshold(0.5) == 2**31


def _encoder_layers():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.2, batch_first=True)
    plain = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.2, batch_first=True)
    plain.load_state_dict(layer.state_dict())
    return ct.swap_dropout(layer), plain


@pytest.mark.parametrize("reentrant", [False, True])
def test_a_checkpointed_swapped_layer_recomputes_the_forwards_masks(reentrant):
    # MultiheadAttention enters the mode in its forward, which the recomputation runs
    layer, _ = _encoder_layers()

    def input_grad(run):
        x = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)  # fmt: skip
        torch.manual_seed(0)
        run(x).sum().backward()
        return x.grad

    expected = input_grad(layer)
    checkpointed = input_grad(
        lambda x: torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=reentrant)
    )
    assert torch.equal(checkpointed, expected)


def test_swap_dropout_reaches_multihead_attention_with_the_same_state_and_eval():
    layer, plain = _encoder_layers()
    assert type(layer.self_attn) is ct.MultiheadAttention
    assert isinstance(layer.self_attn, torch.nn.MultiheadAttention)
    assert list(layer.state_dict()) == list(plain.state_dict())
    x = torch.randn(3, 7, 32)
    layer.eval(), plain.eval()
    assert torch.equal(layer(x), plain(x))
    decoder = ct.swap_dropout(torch.nn.TransformerDecoderLayer(32, 4, 64))
    assert type(decoder.self_attn) is type(decoder.multihead_attn) is (
        ct.MultiheadAttention
    )


def test_multihead_attention_drops_its_weights_by_the_stream_in_both_paths():
    torch.manual_seed(0)
    mha = ct.swap_dropout(torch.nn.MultiheadAttention(16, 4, dropout=0.5,
                                                      batch_first=True))  # fmt: skip
    x = torch.randn(2, 6, 16)
    torch.manual_seed(5)
    out, weights = mha(x, x, x, average_attn_weights=False)
    # the weights (softmax, all positive) kept where the stream keeps them, with the
    # key PyTorch's generator gives after manual_seed(5)
    torch.manual_seed(5)
    expected = ct.dropout(torch.ones(2 * 4, 6, 6), 0.5) != 0
    assert torch.equal(weights.reshape(8, 6, 6) != 0, expected)
    # without weights, PyTorch's path is scaled_dot_product_attention: the same mask
    torch.manual_seed(5)
    fused, _ = mha(x, x, x, need_weights=False)
    torch.testing.assert_close(fused, out)


def test_a_swapped_encoder_layer_trains_eagerly_and_compiled_with_the_same_mask():
    layer, _ = _encoder_layers()
    for module in layer.modules():  # only the attention's dropout left
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    x = torch.randn(3, 7, 32)
    results = []
    with torch._inductor.config.patch(fallback_random=True):  # PyTorch's randint
        for step in (layer, torch.compile(layer)):
            torch.manual_seed(5)
            out = step(x)
            out.sum().backward()
            results.append(out.detach())
            assert all(p.grad is not None for p in layer.parameters())
            layer.zero_grad()
    torch.testing.assert_close(results[1], results[0])  # cdropout's mask, compiled too


def test_export_records_the_stream_and_the_program_gives_the_mask():
    class Attend(torch.nn.Module):
        def forward(self, q, k, v):
            return sdpa(q, k, v, dropout_p=0.4, is_causal=True, seed=3)

    q, k, v = (t.float() for t in _qkv((1, 2, 9, 4), (1, 2, 9, 4), 3))
    program = torch.export.export(Attend(), (q, k, v))
    assert "cdropout" not in program.graph_module.code  # PyTorch's operations only
    torch.testing.assert_close(program.module()(q, k, v), Attend()(q, k, v))


@pytest.mark.usefixtures("small_tiles")
def test_wide_heads_and_non_contiguous_inputs():
    q, k, v = _qkv((1, 11, 2, 256), (1, 13, 2, 256), 256)  # (batch, length, heads, D)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # PyTorch's layout, as views
    assert not q.is_contiguous()
    got = sdpa(q, k, v, dropout_p=0.3, seed=8)
    torch.testing.assert_close(got, _reference(q, k, v, 0.3, 8), rtol=1e-12,
                               atol=1e-12)  # fmt: skip


@pytest.mark.filterwarnings(JIT_SCRIPT_DEPRECATED)  # (forward-mode AD's first use)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_torch_func_grad_jvp_and_vmap_give_the_blocked_attentions_mask(causal):
    q, k, v = _qkv((2, 2, 9, 4), (2, 2, 9, 4), 3)

    def call(q):
        return sdpa(q, k, v, dropout_p=0.4, is_causal=causal, seed=6)

    expected = call(q)
    (autograd,) = torch.autograd.grad(call(q.requires_grad_()).sum(), q)
    q = q.detach()
    torch.testing.assert_close(torch.func.grad(lambda t: call(t).sum())(q), autograd)
    out, tangent = torch.func.jvp(call, (q,), (torch.ones_like(q),))
    torch.testing.assert_close(out, expected)
    step = 1e-6  # the tangent is the derivative along ones: a finite difference
    torch.testing.assert_close(tangent, (call(q + step) - call(q - step)) / (2 * step))
    # vmap: each slice has the unbatched call's mask (randomness="same")
    sliced = torch.func.vmap(call, randomness="same")(torch.stack([q, q]))
    torch.testing.assert_close(sliced, torch.stack([expected, expected]))
