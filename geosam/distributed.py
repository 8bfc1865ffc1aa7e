"""Models in worker processes, and Dask clusters set up for torch.

Tasks never carry a model. They carry a :class:`ModelRef` (a name, weights path, device and
precision: a few bytes), and :func:`get_model` loads the model the first time a process needs it and
keeps it in a module-level cache, so each worker process (or the local process, with the threaded
scheduler) holds one copy whatever the number of tasks. Text prompts are then encoded once per
process by the predictor's own cache.

A model *object* (say, one you fine-tuned in this session) cannot be rebuilt from a name: the local
process caches it under a token, and on a ``dask.distributed`` cluster :func:`send_model_to_workers` sends it
to every worker once, through a WorkerPlugin (``segment`` does this for you when a distributed Client
is the current scheduler).

Clusters: :func:`local_cluster` starts a ``LocalCluster`` that avoids the nanny's
``MALLOC_TRIM_THRESHOLD_`` setting, which makes torch about 1.7x slower in workers; call
:func:`configure_dask` yourself before creating any other cluster (``dask_cuda.LocalCUDACluster``,
``dask worker`` processes started from Python). GPU workers are described in docs/distributed.md.

>>> from geosam.distributed import local_cluster
>>> from distributed import Client
>>> with local_cluster(n_workers=2) as cluster, Client(cluster):          # doctest: +SKIP
...     geosam.segment(ds, "ships").remotesam.to_zarr("ships.zarr")
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask

from geosam.errors import GeosamError, InputError
from geosam.model.build import DEFAULT_MODEL, load_model
from geosam.model.predictor import RemoteSAM, check_scales

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

__all__ = [
    "GPU",
    "ModelRef",
    "clear_model_cache",
    "configure_dask",
    "get_model",
    "local_cluster",
    "local_compute_options",
    "model_lock",
    "model_ref",
    "send_model_to_workers",
]

#: Resource annotation for tasks that run the network on a GPU worker (``dask cuda worker --resources GPU=1``).
GPU: dict[str, float] = {"GPU": 1}

ModelLike = RemoteSAM | str | os.PathLike[str] | None


@dataclass(frozen=True)
class ModelRef:
    """Everything a process needs to load (or find) a model; small enough to travel in every task.

    ``input_size`` runs a fully convolutional network such as remotesam-lite at another square window
    size (smaller is faster, for tests and previews). ``instance`` is the token of a model object
    registered with :func:`model_ref` / :func:`send_model_to_workers`.

    >>> ModelRef("remotesam-lite", device="cuda", precision="bf16").load()   # doctest: +SKIP
    """

    name: str = DEFAULT_MODEL
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    input_size: int | None = None
    tta: bool = False
    scales: tuple[float, ...] = (1.0,)
    instance: str | None = None

    def __post_init__(self) -> None:
        # the network's coarsest map is 1/32 of the window; one cell of it cannot be normalised
        size = self.input_size
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or size < 64 or size % 32
        ):
            raise InputError(f"input_size must be a multiple of 32 of at least 64, got {size!r}")
        # a tuple keeps the reference hashable (it keys the per-process model cache)
        object.__setattr__(self, "scales", check_scales(self.scales))

    def load(self) -> RemoteSAM:
        """Build the predictor (without the cache: use :func:`get_model` in tasks)."""
        if self.instance is not None:
            raise GeosamError(
                f"the model object {self.instance!r} is not registered in this process: model objects only "
                "exist where they were made; on a dask.distributed cluster call "
                "geosam.distributed.send_model_to_workers(client, model) (segment does when the Client is the default "
                "scheduler), or pass a model name / checkpoint path, which every worker can load itself"
            )
        model = load_model(
            self.name,
            weights=self.weights,
            device=self.device,
            precision=self.precision,  # type: ignore[arg-type]
            tta=self.tta,
            scales=self.scales,
        )
        if self.input_size is not None and self.input_size != model.input_size:
            if not model.network.resizable:
                raise InputError(
                    f"{self.name} has a fixed input size; input_size cannot be changed"
                )
            # The network is fully convolutional: the predictor just resizes windows to this size.
            model.network.input_size = self.input_size
            model.network.config["input_size"] = self.input_size
        return model


_cache: dict[ModelRef, RemoteSAM] = {}
_locks: dict[ModelRef, threading.Lock] = {}
_cache_lock = threading.Lock()
_tokens: weakref.WeakKeyDictionary[RemoteSAM, str] = weakref.WeakKeyDictionary()


def model_ref(model: ModelLike | ModelRef = None, **options: Any) -> ModelRef:
    """The :class:`ModelRef` for ``model``: ``None`` (the default model), a name or checkpoint path, a
    ``ModelRef``, or a loaded :class:`~geosam.RemoteSAM` (cached in this process under a token).

    ``options`` (``device``, ``precision``, ``weights``, ``input_size``, ``tta``, ``scales``) apply to names and paths.

    >>> model_ref("remotesam-lite", device="cpu")
    ModelRef(name='remotesam-lite', weights=None, device='cpu', precision='auto', input_size=None, tta=False, scales=(1.0,), instance=None)
    """
    if isinstance(model, ModelRef):
        return model
    if isinstance(model, RemoteSAM):
        if options:
            raise InputError(
                f"options {sorted(options)} only apply to model names, not to a loaded model"
            )
        with _cache_lock:
            token = _tokens.get(model)
            if token is None:
                token = f"{model.name}-{uuid.uuid4().hex[:12]}"
                _tokens[model] = token
            ref = ModelRef(name=model.name, instance=token)
            _cache[ref] = model
            _locks.setdefault(ref, threading.Lock())
        return ref
    if model is None:
        return ModelRef(**options)
    if isinstance(model, str | os.PathLike):
        return ModelRef(name=os.fspath(model), **options)
    raise InputError(
        f"model must be a model name, a checkpoint path, a geosam.RemoteSAM or None, got {type(model).__name__}"
    )


def get_model(ref: ModelRef) -> RemoteSAM:
    """The model for ``ref`` in this process, loaded on first use and cached (thread-safe)."""
    model = _cache.get(ref)
    if model is not None:
        return model
    with _cache_lock:
        model = _cache.get(ref)
        if model is None:
            model = ref.load()
            _cache[ref] = model
            _locks.setdefault(ref, threading.Lock())
    return model


def model_lock(ref: ModelRef) -> threading.Lock:
    """A lock per cached model: one forward pass at a time per process, so concurrent dask threads do not
    fight over the device (torch already uses all CPU cores, or the whole GPU, for one batch)."""
    get_model(ref)
    return _locks[ref]


def clear_model_cache() -> None:
    """Forget the cached models of this process (frees their memory once nothing else holds them)."""
    with _cache_lock:
        _cache.clear()
        _locks.clear()


def _install(ref: ModelRef, model: RemoteSAM | None) -> None:
    """Put ``model`` into this process's cache under ``ref`` (None removes it)."""
    with _cache_lock:
        if model is None:
            _cache.pop(ref, None)
        else:
            _cache[ref] = model
            _locks.setdefault(ref, threading.Lock())


