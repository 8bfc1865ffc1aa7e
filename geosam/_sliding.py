"""The dask engine behind :func:`geosam.segment`: blended sliding windows over a lazy image.

Input: a dask array ``(..., 4, H, W)`` uint8 of R, G, B and validity (0 = nodata) channels.
Output: a dask array ``(..., P, H, W)`` float32 of foreground probability per prompt, NaN on nodata.

How windows meet chunks (memory stays bounded by the chunk size, work is never repeated):

1. Windows lie on a global grid (:class:`geosam.tiling.WindowGrid`), independent of the chunks.
2. The padded scene is rechunked into *processing blocks* of ``k`` x ``k`` windows (``c = k * stride``
   pixels, ``k`` chosen so a block is about the size of an input chunk, and at least the device batch);
   each block is extended by the ``overlap`` pixels its last windows reach into the next block
   (``dask.array.overlap`` with an asymmetric depth ``(0, overlap)``).
3. Each block runs its own windows (each window once, in device batches) and accumulates
   ``weight * probability``, divided by the total weight of all windows covering each pixel. That total
   depends only on the window grid (a valid pixel is covered by windows that all hold a valid pixel,
   so none of them is skipped), so it is computed, not gathered.
4. Overlap-add: each output block adds the ``overlap``-pixel tail of the previous block in y, in x and
   at the corner (``map_overlap`` with depth ``(overlap, 0)``). A window larger than a chunk is fine: the
   blocks are made from the window grid, and the chunks of the input are only their source.

Results therefore do not depend on the input chunking, up to float32 summation order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch

from geosam.distributed import ModelRef, get_model, model_lock
from geosam.tiling import Blend, WindowGrid

__all__ = ["block_windows", "sliding_segment"]


def block_windows(stride: int, overlap: int, chunk_hint: int, batch_size: int) -> int:
    """Windows per processing block along each axis: about one input chunk, at least a device batch."""
    k = max(1, round(chunk_hint / stride), math.ceil(math.sqrt(batch_size)))
    return max(k, math.ceil(overlap / stride))  # a block must be at least as long as the overlap


def _pad_end(x: da.Array, axis: int, amount: int) -> da.Array:
    """``x`` extended by ``amount`` pixels along ``axis`` with its own mirror image, as one chunk.

    Black padding is read by the network as a scene of its own (a 400-pixel scene padded to a
    512-pixel window lost every field it held), so the last windows see the scene mirrored at its
    edge instead; the padding is cropped from the output. ``da.pad`` would cut it into chunks as
    small as the edge chunk: a million tasks for a scene of a few pixels.
    """
    if amount <= 0:
        return x
    size = x.shape[axis]
    edge = min(size, amount)  # the mirror of the last `amount` pixels, repeated for a tiny scene
    index: list[slice] = [slice(None)] * x.ndim
    index[axis] = slice(size - edge, size)
    strip = x[tuple(index)].rechunk({axis % x.ndim: edge})
    chunks = list(strip.chunks)
    chunks[axis] = (amount,)

    def mirror(block: np.ndarray) -> np.ndarray:
        widths = [(0, 0)] * block.ndim
        widths[axis] = (0, amount)
        return np.take(np.pad(block, widths, mode="symmetric"), np.arange(edge, edge + amount), axis)

    tail = strip.map_blocks(mirror, chunks=tuple(chunks), dtype=x.dtype)
    return da.concatenate([x, tail], axis=axis)


def sliding_segment(
    rgbv: da.Array,
    prompts: Sequence[str],
    ref: ModelRef,
    *,
    tile: int,
    overlap: int,
    batch_size: int | None = None,
    blend: Blend = "cosine",
    resources: dict[str, float] | None = None,
) -> da.Array:
    """Probabilities ``(..., P, H, W)`` float32 for ``rgbv`` ``(..., 4, H, W)`` uint8 (see the module docs)."""
    *lead, _, height, width = rgbv.shape
    nlead = len(lead)
    gy, gx = WindowGrid(height, tile, overlap, blend), WindowGrid(width, tile, overlap, blend)
    stride = gy.stride
    chunk_hint = max(max(rgbv.chunks[-2]), max(rgbv.chunks[-1]))
    k = block_windows(stride, overlap, chunk_hint, batch_size or 1)
    c = k * stride
    nby, nbx = math.ceil(gy.count / k), math.ceil(gx.count / k)
    padded_h, padded_w = nby * c + overlap, nbx * c + overlap

    def block_chunks(n: int) -> tuple[int, ...]:
        return (c,) * (n - 1) + (c + overlap,)

    lead_chunks = ((1,) * n for n in lead)
    padded = _pad_end(_pad_end(rgbv, -2, padded_h - height), -1, padded_w - width)
    padded = padded.rechunk((*lead_chunks, 4, block_chunks(nby), block_chunks(nbx)))
    ay, ax = nlead + 1, nlead + 2
    ext = padded
    if overlap:
        ext = da.overlap.overlap(
            padded, depth={ay: (0, overlap), ax: (0, overlap)}, boundary="none"
        )

    n_prompts = len(prompts)
    out_chunks = (*ext.chunks[:nlead], (n_prompts,), *ext.chunks[-2:])
    predict_kwargs: dict[str, Any] = dict(
        ref=ref, prompts=tuple(prompts), grid_y=gy, grid_x=gx, k=k, batch_size=batch_size
    )
    name = "remotesam-windows-" + dask.base.tokenize(ext, predict_kwargs, resources)
    with dask.annotate(resources=resources) if resources else contextlib.nullcontext():
        probs = da.map_blocks(
            _predict_block,
            ext,
            chunks=out_chunks,
            dtype=np.float32,
            meta=np.empty((0,) * ext.ndim, np.float32),
            name=name,
            **predict_kwargs,
        )
    if overlap:
        probs = da.map_overlap(
            _add_tails,
            probs,
            depth={ay: (overlap, 0), ax: (overlap, 0)},
            boundary="none",
            trim=False,
            chunks=(*out_chunks[: nlead + 1], block_chunks(nby), block_chunks(nbx)),
            dtype=np.float32,
            meta=np.empty((0,) * probs.ndim, np.float32),
            overlap=overlap,
            counts=(nby, nbx),
        )
    probs = probs[..., :height, :width]
    return probs.rechunk((*rgbv.chunks[:nlead], n_prompts, *rgbv.chunks[-2:]))


def _predict_block(
    block: np.ndarray,
    *,
    ref: ModelRef,
    prompts: tuple[str, ...],
    grid_y: WindowGrid,
    grid_x: WindowGrid,
    k: int,
    batch_size: int | None,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Blended probabilities of the windows that start in this processing block."""
    assert block_info is not None
    iy, ix = block_info[None]["chunk-location"][-2:]
    c = k * grid_y.stride
    origin_y, origin_x = iy * c, ix * c
    lead, (height, width) = block.shape[:-3], block.shape[-2:]
    ys = [grid_y.starts[t] - origin_y for t in range(iy * k, min(iy * k + k, grid_y.count))]
    xs = [grid_x.starts[t] - origin_x for t in range(ix * k, min(ix * k + k, grid_x.count))]
    coverage = np.outer(
        grid_y.coverage(origin_y, origin_y + height), grid_x.coverage(origin_x, origin_x + width)
    )
    out = np.full((*lead, len(prompts), height, width), np.nan, dtype=np.float32)
    for idx in np.ndindex(*lead):
        image = block[idx]
        valid = image[3] > 0
        # Windows holding only nodata are never run: their pixels stay NaN.
        windows = [
            (y, x) for y in ys for x in xs if valid[y : y + grid_y.tile, x : x + grid_x.tile].any()
        ]
        if not windows:
            continue
        acc = _run_windows(ref, image, windows, prompts, grid_y, grid_x, batch_size)
        with np.errstate(invalid="ignore", divide="ignore"):
            prob = (acc / coverage).astype(np.float32)
        prob[:, ~valid] = np.nan
        out[idx] = prob
    return out


