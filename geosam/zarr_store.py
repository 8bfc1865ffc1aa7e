"""Stream segmentation results into a Zarr store, chunk by chunk, resumably.

:func:`to_zarr` writes the store's metadata and coordinates first (the CRS as a CF ``spatial_ref``
variable, so ``xr.open_zarr(...).rio.crs`` works), then computes and writes each dask chunk as its own
Zarr chunk, and after each one sets that chunk's flag in a small bookkeeping array
(``_geosam_done``, one Zarr chunk per flag, so concurrent writers never touch the same object). Only
when every flag is set does it delete the bookkeeping array and set the ``geosam_complete``
attribute, last. A job that is killed half-way leaves ``geosam_complete = False``; running the same job
again (same result description, checked through the ``geosam_job`` attribute) skips the flagged chunks
and completes the store. :func:`open_result` refuses incomplete stores, so a partial result is never
presented as complete.

>>> prob = geosam.segment(ds, "water")                                    # doctest: +SKIP
>>> to_zarr(prob, "water.zarr")            # resumes if water.zarr holds the same, unfinished job  # doctest: +SKIP
>>> open_result("water.zarr").rio.crs      # CRS.from_epsg(26914)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr

from geosam.distributed import current_client, local_compute_options
from geosam.errors import IncompleteResultError, InputError, JobMismatchError

__all__ = ["COMPLETE_ATTR", "IncompleteResultError", "JobMismatchError", "open_result", "to_zarr"]

COMPLETE_ATTR = "geosam_complete"
JOB_ATTR = "geosam_job"
DONE_VAR = "_geosam_done"


def _regular_chunks(data: da.Array) -> da.Array:
    """Zarr chunks are regular: every dask chunk but the last of each axis must have the same size."""
    target = []
    for chunks in data.chunks:
        first = chunks[0]
        regular = all(c == first for c in chunks[:-1]) and chunks[-1] <= first
        target.append(chunks if regular else max(chunks))
    return data.rechunk(tuple(target))


def _job_description(ds: xr.Dataset, name: Hashable, chunks: tuple[tuple[int, ...], ...]) -> str:
    var = ds[name]
    coords: dict[str, Any] = {}
    for key, coord in var.coords.items():
        values = np.atleast_1d(coord.values)  # scalar coordinates (prompt, spatial_ref) count too
        coords[str(key)] = [str(values[0]), str(values[-1]), len(values)]
    described = {
        "name": str(name),
        "dims": [str(d) for d in var.dims],
        "shape": list(var.shape),
        "chunks": [list(c) for c in chunks],
        "dtype": str(var.dtype),
        "attrs": {k: str(v) for k, v in sorted(var.attrs.items())},
        "coords": coords,
        "crs": str(var.rio.crs),
    }
    text = json.dumps(described, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _open_group(store: Any, mode: str = "r+") -> zarr.Group:
    return zarr.open_group(store, mode=mode)  # type: ignore[arg-type]


def _remove(store: Any) -> None:
    path = Path(os.fspath(store)) if isinstance(store, str | os.PathLike) else None
    if path is not None and path.exists():
        shutil.rmtree(path)
    elif path is None:
        _open_group(store, mode="w")  # clears a store object


def _refuse_foreign(store: Any) -> None:
    """Refuse a path that holds something other than a Zarr store: writing (or ``overwrite``) would
    delete it, and a mistyped output path must never cost a user their files."""
    if not isinstance(store, str | os.PathLike):
        return
    path = Path(os.fspath(store))
    if path.is_file() or (path.is_dir() and any(path.iterdir()) and not _exists(store)):
        raise InputError(
            f"{path} exists and is not a Zarr store; it would be replaced: choose another path"
        )


def _exists(store: Any) -> bool:
    try:
        _open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError, ValueError):
        return False
    return True


def _array(group: zarr.Group, name: str) -> zarr.Array:
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise InputError(f"{name} in the store is a group, not an array")
    return node


def _write_block(
    block: np.ndarray, store: Any, name: str, region: tuple[slice, ...], flat: int
) -> int:
    group = _open_group(store)
    _array(group, name)[region] = block
    _array(group, DONE_VAR)[flat] = 1  # after the data: a flagged chunk is always fully written
    return flat


def to_zarr(
    result: xr.DataArray,
    store: str | os.PathLike[str] | Any,
    *,
    overwrite: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Path | Any:
    """Compute ``result`` chunk by chunk into a Zarr store, resuming an unfinished job.

    - A new store is created; an unfinished store of the *same* job is resumed (chunks already written
      are skipped); a complete store of the same job is left as is; a store holding anything else raises
      :class:`JobMismatchError` unless ``overwrite=True``, which starts afresh.
    - The data variable is named after ``result`` (``probability`` or ``mask``); the CRS is kept as a CF
      ``spatial_ref`` coordinate. Zarr chunks are the dask chunks (made regular if needed).
    - ``progress`` shows a bar of written chunks; ``on_chunk(i)`` is called (in this process) after chunk
      ``i`` is written and flagged.

    Works with the local threaded scheduler and with a dask.distributed Client (workers write their
    chunks directly, so the store must be reachable from them: a shared path or an object store).

    >>> to_zarr(geosam.segment(ds, "ships"), "ships.zarr")                # doctest: +SKIP
    """
    if not isinstance(result, xr.DataArray):
        raise InputError(
            f"to_zarr takes a DataArray from geosam.segment, got {type(result).__name__}"
        )
    name = str(result.name or "probability")
    data = (
        result.data if isinstance(result.data, da.Array) else da.from_array(np.asarray(result.data))
    )
    data = _regular_chunks(data)
    result = result.copy(data=data).rename(name)
    grid_mapping = result.rio.grid_mapping if result.rio.crs is not None else None
    ds = result.to_dataset()
    for coord in ds.coords.values():
        # variable-length strings have a Zarr v3 data type, fixed-width UTF-32 has none
        if coord.dtype.kind == "U":
            ds = ds.assign_coords({coord.name: coord.astype(object)})
    if grid_mapping in ds.coords:
        ds[name].encoding["grid_mapping"] = grid_mapping
    job = _job_description(ds, name, data.chunks)
    blocks = data.to_delayed()
    n_blocks = blocks.size

    _refuse_foreign(store)
    if overwrite:
        _remove(store)
    done = np.zeros(n_blocks, dtype=bool)
    if _exists(store):
        group = _open_group(store, mode="r")
        found = group.attrs.get(JOB_ATTR)
        if found != job:
            raise JobMismatchError(
                f"{store} holds another result (job {found}, this one is {job}): choose another path, or "
                "pass overwrite=True to replace it"
            )
        if group.attrs.get(COMPLETE_ATTR):
            return store
        done = np.asarray(_array(group, DONE_VAR)[:]).astype(bool)
    else:
        _create(ds, name, data, store, job, n_blocks)

    starts = [np.cumsum((0, *c)) for c in data.chunks]
    write = dask.delayed(_write_block, pure=False)
    todo: dict[Any, int] = {}
    for flat, index in enumerate(np.ndindex(*blocks.shape)):
        if done[flat]:
            continue
        region = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index, strict=True))
        task = write(
            blocks[index], store, name, region, flat, dask_key_name=f"geosam-write-{job}-{flat}"
        )
        todo[task] = flat
    _run(list(todo), n_blocks, int(done.sum()), progress, on_chunk)
    _finish(store, n_blocks)
    return store


def _create(ds: xr.Dataset, name: str, data: da.Array, store: Any, job: str, n_blocks: int) -> None:
    ds = ds.copy()
    ds.attrs = {**ds.attrs, JOB_ATTR: job, COMPLETE_ATTR: False}
    # passing an encoding replaces the variable's own (grid_mapping included), so merge them
    encoding: dict[Hashable, dict[str, Any]] = {
        name: {**ds[name].encoding, "chunks": tuple(c[0] for c in data.chunks)}
    }
    ds.to_zarr(store, mode="w", compute=False, encoding=encoding, consolidated=False)
    group = _open_group(store)
    group.create_array(
        DONE_VAR,
        shape=(n_blocks,),
        chunks=(1,),
        dtype="uint8",
        fill_value=0,
        dimension_names=["_geosam_chunk"],
    )


def _run(
    tasks: list[Any],
    total: int,
    already: int,
    progress: bool,
    on_chunk: Callable[[int], None] | None,
) -> None:
    from tqdm import tqdm  # plain text bars: notebooks need no widgets

    bar = tqdm(
        total=total, initial=already, desc="writing chunks", unit="chunk", disable=not progress
    )

    def finished(flat: int) -> None:
        bar.update()
        if on_chunk is not None:
            on_chunk(flat)

    with bar:
        client = current_client()
        if client is not None:
            from distributed import as_completed

            for future in as_completed(client.compute(tasks)):
                finished(int(future.result()))
            return
        from dask.callbacks import Callback

        def posttask(key: Any, value: Any, *args: Any) -> None:
            if isinstance(key, str) and key.startswith("geosam-write-"):
                finished(int(value))

        with Callback(posttask=posttask):
            dask.compute(*tasks, **local_compute_options())


def _finish(store: Any, n_blocks: int) -> None:
    group = _open_group(store)
    missing = n_blocks - int(np.count_nonzero(np.asarray(_array(group, DONE_VAR)[:])))
    if missing:
        raise IncompleteResultError(
            f"{missing} of {n_blocks} chunks of {store} were not written; run again to resume"
        )
    del group[DONE_VAR]
    group.attrs[COMPLETE_ATTR] = True  # last: from here on the store is presented as complete


def open_result(store: str | os.PathLike[str] | Any, **kwargs: Mapping[str, Any]) -> xr.DataArray:
    """Open a complete result written by :func:`to_zarr` (lazily), with its CRS.

    Raises :class:`IncompleteResultError` for a store whose job has not finished.

    >>> open_result("ships.zarr").rio.crs                               # doctest: +SKIP
    """
    try:
        group = _open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        raise InputError(f"no Zarr store at {store}") from err
    if COMPLETE_ATTR not in group.attrs:
        raise InputError(
            f"{store} was not written by geosam.to_zarr (no {COMPLETE_ATTR} attribute)"
        )
    if not group.attrs[COMPLETE_ATTR]:
        written = (
            int(np.count_nonzero(np.asarray(_array(group, DONE_VAR)[:])))
            if DONE_VAR in group
            else 0
        )
        total = _array(group, DONE_VAR).shape[0] if DONE_VAR in group else "?"
        raise IncompleteResultError(
            f"{store} is incomplete ({written} of {total} chunks written): its job was interrupted or is still "
            "running; run the same job again to resume it"
        )
    ds = xr.open_zarr(store, decode_coords="all", consolidated=False, **kwargs)  # type: ignore[arg-type]
    names = [v for v in ds.data_vars if v != DONE_VAR]
    if len(names) != 1:
        raise InputError(f"{store} holds {len(names)} data variables, expected one result: {names}")
    return ds[names[0]]
