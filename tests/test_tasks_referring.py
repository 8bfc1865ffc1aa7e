"""Attribute and relation expressions resolved by geometry: the parsers cover the data engine's
grammar, the selection picks the right component, and refer/ground use it."""

from __future__ import annotations

import numpy as np
import pytest

from geosam.data.expressions import _POSITION_TEXT, _RELATION_TEXT, _SIZE_TEXT, Expression, render
from geosam.data.vocabulary import VOCABULARY
from geosam.errors import InputError
from geosam.tasks import (
    ground,
    parse_attribute,
    parse_relation,
    refer,
    select_component,
    select_related,
)
from geosam.tasks.referring import Relation
from tests.tasks_fixtures import FixedMaps

# The data engine's attribute words and the component each one selects.
EXPECTED = {
    "largest": "largest", "smallest": "smallest",
    "top left": "top left", "top right": "top right", "bottom left": "bottom left",
    "bottom right": "bottom right", "center": "center",
    "left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "bottommost",
    "leftmost": "leftmost", "rightmost": "rightmost", "topmost": "topmost", "bottommost": "bottommost",
}  # fmt: skip


@pytest.mark.parametrize("name", ["ship", "plane", "small-vehicle", "swimming-pool", "tennis-court"])
def test_every_training_template_parses_to_its_attribute(name: str) -> None:
    info = VOCABULARY[name]
    for table in (_SIZE_TEXT, _POSITION_TEXT):
        for attr, templates in table.items():
            for template in templates:
                for subject in info.singular:
                    text = template.format(s=subject)
                    parsed = parse_attribute(text)
                    assert parsed is not None, text
                    assert parsed.attribute == EXPECTED[attr], text
                    assert parsed.subject == subject
    # render() draws from the same tables
    assert parse_attribute(render(Expression("", "size", name, attr="largest"))) is not None


@pytest.mark.parametrize(
    "text",
    ["ships", "all the airplanes in the image", "the tennis court beside the pool",
     "the ship closest to the harbor", "the three trucks", "a red car parked near the top of the lot"],
)  # fmt: skip
def test_other_expressions_are_left_to_the_network(text: str) -> None:
    assert parse_attribute(text) is None


def _scene() -> np.ndarray:
    """Three objects: small top-left, large bottom-right, medium top-right."""
    prob = np.zeros((40, 60), np.float32)
    prob[2:6, 2:6] = 0.9  # 16 px, top left
    prob[25:38, 35:58] = 0.8  # 299 px, bottom right
    prob[3:10, 45:55] = 0.7  # 70 px, top right
    return prob


@pytest.mark.parametrize(
    ("attribute", "where"),
    [("largest", (30, 40)), ("smallest", (3, 3)), ("leftmost", (3, 3)), ("rightmost", (5, 50)),
     ("topmost", (3, 3)), ("bottommost", (30, 40)), ("top right", (5, 50)), ("top left", (3, 3)),
     ("bottom right", (30, 40)), ("center", (30, 40))],
)  # fmt: skip
def test_select_component_keeps_the_object_with_the_attribute(attribute: str, where: tuple[int, int]) -> None:
    prob = _scene()
    kept = select_component(prob, attribute)
    labels_kept = kept > 0.5
    assert labels_kept[where]  # the expected object ...
    assert labels_kept.sum() == (prob[where] == prob).sum()  # ... and nothing else
    np.testing.assert_array_equal(kept[labels_kept], prob[labels_kept])  # probabilities kept


def test_specks_are_not_objects() -> None:
    prob = _scene()
    prob[20, 0:2] = 0.95  # a 2-px speck at the left edge: below 5 % of the largest object
    assert select_component(prob, "smallest")[3, 3] > 0.5
    assert select_component(prob, "leftmost")[3, 3] > 0.5
    assert select_component(prob, "leftmost", min_relative_area=0)[20, 0] > 0.5


def test_select_component_edge_cases() -> None:
    empty = np.zeros((8, 8), np.float32)
    assert not select_component(empty, "largest").any()
    with pytest.raises(InputError, match="unknown attribute"):
        select_component(_scene(), "prettiest")


def test_refer_segments_the_class_then_selects() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    model = FixedMaps({"ships": _scene(), "vessels": _scene(), "the ship with a red hull": _scene() * 0.5})
    largest = refer(model, image, "the largest ship")
    assert model.calls[-1] == (1, ("ships",))  # the class, in the plural of the user's own word
    assert (largest > 0.5).sum() == 299
    free_text = refer(model, image, "the ship with a red hull")  # not an attribute expression
    np.testing.assert_array_equal(free_text, _scene() * 0.5)
    box = ground(model, image, "the vessel in the upper right corner")
    assert model.calls[-1] == (1, ("vessels",))
    assert box is not None
    np.testing.assert_array_equal(box[:4], [45, 3, 55, 10])


# -- relations ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "anchor"),
    [("ship", "harbor"), ("small-vehicle", "building"), ("tennis-court", "swimming-pool")],
)
def test_every_training_relation_template_parses(name: str, anchor: str) -> None:
    for templates in _RELATION_TEXT.values():
        for template in templates:
            for subject in VOCABULARY[name].singular:
                for other in VOCABULARY[anchor].singular:
                    text = template.format(s=subject, a=other)
                    assert parse_relation(text) == Relation(subject, other), text


@pytest.mark.parametrize(
    "text",
    ["ships", "the largest ship next to the harbor", "the ship near the boat", "the ship near the top",
     "the car next to the truck near the harbor", "the ship moored at the harbor"],
)  # fmt: skip
def test_other_expressions_are_not_relations(text: str) -> None:
    assert parse_relation(text) is None


def _anchored() -> tuple[np.ndarray, np.ndarray]:
    """``_scene()``'s three objects and an anchor by the bottom-left corner of the large one."""
    anchor = np.zeros((40, 60), np.float32)
    anchor[30:38, 20:30] = 0.9  # 5 px left of the large object, far from the two small ones
    return _scene(), anchor


def test_select_related_keeps_the_object_nearest_the_anchor() -> None:
    prob, anchor = _anchored()
    kept = select_related(prob, anchor) > 0.5
    assert kept[30, 40] and kept.sum() == 299
    # touching or overlapping the anchor is distance 0; among equals the larger object wins
    anchor[:, :] = 0
    anchor[0:12, 0:60] = 0.9  # covers both top objects
    kept = select_related(prob, anchor) > 0.5
    assert kept[5, 50] and kept.sum() == 70
    # the anchor's specks do not attract; without an anchor nothing is referred to
    anchor[:, :] = 0
    anchor[30:38, 20:30] = 0.9
    anchor[4, 8] = 0.9  # a 1-px speck beside the small top-left object
    assert (select_related(prob, anchor) > 0.5)[30, 40]
    assert not select_related(prob, np.zeros_like(prob)).any()
    assert not select_related(np.zeros_like(prob), anchor).any()


def test_refer_resolves_a_relation_with_both_classes() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    prob, anchor = _anchored()
    model = FixedMaps({"ships": prob, "harbors": anchor})
    kept = refer(model, image, "the ship next to the harbor") > 0.5
    assert model.calls[-1] == (1, ("ships", "harbors"))  # one pass for both classes
    assert kept.sum() == 299
    box = ground(model, image, "the ship closest to the harbor")
    assert box is not None
    np.testing.assert_array_equal(box[:4], [35, 25, 58, 38])
    assert not refer(model, image, "the ship next to the tennis court").any()  # no such anchor
