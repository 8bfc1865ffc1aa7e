"""remotesam-lite: real pretrained parts, language fusion, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import geosam
from geosam.errors import CheckpointError
from geosam.model import RemoteSAM, create, save_checkpoint
from geosam.model.build import packaged_weights
from geosam.model.lite.backbone import _pretrained_path
from geosam.model.text import minilm_path, tokenize
from tests.lite_fixtures import sample_rgb


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return create("remotesam-lite", input_size=256).eval()


def test_pretrained_parts_come_from_the_installed_packages(net: torch.nn.Module) -> None:
    path = _pretrained_path("efficientnet-lite0")
    effnet = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(
        net.backbone.blocks[5]._depthwise_conv.weight, effnet["_blocks.5._depthwise_conv.weight"]
    )
    minilm = load_file(str(Path(minilm_path()) / "model.safetensors"))
    torch.testing.assert_close(
        net.text_encoder.bert.encoder.layer[3].attention.self.query.weight,
        minilm["encoder.layer.3.attention.self.query.weight"],
    )


def test_fusion_gates_start_closed_so_the_backbone_is_undisturbed(net: torch.nn.Module) -> None:
    pixels = torch.randn(1, 3, 128, 128)
    ids, mask = tokenize(["ships"])
    text = net.encode_text(ids, mask)
    with torch.no_grad():
        x = net.backbone.run_stem(pixels)
        plain = x
        for stage, fusion in enumerate(net.fusion):
            x = net.backbone.run_stage(stage, x)
            plain = net.backbone.run_stage(stage, plain)
            x, x_res = fusion(x, text.features, text.mask)
            torch.testing.assert_close(x, plain)
            assert x_res.abs().sum() > 0  # the language-aware map is live


def test_every_parameter_reaches_the_output(net: torch.nn.Module) -> None:
    ids, mask = tokenize(["ships"])
    net.zero_grad()
    net.train()
    try:
        net(torch.randn(2, 3, 128, 128), ids.repeat(2, 1), mask.repeat(2, 1)).sum().backward()
    finally:
        net.eval()
    dead = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert dead == []
    net.zero_grad()


@pytest.mark.parametrize("size", [160, 320])
def test_any_input_size_runs_with_the_same_weights(net: torch.nn.Module, size: int) -> None:
    ids, mask = tokenize(["ships", "planes"])
    with torch.no_grad():
        logits = net(torch.randn(2, 3, size, size), ids, mask)
    assert logits.shape == (2, 2, size, size)


@pytest.mark.parametrize("shape", [(256, 256), (97, 97), (96, 130)])
def test_folded_batchnorms_compute_the_same_logits_without_touching_the_state_dict(shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = create("remotesam-lite", input_size=256).eval()  # ImageNet BatchNorm statistics
    ids, mask = tokenize(["ships", "the largest plane"])
    pixels = torch.randn(2, 3, *shape)  # "same" padding differs for even and odd sides
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        plain = net(pixels, ids, mask)
        RemoteSAM(net, device="cpu")  # the predictor prepares its network
        assert net.backbone.folded is not None
        folded = net(pixels, ids, mask)
    torch.testing.assert_close(folded, plain, atol=1e-4, rtol=1e-4)
    assert (folded.argmax(1) != plain.argmax(1)).float().mean() < 1e-3
    assert net.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    net.train()  # the folded copies would go stale as soon as the weights change
    assert net.backbone.folded is None
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(pixels, ids, mask), plain)


def test_padding_tokens_do_not_change_the_output(net: torch.nn.Module) -> None:
    ids, mask = tokenize(["ships"])
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ref = net(pixels, ids, mask)
        ids2 = ids.clone()
        ids2[mask == 0] = 1037  # garbage where the mask is zero
        torch.testing.assert_close(net(pixels, ids2, mask), ref)


def test_checkpoint_round_trip_keeps_predictions(net: torch.nn.Module, tmp_path: Path) -> None:
    with torch.no_grad():  # make the head non-trivial so the round trip is meaningful
        for fusion in net.fusion[:-1]:
            fusion.gate[2].weight.normal_(0, 0.1)
    path = save_checkpoint(net, tmp_path / "lite.safetensors", epochs=3)
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        assert '"epochs": 3' in f.metadata()["geosam_config"]
    assert not any(k.startswith("text_encoder.") for k in keys)  # frozen MiniLM is not stored
    assert any(k.startswith("fusion.") for k in keys)
    assert path.stat().st_size < 30e6

    image = sample_rgb()
    before = RemoteSAM(net, device="cpu").predict(image, "ships")
    loaded = geosam.load_model(path, device="cpu")
    assert loaded.input_size == 256
    np.testing.assert_allclose(loaded.predict(image, "ships"), before, atol=1e-6)
    again = geosam.load_model("remotesam-lite", weights=path, device="cpu")
    np.testing.assert_allclose(again.predict(image, "ships"), before, atol=1e-6)


def test_checkpoint_errors_are_readable(net: torch.nn.Module, tmp_path: Path) -> None:
    path = save_checkpoint(net, tmp_path / "lite.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        geosam.load_model(truncated)
    with pytest.raises(CheckpointError, match="not found"):
        geosam.load_model("remotesam-lite", weights=tmp_path / "missing.safetensors")

    # Another decoder width: names match, shapes do not.
    other = create("remotesam-lite", input_size=256, decoder_channels=(32, 48, 64))
    state = {k: v for k, v in other.state_dict().items() if not k.startswith("text_encoder.")}
    from geosam.model.checkpoint import load_weights

    with pytest.raises(CheckpointError, match="wrong shape"):
        load_weights(net, state, source="other.safetensors")


def test_coordinate_map_spans_the_grid() -> None:
    from geosam.model.lite.fusion import coordinate_map

    grid = coordinate_map(torch.zeros(2, 5, 4, 8))
    assert grid.shape == (2, 2, 4, 8)
    assert grid[0, 0, 0, 0] < 0 < grid[0, 0, 0, -1]  # x grows to the right
    assert grid[0, 1, 0, 0] < 0 < grid[0, 1, -1, 0]  # y grows downwards
    torch.testing.assert_close(grid[0, 0].mean(), torch.tensor(0.0))


def test_scene_context_starts_as_identity_and_sees_the_words(net: torch.nn.Module) -> None:
    context = net.context
    x = torch.randn(1, 320, 6, 6)
    ids, mask = tokenize(["the largest ship"])
    words = net.encode_text(ids, mask)
    with torch.no_grad():
        torch.testing.assert_close(context(x, words.features, words.mask), x)
        torch.nn.init.normal_(context.out.weight, std=0.05)
        a = context(x, words.features, words.mask)
        other = net.encode_text(*tokenize(["the smallest ship"]))
        b = context(x, other.features, other.mask)
        torch.nn.init.zeros_(context.out.weight)
    assert not torch.allclose(a, b)  # the prompt changes the global reasoning


def test_fine_head_grows_on_a_checkpoint_without_it(tmp_path: Path) -> None:
    from geosam.model.checkpoint import load_weights
    from geosam.train import build_network

    packaged = packaged_weights("remotesam-lite.safetensors")
    base = build_network("remotesam-lite", init=str(packaged))
    grown = build_network("remotesam-lite", init=str(packaged), options={"fine_head": True})
    assert base.fine_head is None and grown.fine_head is not None
    assert grown.config["fine_head"] is True
    # Until training moves it, the head keeps the packaged predictions (up to resampling).
    image = sample_rgb()
    before = RemoteSAM(base.eval(), device="cpu").predict(image, "ships")
    after = RemoteSAM(grown.eval(), device="cpu").predict(image, "ships")
    assert before.max() > 0.5
    assert np.mean((before > 0.5) != (after > 0.5)) < 1e-3
    # A checkpoint lacking the head is refused outside `build_network(..., options=...)`.
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("text_encoder.")}
    with pytest.raises(CheckpointError, match=r"missing: fine_head\."):
        load_weights(grown, state, source="packaged")
    # Once trained, the head changes the output, and its checkpoint reloads with the head.
    torch.manual_seed(0)  # the draw decides how far the output moves
    with torch.no_grad():
        torch.nn.init.normal_(grown.fine_head.correction.weight, std=2.0)
    moved = RemoteSAM(grown, device="cpu").predict(image, "ships")
    assert np.abs(moved - after).max() > 0.05
    path = save_checkpoint(grown, tmp_path / "fine.safetensors")
    loaded = geosam.load_model(path, device="cpu")
    np.testing.assert_allclose(loaded.predict(image, "ships"), moved, atol=1e-5)


def test_contact_head_grows_neutral_and_carves_touching_objects_apart() -> None:
    from scipy import ndimage

    from geosam.model.lite.decoder import carve
    from geosam.train import build_network

    packaged = packaged_weights("remotesam-lite.safetensors")
    base = build_network("remotesam-lite", init=str(packaged)).eval()
    grown = build_network("remotesam-lite", init=str(packaged), options={"contact_head": True}).eval()
    assert grown.grown_weights == ("contact_head.",) and grown.config["contact_head"] is True
    image = sample_rgb()
    before = RemoteSAM(base, device="cpu").predict(image, "ships")
    after = RemoteSAM(grown, device="cpu").predict(image, "ships")
    assert before.max() > 0.5 and np.mean((before > 0.5) != (after > 0.5)) < 1e-3
    # forward(parts=True) gives the uncarved logits and the contact logit that segment() combines.
    ids, mask = tokenize(["ships"])
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        logits, contact = grown(x, ids, mask, parts=True)
        assert contact is not None and contact.shape == (1, 1, 64, 64)
        torch.testing.assert_close(grown(x, ids, mask), carve(logits, contact))
    # Two touching objects are one component until the contact between them is cut out.
    fg = torch.full((1, 1, 8, 16), -6.0)
    fg[..., 2:6, 2:14] = 6.0
    two_class = torch.cat([torch.zeros_like(fg), fg], dim=1)
    touch = torch.full((1, 1, 8, 16), -6.0)
    touch[..., 7:9] = 6.0
    plain = torch.softmax(two_class, 1)[0, 1].numpy() > 0.5
    cut = torch.softmax(carve(two_class, touch), 1)[0, 1].numpy() > 0.5
    assert ndimage.label(plain)[1] == 1 and ndimage.label(cut)[1] == 2
    assert (plain & ~cut).sum() == 8  # only the contact pixels go
    # A diffuse, unlikely contact (0.3) leaves an object of marginal confidence (0.6) whole.
    marginal = torch.tensor([[[[0.0]], [[math.log(0.6 / 0.4)]]]])
    kept = torch.softmax(carve(marginal, torch.tensor([[[[math.log(0.3 / 0.7)]]]])), 1)[0, 1]
    assert kept.item() == pytest.approx(0.6, abs=1e-4)
