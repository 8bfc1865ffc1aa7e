"""Reading weights safely: the official RemoteSAMv1.pth layout, geosam safetensors, and bad files.

The official-layout file carries all 1,107 entries of the real network with their real names,
shapes and dtypes, but each tensor is a broadcast view of one element of a small shared storage,
so the file is a few kB instead of 1 GB while torch.load still rebuilds full-shape tensors.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from geosam.errors import CheckpointError
from geosam.model import create, load_model, save_checkpoint
from geosam.model.checkpoint import load_weights, read_checkpoint, read_official_checkpoint
from geosam.model.remotesam_v1 import RemoteSAMv1


@pytest.fixture(scope="module")
def v1() -> Iterator[RemoteSAMv1]:
    yield RemoteSAMv1().eval()


def compact_state(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Entry ``i`` is filled with the value ``i`` (as a broadcast view of one shared storage)."""
    floats = torch.arange(len(reference), dtype=torch.float32)
    longs = torch.arange(len(reference), dtype=torch.long)
    out = {}
    for i, (name, ref) in enumerate(reference.items()):
        base = longs if ref.dtype == torch.long else floats
        out[name] = base[i].expand(ref.shape)
    return out


def save_official(path: Path, model_state: dict[str, torch.Tensor]) -> Path:
    """A file in the layout of the released RemoteSAMv1.pth (train.py's torch.save)."""
    args = argparse.Namespace(
        model="lavt_one", swin_type="base", window12=True, ck_bert="bert-base-uncased", lr=3e-5,
        epochs=40, img_size=896, mha="", fusion_drop=0.0,
    )
    torch.save(
        {
            "model": model_state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 3e-5, "weight_decay": 0.01, "params": [0, 1]}]},
            "epoch": 39,
            "args": args,
            "lr_scheduler": {"base_lrs": [3e-5], "last_epoch": 1000},
        },
        path,
    )
    return path


class MakesMarker:
    """Unpickling this would create a file: stands for arbitrary code in a malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_official_layout_loads_into_v1(v1: RemoteSAMv1, tmp_path: Path) -> None:
    reference = v1.state_dict()
    path = save_official(tmp_path / "RemoteSAMv1.pth", compact_state(reference))
    assert path.stat().st_size < 1_000_000  # really small, yet every entry full-shape
    state = read_official_checkpoint(path)
    assert list(state) == list(reference)
    assert all(state[k].shape == reference[k].shape for k in reference)
    load_weights(v1, state, source=str(path))
    loaded = v1.state_dict()
    names = list(reference)
    for name in ("backbone.patch_embed.proj.weight", "classifier.conv2_2.weight",
                 "text_encoder.encoder.layer.11.output.LayerNorm.bias",
                 "backbone.cim.fusion.3.bn3.num_batches_tracked"):
        assert torch.all(loaded[name] == names.index(name)), name


def test_load_model_reads_official_file(tmp_path: Path) -> None:
    """geosam.load_model builds the network, reads the .pth safely and wraps a predictor."""
    reference = RemoteSAMv1().state_dict()
    path = save_official(tmp_path / "RemoteSAMv1.pth", compact_state(reference))
    model = load_model("remotesam-v1", weights=path, device="cpu", precision="fp32")
    assert model.input_size == 896 and model.precision == "fp32"
    bias = model.network.state_dict()["classifier.conv1_1.bias"]
    assert torch.all(bias == list(reference).index("classifier.conv1_1.bias"))


def test_checkpoint_of_another_architecture_is_refused(v1: RemoteSAMv1, tmp_path: Path) -> None:
    lite = create("remotesam-lite", pretrained=False)
    path = save_official(tmp_path / "lite.pth", compact_state(lite.state_dict()))
    state = read_official_checkpoint(path)
    with pytest.raises(CheckpointError) as err:
        load_weights(v1, state, source=str(path))
    message = str(err.value)
    assert "another architecture" in message
    assert "missing" in message and "backbone.patch_embed.proj.weight" in message
    assert "unexpected" in message and next(iter(lite.state_dict())) in message


def test_wrong_shapes_and_stray_keys_are_named(v1: RemoteSAMv1) -> None:
    state = dict(v1.state_dict())
    state["classifier.conv1_1.weight"] = torch.zeros(3, 512, 1, 1)
    state["module.extra"] = torch.zeros(1)
    del state["backbone.norm3.bias"]
    with pytest.raises(CheckpointError) as err:
        load_weights(v1, state)
    message = str(err.value)
    assert "classifier.conv1_1.weight: file (3, 512, 1, 1) vs model (2, 512, 1, 1)" in message
    assert "1 unexpected: module.extra" in message
    assert "1 missing: backbone.norm3.bias" in message
    assert "another architecture" not in message


def test_truncated_file_is_refused(v1: RemoteSAMv1, tmp_path: Path) -> None:
    path = save_official(tmp_path / "full.pth", compact_state(v1.state_dict()))
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated|corrupt"):
        read_official_checkpoint(cut)


def test_garbage_and_missing_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        read_official_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        read_official_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="safetensors"):
        read_checkpoint(junk)


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # Inside a torch archive, next to real weights.
    archive = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "args": MakesMarker(marker)}, archive)
    # Plain pickle (the legacy, non-zip format).
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps({"model": MakesMarker(marker)}))
    # The payload works: a plain unpickler would create the marker.
    pickle.loads(pickle.dumps(MakesMarker(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    with pytest.raises(CheckpointError, match="could run code"):
        read_official_checkpoint(archive)
    with pytest.raises(CheckpointError):
        read_official_checkpoint(legacy)
    with pytest.raises(CheckpointError):
        load_model("remotesam-v1", weights=archive, device="cpu")
    assert not marker.exists()


def test_safetensors_round_trip_keeps_config_and_tensors(tmp_path: Path) -> None:
    lite = create("remotesam-lite", pretrained=False, input_size=256)
    path = save_checkpoint(lite, tmp_path / "lite.safetensors", epochs=3)
    config, state = read_checkpoint(path)
    assert config["arch"] == "remotesam-lite" and config["epochs"] == 3
    assert config["config"] == lite.config
    # Pretrained parts that ship in their own package (external_weights) are not duplicated.
    own = {k: v for k, v in lite.state_dict().items() if not k.startswith(lite.external_weights)}
    assert sorted(state) == sorted(own)
    assert all(torch.equal(state[k], own[k]) for k in own)
    rebuilt = create(config["arch"], **config["config"])
    load_weights(rebuilt, state)
    assert all(torch.equal(rebuilt.state_dict()[k], own[k]) for k in own)


def test_weights_of_another_architecture_are_named_for_inference_and_training() -> None:
    from geosam.model.build import packaged_weights
    from geosam.model.registry import get_spec
    from geosam.train.trainer import build_network

    lite = packaged_weights(str(get_spec("remotesam-lite").weights))
    with pytest.raises(CheckpointError, match=r"holds a 'remotesam-lite' checkpoint, not 'remotesam-v1'.*--model remotesam-lite"):
        load_model("remotesam-v1", weights=lite, device="cpu")
    with pytest.raises(CheckpointError, match=r"holds a 'remotesam-lite' checkpoint, not 'remotesam-v1'"):
        build_network("remotesam-v1", init="remotesam-lite")
