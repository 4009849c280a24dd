"""Scaled dot-product attention with dropout on the attention probabilities, its mask
regenerated from the counter stream and never stored.

PyTorch's CPU flash kernel refuses dropout, so F.scaled_dot_product_attention with
dropout_p > 0 takes its math path, which materialises and saves the (L, S) scores,
probabilities and mask of every (batch, head). Here the forward and the backward walk
tiles of queries and keys with an online softmax (FlashAttention's algorithm): the
forward saves the output and one logsumexp per query row; the backward recomputes each
tile's probabilities from them and regenerates its mask. The matrix products are
PyTorch's (batched over every (batch, head) at once); the mask is cdropout's C kernel
on each tile (_kernel.dropout_rows).

The mask of probability (g, i, j), g the flat index of the (batch, head) dimensions,
query i of L, key j of S, is the counter stream's element (g * L + i) * S + j of the
call's key (docs/stream.md, "Attention"): any tiling computes it, and
cdropout.reference.attention writes it out. Under torch.compile or torch.export the
call is written out in PyTorch's operations (the same mask; the (L, S) tensors are
materialised there).
"""

import math

import torch

from cdropout import _kernel, _params
from cdropout.torch import _ops, _state, _traced, functional

# Tile sizes: queries x keys per step. 128 x 128 was the fastest of 64-256 x 128-512
# (bench/attention.py, AMD EPYC Zen 4, one thread, D = 64): larger key tiles compute
# more past the diagonal under is_causal and ran no faster without it; smaller ones
# pay PyTorch's per-call cost more often. A tile of every (batch, head) stays a few MB.
QUERY_TILE = 128
KEY_TILE = 128


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """torch.nn.functional.scaled_dot_product_attention, with its dropout on the
    attention probabilities done by cdropout's counter stream inside a blocked
    (flash-style) attention: nothing of size (L, S) is saved for the backward pass.

    Arguments as PyTorch's: query (..., L, E), key (..., S, E), value (..., S, Ev),
    attn_mask (bool: True takes part; or float, added to the scores; broadcast to
    (..., L, S)), dropout_p, is_causal (query i sees keys j <= i), scale (default
    1/sqrt(E)), enable_gqa (key and value with fewer heads, on dimension -3). With
    dropout_p = 0 it is PyTorch's function. Inverted dropout, as PyTorch's: kept
    probabilities times 1/(1 - dropout_p).

    seed, generator
        The key, as for cdropout.torch.dropout: an int seed, or 64 bits drawn from
        `generator` (PyTorch's default CPU generator when None). Probability (g, i, j)
        is kept where the counter stream's word (g * L + i) * S + j of the key is at
        least round(dropout_p * 2**32), g the flat index of the leading dimensions.

    Tensors on other devices get PyTorch's function.
    """
    _check(query, key, value, attn_mask, is_causal, enable_gqa)
    p = functional.probability(dropout_p)
    if scale is not None and not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a float or None, got {type(scale).__name__}")
    functional.check_seed(seed, generator)
    if p == 0.0 or not query.is_cpu:
        return torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask, p, is_causal, scale=scale,
            enable_gqa=enable_gqa,
        )  # fmt: skip
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(groups, dim=-3)
        value = value.repeat_interleave(groups, dim=-3)
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    query = query.expand(*lead, *query.shape[-2:])
    key = key.expand(*lead, *key.shape[-2:])
    value = value.expand(*lead, *value.shape[-2:])
    factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    eager = _state.eager(query) and not (
        attn_mask is not None and attn_mask.requires_grad
    )  # (a mask's gradient: the written-out form, which autograd differentiates)
    stream_key = functional.draw_key(seed, generator, eager)
    # a torch.func transform (grad, vmap, jvp) differentiates and batches the written
    # out form; vmap gives each slice the unbatched call's mask (randomness="same"),
    # as cdropout.torch's dropout does
    if not eager or _state.transforms_active():
        if not isinstance(stream_key, torch.Tensor):
            stream_key = _ops.key_tensor(stream_key)
        return written_out(query, key, value, attn_mask, p, is_causal, factor,
                           stream_key)  # fmt: skip
    return _Blocked.apply(query, key, value, attn_mask, p, is_causal, factor,
                          stream_key)  # fmt: skip


