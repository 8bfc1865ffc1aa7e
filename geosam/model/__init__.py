"""Networks, the model registry, checkpoints and the predictor.

>>> from geosam.model import create, list_models, load_model
"""

from geosam.model.base import PromptSegmenter, SegmentParts, TextFeatures
from geosam.model.build import load_model
from geosam.model.checkpoint import save_checkpoint
from geosam.model.predictor import RemoteSAM
from geosam.model.registry import create, list_models, register_model

__all__ = [
    "PromptSegmenter",
    "RemoteSAM",
    "SegmentParts",
    "TextFeatures",
    "create",
    "list_models",
    "load_model",
    "register_model",
    "save_checkpoint",
]
