"""Training: RemoteSAM's loss, AdamW with a poly schedule, AMP, DistributedDataParallel,
resumable checkpoints and per-epoch validation, over a triplet dataset from :mod:`geosam.data`.

>>> from geosam.train import TrainConfig, train
>>> train(TrainConfig(data="triplets", out="runs/lite", epochs=2))   # doctest: +SKIP
"""

from geosam.train.interpolate import interpolate_state, interpolate_weights
from geosam.train.loss import LossParts, contact_loss, dice_loss, segmentation_loss
from geosam.train.metrics import SegmentationMeter
from geosam.train.trainer import TrainConfig, TrainResult, build_network, evaluate_triplets, train

__all__ = [
    "LossParts",
    "SegmentationMeter",
    "TrainConfig",
    "TrainResult",
    "build_network",
    "contact_loss",
    "dice_loss",
    "evaluate_triplets",
    "interpolate_state",
    "interpolate_weights",
    "segmentation_loss",
    "train",
]