def _check(query, key, value, attn_mask, is_causal, enable_gqa):
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(tensor).__name__}"
            )
        if tensor.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 dimensions (..., length, features), got "
                f"shape {tuple(tensor.shape)}"
            )
        if tensor.dtype not in functional.DTYPES:
            raise TypeError(
                f"{name} must have dtype float16, bfloat16, float32 or float64, got "
                f"{tensor.dtype}"
            )
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            "query, key and value must have one dtype, got "
            f"{query.dtype}, {key.dtype} and {value.dtype}"
        )
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(
            "key must be (..., S, E) for query (..., L, E), and value (..., S, Ev): "
            f"got query {tuple(query.shape)}, key {tuple(key.shape)}, value "
            f"{tuple(value.shape)}"
        )
    _params.flag(is_causal, "is_causal")
    _params.flag(enable_gqa, "enable_gqa")
    if is_causal and attn_mask is not None:
        raise ValueError("attn_mask and is_causal must not both be given, as PyTorch's")
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(
                "attn_mask must be a torch.Tensor or None, got "
                f"{type(attn_mask).__name__}"
            )
        if attn_mask.dtype != torch.bool and attn_mask.dtype != query.dtype:
            raise TypeError(
                f"attn_mask must be bool or query's dtype ({query.dtype}), got "
                f"{attn_mask.dtype}"
            )
    if enable_gqa:
        if query.dim() < 3 or key.dim() < 3 or value.dim() < 3:
            raise ValueError(
                "enable_gqa needs a heads dimension (-3) in query, key and value"
            )
        heads, kv_heads = query.shape[-3], key.shape[-3]
        if value.shape[-3] != kv_heads or heads % kv_heads:
            raise ValueError(
                "with enable_gqa, query's heads must be a multiple of key's and "
                f"value's (dimension -3), got {heads}, {kv_heads} and "
                f"{value.shape[-3]}"
            )


def _compute_dtype(dtype):
    """16-bit floats compute in float32, rounded once, as PyTorch computes them."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _mask_tile(attn_mask, lead, length, size, rows, cols, dtype):
    """The additive mask of the tile rows x cols of (groups, L, S), or None."""
    if attn_mask is None:
        return None
    tile = attn_mask.expand(*lead, length, size)[..., rows, cols]
    tile = tile.reshape(-1, tile.shape[-2], tile.shape[-1])
    if tile.dtype == torch.bool:
        return torch.zeros(tile.shape, dtype=dtype).masked_fill_(~tile, -math.inf)
    return tile.to(dtype)


def _scores(q, k, above, additive, shift=None):
    """Scores of a tile (q already scaled), minus `shift` (a logsumexp per row, inside
    the product), with the user's mask and, without a shift, the causal mask (`above`:
    the tile's keys past its queries, or None) applied. q is a contiguous tile and k a
    slice of the keys: MKL's batched product of two strided slices ran at half the
    speed (AMD Zen 4), of one contiguous operand and one slice at full speed."""
    if shift is None:
        scores = torch.bmm(q, k.transpose(1, 2))
    else:
        scores = torch.baddbmm(shift.neg(), q, k.transpose(1, 2))
    if additive is not None:
        scores.add_(additive)
    if above is not None and shift is None:  # (with a shift, _exp_ masks)
        scores.masked_fill_(above, -math.inf)
    return scores


# PyTorch's exp takes 10-40 times as long on an input whose result underflows (below
# -87: a denormal or 0; 4 times on -inf), measured on AMD Zen 4; masked scores and
# scores far below their row's largest are such inputs. They are raised to -87 (whose
# exp, 1.6e-38, is a normal float, nothing beside a row's largest, 1), and the masked
# ones set to 0 after.
_EXP_FLOOR = -87.0


def _exp_(scores, above, additive):
    """exp of a tile's shifted scores, in place; 0 where masked."""
    scores.clamp_min_(_EXP_FLOOR).exp_()
    if above is not None:
        scores.masked_fill_(above, 0.0)
    if additive is not None:
        scores.masked_fill_(additive == -math.inf, 0.0)
    return scores


