"""The packaged remotesam-lite weights: they load offline, silently, and find real objects from text.

The images are real labelled chips from the valid splits (tests/data/eval). The floors are well below
what the model card reports for the whole splits, so the test fails on broken or untrained weights,
not on the odd hard image.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import geosam
from geosam.data import read_rgb
from geosam.errors import CheckpointError
from geosam.evaluation import evaluate, load_dataset
from geosam.model.build import packaged_weights
from geosam.model.checkpoint import read_checkpoint
from geosam.train import build_network
from tests.tasks_fixtures import EVAL_DATA


@pytest.fixture(scope="module")
def model() -> geosam.RemoteSAM:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no trained weights" or any other warning
        return geosam.load_model(device="cpu", precision="fp32")


def test_packaged_checkpoint_is_a_trained_remotesam_lite() -> None:
    config, state = read_checkpoint(packaged_weights("remotesam-lite.safetensors"))
    assert config["arch"] == "remotesam-lite" and config["config"]["input_size"] == 512
    assert config["global_step"] > 0 and "oIoU" in config["metrics"]
    # the frozen MiniLM ships separately in the text-encoder package, not in these weights
    assert state and not any(k.startswith("text_encoder.") for k in state)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("folder", "fmt", "category", "prompt"),
    [("ships_ge/valid", "yolo", "ship", "ships"), ("hrplanes/valid", "coco", "plane", "airplanes")],
)
def test_packaged_weights_find_the_objects_and_nothing_absent(
    model: geosam.RemoteSAM, folder: str, fmt: str, category: str, prompt: str
) -> None:
    table = load_dataset(EVAL_DATA / folder, fmt)
    result = evaluate(
        model, table, prompts={category: prompt}, negatives=["tennis courts"], progress=False
    )
    scores = result.categories[category]
    assert scores.oIoU >= 0.5 and scores.AP50 is not None and scores.AP50 >= 0.25, scores
    assert result.negatives["tennis courts"] == 1.0


def test_prompt_changes_the_answer(model: geosam.RemoteSAM) -> None:
    table = load_dataset(EVAL_DATA / "ships_ge" / "valid", "yolo")
    image = read_rgb(table.images["image"].iloc[0])
    ships, courts = model.predict(image, ["ships", "tennis courts"])
    assert (ships >= 0.5).mean() > 0.002 and (courts >= 0.5).mean() < 0.0005


def test_training_starts_from_the_packaged_weights_by_name(model: geosam.RemoteSAM) -> None:
    # `geosam train --init remotesam-lite` fine-tunes the packaged weights without a path to them.
    net = build_network("remotesam-lite", init="remotesam-lite")
    served = model.network.state_dict()
    assert all(torch.equal(value, served[key]) for key, value in net.state_dict().items())
    with pytest.raises(CheckpointError):
        build_network("remotesam-lite", init="remotesam-v1")  # a name without packaged weights stays a path
