"""The predictor contract on the real default network (remotesam-lite, pretrained parts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geosam
from geosam.distributed import ModelRef
from geosam.errors import InputError, ModelNotFoundError, PromptError
from geosam.model import RemoteSAM, create
from geosam.model.predictor import resolve_device, resolve_precision


@pytest.fixture(scope="module")
def model() -> RemoteSAM:
    torch.manual_seed(0)
    return RemoteSAM(create("remotesam-lite", input_size=256), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    from PIL import Image

    from tests.lite_fixtures import sample_rgb

    return np.asarray(Image.fromarray(sample_rgb()).resize((300, 200)))


def test_predict_single_prompt_gives_hxw_probabilities(model: RemoteSAM, image: np.ndarray) -> None:
    prob = model.predict(image, "ships")
    assert prob.shape == image.shape[:2]
    assert prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert prob.std() > 0  # a real map, not a constant


def test_predict_list_gives_prompt_axis_in_order(model: RemoteSAM, image: np.ndarray) -> None:
    probs = model.predict(image, ["ships", "harbor"])
    assert probs.shape == (2, *image.shape[:2])
    np.testing.assert_allclose(probs[1], model.predict(image, "harbor"), atol=1e-5)
    assert not np.allclose(probs[0], probs[1])  # the prompt changes the output


def test_predict_batch_matches_single_predictions(model: RemoteSAM, image: np.ndarray) -> None:
    images = np.stack([image, image[::-1].copy(), image[:, ::-1].copy()])
    batch = model.predict_batch(images, ["ships", "planes"])
    assert batch.shape == (3, 2, *image.shape[:2])
    for i in range(3):
        np.testing.assert_allclose(
            batch[i], model.predict(images[i], ["ships", "planes"]), atol=1e-5
        )


def test_prompt_text_is_encoded_once(model: RemoteSAM, image: np.ndarray) -> None:
    model._text_cache.clear()
    model.predict(image, ["ships", "ships", "planes"])
    model.predict(image, "ships")
    assert sorted(model._text_cache) == ["planes", "ships"]


def test_input_of_network_size_is_not_resized(model: RemoteSAM) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    pixels = model.preprocess(img[None])
    expected = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - 127 / 255) / (128 / 255)
    torch.testing.assert_close(pixels[0], expected)


def test_other_sizes_are_resized_like_the_official_pil_transform(
    model: RemoteSAM, image: np.ndarray
) -> None:
    from PIL import Image

    pixels = model.preprocess(image[None])[0]
    mean = torch.tensor(model.network.pixel_mean).view(3, 1, 1)
    std = torch.tensor(model.network.pixel_std).view(3, 1, 1)
    back = (pixels * std + mean).mul(255).round().permute(1, 2, 0).numpy()
    expected = np.asarray(Image.fromarray(image).resize((256, 256), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(back, expected)


def test_probabilities_are_resized_back_with_the_network_mode(model: RemoteSAM) -> None:
    probs = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    nearest = torch.nn.functional.interpolate(probs[:, None], size=(4, 4))[:, 0]
    model.network.output_resize = "nearest"
    try:
        torch.testing.assert_close(model.resize_back(probs, (4, 4)), nearest)
    finally:
        model.network.output_resize = "bilinear"
    smooth = model.resize_back(probs, (4, 4))
    assert 0 < smooth[0, 0, 1] < 1  # bilinear blends neighbours
    from geosam.model.remotesam_v1 import RemoteSAMv1

    assert RemoteSAMv1.output_resize == "nearest"  # as the official code


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((3, 64, 64), np.uint8), "channels-first"),
        (np.zeros((64, 64, 4), np.uint8), "RGBN"),
        (np.zeros((64, 64, 1), np.uint8), "single band"),
        (np.zeros((64, 64), np.uint8), "shape"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_are_named(model: RemoteSAM, bad: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        model.predict(bad, "ships")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prompts", "match"),
    [("", "empty"), ("   ", "empty"), ([], "no prompts"), (["ok", 3], "string"), (None, "string"),
     (b"ships", "bytes")],
)
def test_bad_prompts_are_named(
    model: RemoteSAM, image: np.ndarray, prompts: object, match: str
) -> None:
    with pytest.raises(PromptError, match=match):
        model.predict(image, prompts)  # type: ignore[arg-type]


def test_bf16_on_cpu_stays_close_to_fp32(image: np.ndarray) -> None:
    torch.manual_seed(0)
    net = create("remotesam-lite", input_size=256)
    fp32 = RemoteSAM(net, device="cpu", precision="fp32").predict(image, "ships")
    bf16 = RemoteSAM(net, device="cpu", precision="bf16").predict(image, "ships")
    assert np.abs(fp32 - bf16).max() < 0.02


def test_device_and_precision_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", torch.device("cpu"))


def test_bad_devices_and_batch_sizes_are_named(model: RemoteSAM, image: np.ndarray) -> None:
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no usable CUDA GPU"):
            resolve_device("cuda")
    for bad in (-1, 0, 2.5, True):
        # -1 used to return uninitialised memory as probabilities
        with pytest.raises(InputError, match="batch_size"):
            RemoteSAM(model.network, device="cpu", batch_size=bad)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="batch_size"):
            pixels = model.preprocess(image[None])
            next(model.pair_probabilities(pixels, ["ships"], batch_size=bad))  # type: ignore[arg-type]
    assert RemoteSAM(model.network, device="cpu", batch_size=np.int64(3)).batch_size == 3
    for size in (7, 32, 100):
        with pytest.raises(InputError, match="input_size"):
            ModelRef(input_size=size)


def test_unknown_model_name_lists_registered_models() -> None:
    with pytest.raises(ModelNotFoundError, match="remotesam-lite"):
        geosam.load_model("remotesam-xl")


def test_tta_averages_the_mirrored_views_except_for_directions(model: RemoteSAM, image: np.ndarray) -> None:
    square = np.ascontiguousarray(image[:, :200])  # resized to the input like any image
    mirrored = RemoteSAM(model.network, device="cpu", precision="fp32", tta=True)
    assert "tta=True" in repr(mirrored)
    expected = (
        model.predict(square, "ships")
        + model.predict(np.ascontiguousarray(square[:, ::-1]), "ships")[:, ::-1]
        + model.predict(np.ascontiguousarray(square[::-1]), "ships")[::-1]
    ) / 3
    both = mirrored.predict(square, ["ships", "the ship on the left"])
    np.testing.assert_allclose(both[0], expected, atol=1e-5)
    assert np.abs(both[0] - model.predict(square, "ships")).max() > 1e-3  # the views do differ
    # "left" would be "right" in the mirrored image: that prompt is predicted once
    np.testing.assert_allclose(both[1], model.predict(square, "the ship on the left"), atol=1e-6)
    loaded = geosam.distributed.ModelRef("remotesam-lite", device="cpu", tta=True, scales=(0.75, 1)).load()
    assert loaded.tta and loaded.scales == (0.75, 1.0)


def test_scales_average_the_views_seen_smaller_and_larger(model: RemoteSAM, image: np.ndarray) -> None:
    def at(*scales: float, tta: bool = True) -> RemoteSAM:
        return RemoteSAM(model.network, device="cpu", precision="fp32", tta=tta, scales=scales)

    prompts = ["ships", "the ship on the left"]
    both = at(0.75, 1.25)
    assert "scales=(0.75, 1.25)" in repr(both) and "scales" not in repr(model)
    # each scale's view (mirrored or not, per prompt) weighs the same
    expected = (at(0.75).predict(image, prompts) + at(1.25).predict(image, prompts)) / 2
    np.testing.assert_allclose(both.predict(image, prompts), expected, atol=1e-5)
    smaller = at(0.5, tta=False).predict(image, "ships")
    assert smaller.shape == image.shape[:2] and smaller.min() >= 0 and smaller.max() <= 1
    assert np.abs(smaller - model.predict(image, "ships")).max() > 1e-3  # the views do differ
    np.testing.assert_array_equal(at(1, tta=False).predict(image, "ships"), model.predict(image, "ships"))
    for bad in ((), (0,), (1, 1), (-0.5,), (5,), ("big",), 1.0):
        with pytest.raises(InputError, match="scales must be distinct positive window scales"):
            RemoteSAM(model.network, device="cpu", scales=bad)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="scales must be"):
            ModelRef(scales=bad)  # type: ignore[arg-type]
    assert ModelRef(scales=[0.75, 1]).scales == (0.75, 1.0)  # type: ignore[arg-type]  # hashable


def test_group_prompts_are_the_union_of_their_members(model: RemoteSAM, image: np.ndarray) -> None:
    from PIL import Image

    # At the input size, so that no resizing comes between the members' maps and their union.
    image = np.asarray(Image.fromarray(image).resize((model.input_size,) * 2))
    members = model.predict(image, ["all the cars", "all the large vehicles"])
    got = model.predict(image, ["ships", "all the vehicles", "cars"])
    np.testing.assert_allclose(got[1], members.max(axis=0), atol=1e-6)
    np.testing.assert_allclose(got[[0, 2]], model.predict(image, ["ships", "cars"]), atol=1e-6)
    batch = model.predict_batch(np.stack([image, image[::-1]]), "vehicles")
    flipped = np.ascontiguousarray(image[::-1])
    np.testing.assert_allclose(batch[1, 0], model.predict(flipped, ["cars", "large vehicles"]).max(0), atol=1e-6)
    # The network's own reading of the group name differs from the union.
    own = RemoteSAM(model.network, device="cpu", precision="fp32", unite_groups=False)
    assert "unite_groups=False" in repr(own) and "unite_groups" not in repr(model)
    assert np.abs(own.predict(image, "all the vehicles") - got[1]).max() > 1e-3