def _tiles(length, size, causal):
    """(i0, i1, [(j0, j1, above), ...]) for each query tile: the key tiles it sees
    (under is_causal, none wholly past its last query) and, for a tile that reaches past
    the diagonal, its causal mask (made once per shape and distance)."""
    masks = {}
    for i0 in range(0, length, QUERY_TILE):
        i1 = min(i0 + QUERY_TILE, length)
        keys = []
        for j0 in range(0, min(size, i1) if causal else size, KEY_TILE):
            j1 = min(j0 + KEY_TILE, size)
            above = None
            if causal and j1 - 1 > i0:
                shape = (i1 - i0, j1 - j0, j0 - i0)
                if shape not in masks:
                    rows = torch.arange(i0, i1).unsqueeze(1)
                    masks[shape] = torch.arange(j0, j1).unsqueeze(0) > rows
                above = masks[shape]
            keys.append((j0, j1, above))
        yield i0, i1, keys


def _drop(tile, stream_key, p, i0, j0, length, size):
    """Inverted dropout, in place, of a tile (groups, rows, cols) of probabilities at
    queries i0.. and keys j0.. (C-contiguous)."""
    if p == 1.0:  # every element dropped (no threshold below 2**32 says so)
        tile.zero_()
        return
    array = tile.view(-1, tile.shape[-1]).numpy()
    scale = _params.training_scale(p, "inverted", array.dtype)
    _kernel.dropout_rows(
        array, stream_key, i0 * size + j0, size, tile.shape[1], length * size,
        _params.threshold(p), scale, _ops._threads(_ops.TORCH_THREADS),
    )  # fmt: skip


def _flat(tensor, dtype):
    """(groups, length, features) in the compute dtype."""
    return tensor.reshape(-1, tensor.shape[-2], tensor.shape[-1]).to(dtype)


