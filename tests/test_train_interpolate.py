"""Blending the packaged weights with a fine-tuned copy (geosam.train.interpolate, WiSE-FT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from geosam.cli import main
from geosam.errors import CheckpointError, InputError
from geosam.model import create, load_model, save_checkpoint
from geosam.model.checkpoint import read_checkpoint, write_checkpoint
from geosam.train import interpolate_weights
from geosam.train.trainer import weights_path

PACKAGED = weights_path("remotesam-lite")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged weights moved as fine-tuning on a source of one's own would move them."""
    config, state = read_checkpoint(PACKAGED)
    generator = torch.Generator().manual_seed(0)
    moved = {k: v * (1 + 0.05 * torch.randn(v.shape, generator=generator)) if v.is_floating_point() else v + 5
             for k, v in state.items()}
    config["data"] = {"sources": {"roofs": {"licence": "CC BY 4.0", "commercial_use": True}},
                      "classes": ["building", "roof"]}
    return write_checkpoint(moved, config, tmp_path_factory.mktemp("tuned") / "roofs.safetensors")


def test_weights_move_linearly_from_start_to_tuned(tuned: Path, tmp_path: Path) -> None:
    _, start = read_checkpoint(PACKAGED)
    _, end = read_checkpoint(tuned)
    for weight in (0.0, 0.3, 1.0):
        _, blend = read_checkpoint(interpolate_weights("remotesam-lite", tuned, weight, tmp_path / f"{weight}.safetensors"))
        for name in ("backbone.stem.0.weight", "backbone.stem.1.running_var", "presence.mlp.2.bias"):
            torch.testing.assert_close(blend[name], (1 - weight) * start[name] + weight * end[name])
        counters = [k for k, v in blend.items() if not v.is_floating_point()]
        assert counters and all(torch.equal(blend[k], end[k]) for k in counters)
    assert torch.equal(read_checkpoint(tmp_path / "0.0.safetensors")[1]["backbone.stem.0.weight"],
                       start["backbone.stem.0.weight"])


def test_the_blend_records_its_parents_and_the_licences_of_both(tuned: Path, tmp_path: Path) -> None:
    config, _ = read_checkpoint(interpolate_weights(PACKAGED, tuned, 0.5, tmp_path / "half.safetensors"))
    assert config["interpolated"] == {"start": str(PACKAGED), "tuned": str(tuned), "weight": 0.5}
    sources = config["data"]["sources"]
    # The packaged weights saw non-commercial data: the blend inherits that as much as the tuned part.
    assert sources["roofs"]["commercial_use"] and not sources["dota"]["commercial_use"]
    assert {"roof", "plane", "ship"} <= set(config["data"]["classes"])
    assert "metrics" not in config  # the parents' validation figures do not describe the blend


def test_the_blend_predicts_between_its_parents(tuned: Path, tmp_path: Path) -> None:
    half = interpolate_weights("remotesam-lite", tuned, 0.5, tmp_path / "half.safetensors")
    image = torch.Generator().manual_seed(1)
    pixels = (torch.rand(96, 96, 3, generator=image) * 255).to(torch.uint8).numpy()

    def probabilities(model: Any) -> torch.Tensor:
        return torch.as_tensor(load_model(model, device="cpu").predict(pixels, "ships"))

    start, middle, end = (probabilities(m) for m in (PACKAGED, half, tuned))
    assert not torch.equal(middle, start) and not torch.equal(middle, end)
    assert (middle - start).abs().mean() < (end - start).abs().mean()


def test_other_networks_and_weights_outside_the_segment_are_refused(tuned: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"weight 1.5 is outside \[0, 1\]"):
        interpolate_weights("remotesam-lite", tuned, 1.5, tmp_path / "x.safetensors")
    grown = save_checkpoint(create("remotesam-lite", pretrained=False, fine_head=True), tmp_path / "fine.safetensors")
    with pytest.raises(CheckpointError, match=r"not the same network.*only in the tuned weights: fine_head\."):
        interpolate_weights("remotesam-lite", grown, 0.5, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        interpolate_weights("remotesam-lit", tuned, 0.5, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_writes_a_blend_that_loads(tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "blend.safetensors"
    assert main(["interpolate", "--start", "remotesam-lite", "--tuned", str(tuned), "--weight", "0.25",
                 "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert read_checkpoint(out)[0]["interpolated"]["weight"] == 0.25
    assert main(["interpolate", "--start", "nowhere.safetensors", "--tuned", str(tuned), "--weight", "0.5",
                 "--out", str(out)]) == 1
    assert "--start or --tuned 'nowhere.safetensors' not found" in capsys.readouterr().err