def send_model_to_workers(client: Client, model: RemoteSAM | ModelRef) -> ModelRef:
    """Make a model object available on every worker of ``client`` (also those that join later).

    Names and paths need no registration: workers load them themselves. Returns the ref to pass as
    ``segment(..., model=ref)``; :func:`geosam.segment` calls it for the default Client.

    >>> ref = send_model_to_workers(client, geosam.load_model(weights="runs/ft/best.safetensors"))  # doctest: +SKIP
    """
    ref = model_ref(model)
    if ref.instance is None:
        return ref
    obj = _cache[ref] if isinstance(model, ModelRef) else model
    from geosam._model_plugin import ModelPlugin

    client.register_plugin(ModelPlugin(ref, obj), name=f"geosam-model-{ref.instance}")
    return ref


def current_client() -> Client | None:
    """The dask.distributed Client that computes dask collections now, if any (never imports distributed)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return None
    scheduler = dask.config.get("scheduler", None)
    return client if scheduler in (None, "dask.distributed", "distributed") else None


def local_compute_options() -> dict[str, Any]:
    """Scheduler options for computing a segmentation without a distributed Client.

    On a machine without a GPU the network already uses every CPU core for each batch, so dask's
    default thread pool would only make other tasks (reading, writing) fight torch for the cores
    (measured about 15 % slower end to end); the synchronous scheduler runs one task at a time instead.
    With a GPU, threads keep the CPU work going while the device computes. A scheduler chosen by the
    user through ``dask.config`` always wins.
    """
    if dask.config.get("scheduler", None) is not None:
        return {}
    import torch

    return {} if torch.cuda.is_available() else {"scheduler": "sync"}


def configure_dask(*, gpu: bool = False) -> None:
    """Dask settings for torch workers; call before creating a cluster.

    - Drops the ``MALLOC_TRIM_THRESHOLD_=65536`` that the nanny sets in workers: it made torch about
      1.7x slower (frequent trimming returns and re-faults torch's large buffers).
    - ``gpu=True`` also turns off low-level task fusion, which can drop the ``resources={'GPU': 1}``
      annotation of the model tasks (dask issue 7036), so the scheduler would send them to any worker.
    """
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    if gpu:
        dask.config.set({"optimization.fuse.active": False})


def local_cluster(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    *,
    memory_limit: str | float | None = "auto",
    **kwargs: Any,
) -> LocalCluster:
    """A ``distributed.LocalCluster`` of worker processes set up for torch (see :func:`configure_dask`).

    One thread per worker: each worker process runs one forward pass at a time with one torch thread
    (the nanny sets ``OMP_NUM_THREADS=1``), and processes, not threads, give the parallelism.

    >>> with local_cluster(2) as cluster, Client(cluster) as client:   # doctest: +SKIP
    ...     result.compute()
    """
    configure_dask()
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        memory_limit=memory_limit,
        **kwargs,
    )