class _Blocked(torch.autograd.Function):
    """The blocked attention: forward saves (q, k, v, output, logsumexp); backward
    recomputes each tile's probabilities and regenerates its mask. A product into a
    strided slice runs one small product per (batch, head): each accumulates into a
    contiguous tile, added into its slice."""

    @staticmethod
    def forward(ctx, query, key, value, attn_mask, p, causal, factor, stream_key):
        dtype = _compute_dtype(query.dtype)
        lead, length, size = query.shape[:-2], query.shape[-2], key.shape[-2]
        q, k, v = _flat(query, dtype), _flat(key, dtype), _flat(value, dtype)
        groups = q.shape[0]
        out = torch.empty(groups, length, v.shape[-1], dtype=dtype)
        lse = torch.empty(groups, length, dtype=dtype)
        for i0, i1, keys in _tiles(length, size, causal):
            qi = q[:, i0:i1] * factor  # (contiguous: see _scores)
            top = torch.full((groups, i1 - i0), -math.inf, dtype=dtype)
            total = torch.zeros(groups, i1 - i0, dtype=dtype)
            acc = torch.zeros(groups, i1 - i0, v.shape[-1], dtype=dtype)
            for j0, j1, above in keys:
                additive = _mask_tile(attn_mask, lead, length, size, slice(i0, i1),
                                      slice(j0, j1), dtype)  # fmt: skip
                scores = _scores(qi, k[:, j0:j1], above, additive)
                new_top = torch.maximum(top, scores.amax(-1))
                base = torch.where(new_top == -math.inf, 0.0, new_top)  # all masked
                probs = _exp_(scores.sub_(base.unsqueeze(-1)), above, additive)
                rescale = torch.exp(top - base)
                total.mul_(rescale).add_(probs.sum(-1))
                _drop(probs, stream_key, p, i0, j0, length, size)
                acc.mul_(rescale.unsqueeze(-1)).baddbmm_(probs, v[:, j0:j1])
                top = new_top
            # a row with no key to see gives 0, as PyTorch's
            out[:, i0:i1] = acc.div_(torch.where(total == 0, 1.0, total).unsqueeze(-1))
            lse[:, i0:i1] = torch.where(total == 0, math.inf, top + torch.log(total))
        ctx.save_for_backward(query, key, value, attn_mask, out, lse)
        ctx.arguments = (p, causal, factor, stream_key)
        return out.to(query.dtype).reshape(*lead, length, value.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        query, key, value, attn_mask, out, lse = ctx.saved_tensors
        p, causal, factor, stream_key = ctx.arguments
        dtype = out.dtype
        lead, length, size = query.shape[:-2], query.shape[-2], key.shape[-2]
        q, k, v = _flat(query, dtype), _flat(key, dtype), _flat(value, dtype)
        d_out = _flat(grad, dtype)
        delta = (d_out * out).sum(-1)  # rowsum(dO * O): rowsum(P * dP) with dropout too
        # full-size gradients, each tile's product added into its slice (a product
        # straight into a strided slice runs one small product per (batch, head); kept
        # apart and concatenated, the tiles took the gradients' memory twice)
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for i0, i1, keys in _tiles(length, size, causal):
            qi, doi = q[:, i0:i1] * factor, d_out[:, i0:i1].contiguous()
            lse_i, delta_i = lse[:, i0:i1].unsqueeze(-1), delta[:, i0:i1].unsqueeze(-1)
            dqi = torch.zeros_like(qi)
            for j0, j1, above in keys:
                kj, vj = k[:, j0:j1], v[:, j0:j1]
                additive = _mask_tile(attn_mask, lead, length, size, slice(i0, i1),
                                      slice(j0, j1), dtype)  # fmt: skip
                scores = _scores(qi, kj, above, additive, lse_i)
                probs = _exp_(scores, above, additive)
                dropped = probs.clone()
                _drop(dropped, stream_key, p, i0, j0, length, size)
                dv[:, j0:j1] += torch.bmm(dropped.transpose(1, 2), doi)
                # dS = P * (dP - delta), dP the mask on dO V^T: P * dP is the dropped
                # probabilities times dO V^T, so the mask is applied once
                d_dropped = torch.bmm(doi, vj.transpose(1, 2))
                d_scores = torch.addcmul(probs.mul_(delta_i.neg()), dropped, d_dropped)
                dqi.baddbmm_(d_scores, kj)
                dk[:, j0:j1] += torch.bmm(d_scores.transpose(1, 2), qi)  # (q scaled)
            dq[:, i0:i1] = dqi.mul_(factor)
        grads = [
            part.to(tensor.dtype).reshape(tensor.shape)
            for part, tensor in ((dq, query), (dk, key), (dv, value))
        ]
        return (*grads, None, None, None, None, None)


def written_out(query, key, value, attn_mask, p, causal, factor, stream_key):
    """The attention in PyTorch's operations, the mask by the stream's rule (what a
    tracer records; the (L, S) tensors are materialised): scores, softmax, inverted
    dropout of the probabilities, then @ value. stream_key: a 0-d int64 tensor."""
    dtype = _compute_dtype(query.dtype)
    length, size = query.shape[-2], key.shape[-2]
    scores = (query.to(dtype) @ key.to(dtype).transpose(-2, -1)) * factor
    if causal:
        above = torch.ones(length, size, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(above, -math.inf)
    if attn_mask is not None:
        scores = (scores.masked_fill(~attn_mask, -math.inf)
                  if attn_mask.dtype == torch.bool else scores + attn_mask)  # fmt: skip
    probs = torch.softmax(scores, -1)
    probs = torch.where(torch.isnan(probs), 0.0, probs)  # a row with no key to see
    if p == 1.0:
        probs = torch.zeros_like(probs)
    else:
        index = torch.arange(probs.numel(), dtype=torch.int64).reshape(probs.shape)
        keep = _traced.words(stream_key, index) >= _params.threshold(p)
        scale = _params.training_scale(p, "inverted", _traced.arithmetic(dtype))
        probs = torch.where(keep, probs * scale, 0.0)
    return (probs @ value.to(dtype)).to(query.dtype)