def _run_windows(
    ref: ModelRef,
    image: np.ndarray,
    windows: Sequence[tuple[int, int]],
    prompts: Sequence[str],
    grid_y: WindowGrid,
    grid_x: WindowGrid,
    batch_size: int | None,
) -> np.ndarray:
    """Sum of ``weight * probability`` of ``windows`` (top-left corners in ``image``), ``(P, H, W)``."""
    model = get_model(ref)
    tile = grid_y.tile
    n_prompts = len(prompts)
    batch = batch_size or model.batch_size
    per_group = max(1, batch // n_prompts)  # windows preprocessed together
    device = model.device
    with model_lock(ref), torch.inference_mode():
        weight = torch.from_numpy(
            np.outer(grid_y.profile(), grid_x.profile()).astype(np.float32)
        ).to(device)
        acc = torch.zeros((n_prompts, *image.shape[-2:]), dtype=torch.float32, device=device)
        for g0 in range(0, len(windows), per_group):
            group = windows[g0 : g0 + per_group]
            crops = np.stack(
                [image[:3, y : y + tile, x : x + tile].transpose(1, 2, 0) for y, x in group]
            )
            pixels = model.preprocess(crops)
            pairs = model.pair_probabilities(pixels, list(prompts), batch_size=batch)
            for img_idx, prompt_idx, probs in pairs:
                if probs.shape[-2:] != (tile, tile):
                    probs = model.resize_back(probs, (tile, tile))
                for j, (w, p) in enumerate(zip(img_idx.tolist(), prompt_idx.tolist(), strict=True)):
                    y, x = group[w]
                    acc[p, y : y + tile, x : x + tile] += probs[j] * weight
        return acc.cpu().numpy()


def _add_tails(
    block: np.ndarray,
    *,
    overlap: int,
    counts: tuple[int, int],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Overlap-add: this block's probabilities plus the tails of the previous blocks in y and x."""
    assert block_info is not None
    loc = block_info[None]["chunk-location"][-2:]
    out = block
    for axis, i, n in ((-2, loc[0], counts[0]), (-1, loc[1], counts[1])):
        out = _fold(out, axis, overlap, has_prefix=i > 0, is_last=i == n - 1)
    return out


def _fold(
    arr: np.ndarray, axis: int, overlap: int, *, has_prefix: bool, is_last: bool
) -> np.ndarray:
    size = arr.shape[axis]
    start = overlap if has_prefix else 0
    stop = size if is_last else size - overlap  # this block's own tail goes to the next block
    body = np.take(arr, np.arange(start, stop), axis=axis)
    if has_prefix:
        head = np.take(arr, np.arange(overlap), axis=axis)
        index = [slice(None)] * arr.ndim
        index[axis] = slice(0, overlap)
        body[tuple(index)] += head
    return body
