"""The WorkerPlugin behind :func:`geosam.distributed.send_model_to_workers` (imports ``distributed``)."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from geosam.distributed import ModelRef, _install
from geosam.model.predictor import RemoteSAM


class ModelPlugin(WorkerPlugin):
    """Puts one model object into each worker's model cache; it is pickled once per worker, never per task."""

    def __init__(self, ref: ModelRef, model: RemoteSAM) -> None:
        self.ref = ref
        self.model = model

    def setup(self, worker: Any) -> None:
        _install(self.ref, self.model)

    def teardown(self, worker: Any) -> None:
        _install(self.ref, None)
