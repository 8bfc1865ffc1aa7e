"""Computing dask collections with a progress bar, on the local scheduler or a distributed Client."""

from __future__ import annotations

from typing import Any

import dask

from geosam.distributed import current_client, local_compute_options


def compute(*collections: Any, desc: str, progress: bool = True) -> list[Any]:
    """``dask.compute(*collections)`` with a tqdm bar of finished tasks (local) or results (distributed)."""
    client = current_client()
    if client is not None:
        futures = client.compute(list(collections))
        if progress:
            from distributed import as_completed
            from tqdm import tqdm  # plain text bars: notebooks need no widgets

            with tqdm(total=len(futures), desc=desc, unit="chunk") as bar:
                for _ in as_completed(futures):
                    bar.update()
        return list(client.gather(futures))
    options = local_compute_options()
    if not progress:
        return list(dask.compute(*collections, **options))
    from tqdm.dask import TqdmCallback

    with TqdmCallback(desc=desc, unit="task"):
        return list(dask.compute(*collections, **options))
