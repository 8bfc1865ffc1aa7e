"""The data engine: importers into one table of labelled instances, referring expressions, chips,
triplet datasets on disk and the PyTorch dataset that trains on them.

>>> from geosam.data import read_coco, read_yolo, read_dota, rasterize
>>> table = read_yolo("ships_ge/train", source="ships_ge")          # doctest: +SKIP

Classes outside the built-in vocabulary are declared first, in code or from a vocabulary file:

>>> register_class("solar-panel", singular="solar panel", look_alikes=["building"])  # doctest: +SKIP
>>> load_vocabulary("my_classes.json")                                              # doctest: +SKIP
"""

from geosam.data.coco import read_coco
from geosam.data.dota import DOTA_CLASSES, read_dota
from geosam.data.images import read_rgb
from geosam.data.instances import InstanceTable
from geosam.data.masks import (
    ISAID_PALETTE,
    LOVEDA_CLASSES,
    VAIHINGEN_CLASSES,
    read_isaid,
    read_semantic_masks,
)
from geosam.data.rasterize import rasterize
from geosam.data.vector import read_box_csv, read_vector_labels
from geosam.data.vocabulary import (
    BUILTIN_CLASSES,
    VOCABULARY,
    ClassInfo,
    canonical_class,
    load_vocabulary,
    phrase,
    register_class,
    register_classes,
)
from geosam.data.yolo import read_yolo

__all__ = [
    "BUILTIN_CLASSES",
    "DOTA_CLASSES",
    "ISAID_PALETTE",
    "LOVEDA_CLASSES",
    "VAIHINGEN_CLASSES",
    "VOCABULARY",
    "ClassInfo",
    "InstanceTable",
    "canonical_class",
    "load_vocabulary",
    "phrase",
    "rasterize",
    "read_box_csv",
    "read_coco",
    "read_dota",
    "read_isaid",
    "read_rgb",
    "read_semantic_masks",
    "read_vector_labels",
    "read_yolo",
    "register_class",
    "register_classes",
]

from geosam.data.builder import build_dataset
from geosam.data.dataset import Augment, TripletDataset
from geosam.data.expressions import Expression, Obj, attribute_expressions, refresh
from geosam.data.sources import SHARED_SOURCES, build_shared_dataset, read_shared_data

__all__ += [
    "SHARED_SOURCES",
    "Augment",
    "Expression",
    "Obj",
    "TripletDataset",
    "attribute_expressions",
    "build_dataset",
    "build_shared_dataset",
    "read_shared_data",
    "refresh",
]
