"""Every task derived from referring segmentation, on real labelled images.

With the real network (remotesam-lite, untrained head) the maps are arbitrary, so those tests check
mechanics and consistency between tasks, using a threshold taken from the maps themselves so the
masks are not empty. Fixed probability maps make the expected output of each task exactly known.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
import torch

from geosam.errors import InputError, PromptError
from geosam.model import RemoteSAM, create
from geosam.tasks import (
    caption,
    caption_from_boxes,
    class_scores,
    classify,
    classify_region,
    count,
    detect,
    detect_changes,
    semantic_segment,
)
from geosam.tasks.boxes import mask_to_boxes
from geosam.tasks.region import region_mask
from tests.tasks_fixtures import EVAL_DATA, FixedMaps

CLASSES = ["plane", "vehicle", "building"]
PROMPTS = [f"{c} in the image" for c in CLASSES]


@pytest.fixture(scope="module")
def model() -> RemoteSAM:
    torch.manual_seed(0)
    return RemoteSAM(create("remotesam-lite", input_size=256), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    path = sorted((EVAL_DATA / "hrplanes" / "valid").glob("*.jpg"))[0]
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))  # 360 x 640, real airport chip


@pytest.fixture(scope="module")
def probs(model: RemoteSAM, image: np.ndarray) -> np.ndarray:
    return model.predict(image, PROMPTS)


def _threshold(prob: np.ndarray, share: float = 0.1) -> float:
    """A threshold leaving about ``share`` of the pixels in the mask."""
    return float(np.quantile(prob, 1 - share))


# -- with the real network ---------------------------------------------------------------------


def test_semantic_segment_is_the_confident_argmax_of_the_class_maps(
    model: RemoteSAM, image: np.ndarray, probs: np.ndarray
) -> None:
    t = _threshold(probs.max(axis=0), 0.5)
    labels = model.semantic_segment(image, CLASSES, threshold=t)
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
    expected = np.where(probs.max(axis=0) > t, probs.argmax(axis=0) + 1, 0)
    np.testing.assert_array_equal(labels, expected)
    assert 0 < np.count_nonzero(labels) < labels.size  # some pixels are background


def test_tasks_run_all_classes_in_one_batched_call(image: np.ndarray) -> None:
    fixed = FixedMaps({})
    semantic_segment(fixed, image, CLASSES)
    detect(fixed, image, CLASSES)
    assert fixed.calls == [(1, tuple(PROMPTS))] * 2


def test_detect_count_and_caption_agree(
    model: RemoteSAM, image: np.ndarray, probs: np.ndarray
) -> None:
    t = _threshold(probs, 0.05)
    boxes = model.detect(image, CLASSES, threshold=t)
    counts = model.count(image, CLASSES, threshold=t)
    assert list(boxes) == CLASSES
    assert counts == {c: len(b) for c, b in boxes.items()}
    assert sum(counts.values()) > 0
    h, w = image.shape[:2]
    for b in boxes.values():
        assert b.ndim == 2 and b.shape[1] == 5
        assert np.all((b[:, 0] >= 0) & (b[:, 2] <= w) & (b[:, 1] >= 0) & (b[:, 3] <= h))
        assert np.all((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]))
        assert np.all(np.diff(b[:, 4]) <= 0)  # best first
    text = model.caption(image, CLASSES, threshold=t)
    assert text == caption_from_boxes(boxes, h, w)
    total = re.search(r"^The image contains (.*?)\.", text)
    assert total is not None
    for c, n in counts.items():
        if n:
            assert re.search(rf"\b{n} {c}", total.group(1)), text
    # Every object sits in exactly one grid region.
    placed = sum(int(k) for k in re.findall(r"(\d+) (?:[a-z]+ )?in the", text))
    assert placed == sum(counts.values())


def test_oriented_detection_boxes(model: RemoteSAM, image: np.ndarray, probs: np.ndarray) -> None:
    t = _threshold(probs, 0.05)
    plain = model.detect(image, CLASSES, threshold=t)
    oriented = model.detect(image, CLASSES, oriented=True, threshold=t)
    for c in CLASSES:
        assert oriented[c].shape[1] == 6
        assert np.all((oriented[c][:, 4] >= 0) & (oriented[c][:, 4] < 90))
        # A minimum-area rectangle is never larger than the axis-aligned box of the component.
        if len(oriented[c]) and len(plain[c]) == len(oriented[c]):
            rect_area = np.sort(oriented[c][:, 2] * oriented[c][:, 3])
            box_area = np.sort(
                (plain[c][:, 2] - plain[c][:, 0]) * (plain[c][:, 3] - plain[c][:, 1])
            )
            assert rect_area.sum() <= box_area.sum() + 1e-6


def test_ground_returns_the_union_box_of_the_mask(model: RemoteSAM, image: np.ndarray) -> None:
    expression = "the plane parked by the terminal"  # free text: read by the network
    prob = model.predict(image, expression)
    t = _threshold(prob, 0.03)
    box = model.ground(image, expression, threshold=t)
    assert box is not None and box.shape == (5,)
    rows, cols = np.nonzero(prob > t)
    assert box[:4].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert box[4] == pytest.approx(prob[prob > t].mean(), rel=1e-5)
    assert model.ground(image, expression, threshold=1.0) is None
    with pytest.raises(PromptError):
        model.ground(image, ["two", "expressions"])  # type: ignore[arg-type]


def test_classification_scores_follow_the_max_mean_rule(
    model: RemoteSAM, image: np.ndarray, probs: np.ndarray
) -> None:
    scores = class_scores(model, image, CLASSES)
    expected = 0.5 * probs.max(axis=(1, 2)) + 0.5 * probs.mean(axis=(1, 2))
    assert list(scores.values()) == pytest.approx(expected.tolist(), rel=1e-5)
    low, high = np.sort(expected)[:2]
    t = float(low + high) / 2  # between the two lowest scores: one class out, the others in
    multi = model.classify(image, CLASSES, threshold=t)
    assert isinstance(multi, dict)
    assert set(multi) == {c for c, s in zip(CLASSES, expected, strict=True) if s > t}
    scene = model.classify(image, CLASSES, multi_label=False, threshold=0.0)
    assert scene == CLASSES[int(np.argmax(probs.max(axis=(1, 2))))]
    assert model.classify(image, CLASSES, multi_label=False, threshold=1.0) is None


def test_classify_region_scores_inside_the_region(
    model: RemoteSAM, image: np.ndarray, probs: np.ndarray
) -> None:
    box = [100, 50, 300, 200]
    inside = probs[:, 50:200, 100:300]
    expected = 0.5 * inside.max(axis=(1, 2)) + 0.5 * inside.mean(axis=(1, 2))
    got = classify_region(model, image, box, CLASSES, context=None, threshold=0.0)
    assert got == CLASSES[int(np.argmax(expected))]
    # A polygon covering the same pixels gives the same answer; a crop around it runs too.
    poly = shapely.box(100, 50, 300, 200)
    assert classify_region(model, image, poly, CLASSES, context=None, threshold=0.0) == got
    assert model.classify_region(image, poly, CLASSES, threshold=0.0) in CLASSES
    with pytest.raises(InputError, match="no area"):
        classify_region(model, image, [5, 5, 5, 9], CLASSES)


def test_changes_of_an_image_with_itself_are_none(model: RemoteSAM, image: np.ndarray) -> None:
    prob = model.predict(image, "planes")
    t = _threshold(prob, 0.05)
    ch = model.detect_changes(image, image, "planes", threshold=t)
    assert len(ch.appeared) == 0 and len(ch.disappeared) == 0
    # Every object persists: the components of the mask above the confidence floor.
    assert len(ch.persisted) == len(mask_to_boxes(prob, t, remove_nested=False, nms_iou=None))
    assert np.all(ch.persisted[:, 6] == 1.0)
    with pytest.raises(InputError, match="differ in shape"):
        model.detect_changes(image, image[:100], "planes")


# -- with fixed maps: exact results ------------------------------------------------------------


def _blobs(
    shape: tuple[int, int], *rects: tuple[int, int, int, int], value: float = 0.9
) -> np.ndarray:
    m = np.zeros(shape, dtype=np.float32)
    for x1, y1, x2, y2 in rects:
        m[y1:y2, x1:x2] = value
    return m


def test_detection_caption_and_count_on_known_maps() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    maps = {
        "ship in the image": _blobs(
            (100, 200), (10, 10, 20, 20), (150, 70, 170, 90), (160, 10, 170, 20)
        ),
        "harbor in the image": _blobs((100, 200), (90, 40, 110, 60), value=0.7),
    }
    model = FixedMaps(maps)
    boxes = detect(model, image, ["ship", "harbor", "plane"])
    assert sorted(boxes["ship"][:, :4].tolist()) == [
        [10, 10, 20, 20],
        [150, 70, 170, 90],
        [160, 10, 170, 20],
    ]
    assert boxes["harbor"][0].tolist() == pytest.approx([90, 40, 110, 60, 0.7])
    assert boxes["harbor"].shape == (1, 5)
    assert boxes["plane"].shape == (0, 5)
    assert count(model, image, ["ship", "plane"]) == {"ship": 3, "plane": 0}
    # two moored boats painted as one blob with a dip between their cores: one object, or two
    # with split
    moored = _blobs((100, 200), (40, 40, 80, 60), value=0.7) + _blobs(
        (100, 200), (42, 44, 56, 56), (64, 44, 78, 56), value=0.25
    )
    rafted = FixedMaps({"ship in the image": moored})
    assert count(rafted, image, ["ship"]) == {"ship": 1}
    assert count(rafted, image, ["ship"], split=0.9) == {"ship": 2}
    halves = sorted(detect(rafted, image, ["ship"], split=0.9)["ship"][:, :4].tolist())
    assert halves == [[40, 40, 60, 60], [60, 40, 80, 60]]
    assert caption(model, image, ["ship", "harbor", "plane"]) == (
        "The image contains 3 ships, 1 harbor and no planes. "
        "There is 1 ship in the upper left, 1 in the upper right and 1 in the lower right. "
        "There is 1 harbor in the lower right."
    )
    text3 = caption(model, image, ["ship"], grid=3)
    assert "in the center" not in text3 and "upper left" in text3
    with pytest.raises(InputError, match="grid"):
        caption(model, image, ["ship"], grid=4)


def test_semantic_segment_background_and_class_order() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    a = np.array([[0.9, 0.2, 0.0, 0.6]] * 4)
    b = np.array([[0.8, 0.7, 0.1, 0.6]] * 4)
    labels = semantic_segment(
        FixedMaps({"a in the image": a, "b in the image": b}), image, ["a", "b"]
    )
    assert labels[0].tolist() == [1, 2, 0, 1]  # a tie goes to the first class


def test_classify_on_known_maps() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    full = np.full((10, 10), 0.8)
    spot = np.zeros((10, 10))
    spot[0, 0] = 0.9
    model = FixedMaps({"farmland in the image": full, "pool in the image": spot})
    scores = class_scores(model, image, ["farmland", "pool"])
    assert scores == pytest.approx({"farmland": 0.8, "pool": 0.5 * 0.9 + 0.5 * 0.009})
    assert classify(model, image, ["farmland", "pool"]) == pytest.approx({"farmland": 0.8})
    # Scene classification uses the max alone: the pool's single pixel wins.
    assert classify(model, image, ["farmland", "pool"], multi_label=False) == "pool"


def test_classify_region_on_known_maps() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    left = _blobs((20, 20), (0, 0, 10, 20))
    right = _blobs((20, 20), (10, 0, 20, 20))
    model = FixedMaps({"forest in the image": left, "water in the image": right})
    assert (
        classify_region(model, image, [0, 0, 8, 8], ["forest", "water"], context=None) == "forest"
    )
    tri = shapely.Polygon([(12, 0), (20, 0), (20, 20)])
    assert classify_region(model, image, tri, ["forest", "water"], context=None) == "water"
    mask = np.zeros((20, 20), bool)
    mask[15:, 15:] = True
    assert classify_region(model, image, mask, ["forest", "water"], context=None) == "water"
    assert region_mask([1, 0, 3, 1], 2, 4).astype(int).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]


def test_detect_changes_matches_objects_by_overlap() -> None:
    before_img = np.zeros((50, 50, 3), np.uint8)
    after_img = np.full((50, 50, 3), 1, np.uint8)
    before = _blobs((50, 50), (0, 0, 10, 10), (20, 20, 30, 30))  # A, B
    after = _blobs((50, 50), (22, 21, 32, 31), (40, 40, 45, 48))  # B moved a little, new C

    class TwoDates:
        def predict_batch(self, images: np.ndarray, prompts: object) -> np.ndarray:
            assert images.shape[0] == 2  # both dates in one call
            return np.stack([before, after])[:, None]

    ch = detect_changes(TwoDates(), before_img, after_img, "buildings")
    assert ch.appeared[:, :5].tolist() == [[40, 40, 45, 48, 40]]
    assert ch.disappeared[:, :5].tolist() == [[0, 0, 10, 10, 100]]
    assert ch.persisted[:, :4].tolist() == [[22, 21, 32, 31]]
    assert ch.persisted[0, 6] == pytest.approx(72 / 100)
    assert ch.appeared_area == 40 and ch.disappeared_area == 100
    assert ch.appeared_mask.sum() == 40 and ch.disappeared_mask[:10, :10].all()
    strict = detect_changes(TwoDates(), before_img, after_img, "buildings", min_overlap=0.9)
    assert len(strict.appeared) == 2  # B moved too much to count as the same object


def test_bad_classes_are_rejected(image: np.ndarray) -> None:
    fixed = FixedMaps({})
    with pytest.raises(PromptError, match="unique"):
        detect(fixed, image, ["ship", "ship"])
    with pytest.raises(PromptError, match="no classes"):
        semantic_segment(fixed, image, [])
    with pytest.raises(InputError, match="uint8"):
        detect(fixed, image.astype(np.float32), ["ship"])
