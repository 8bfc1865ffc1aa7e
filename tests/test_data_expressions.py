"""Referring expressions from geometry: class, absent class, size, position, relation, count."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from shapely.affinity import affine_transform
from shapely.geometry import box

from geosam.data.expressions import (
    Expression,
    Obj,
    absent_classes,
    attribute_expressions,
    class_text,
    refresh,
    sample_expressions,
)
from geosam.data.vocabulary import BUILTIN_CLASSES, VOCABULARY, _unregister, register_classes
from geosam.errors import InputError


def _ships() -> list[Obj]:
    return [
        Obj(0, "ship", box(20, 20, 40, 30)),  # 200 px, top left
        Obj(1, "ship", box(200, 200, 240, 220)),  # 800 px, bottom right
        Obj(2, "ship", box(120, 30, 137, 40)),  # 170 px, top middle
    ]


def _by(exprs: list[Expression], kind: str, attr: str) -> Expression:
    hits = [e for e in exprs if e.kind == kind and e.attr == attr]
    assert len(hits) == 1, (kind, attr, [(e.kind, e.attr) for e in exprs])
    return hits[0]


def test_size_position_count() -> None:
    exprs = attribute_expressions(_ships(), 256, 256, np.random.default_rng(0))
    assert _by(exprs, "size", "largest").targets == (1,)
    largest = _by(exprs, "size", "largest")
    assert "ship" in largest.text or "boat" in largest.text or "vessel" in largest.text
    assert _by(exprs, "position", "top left").targets == (0,)
    assert _by(exprs, "position", "bottom right").targets == (1,)
    assert _by(exprs, "position", "rightmost").targets == (1,)
    assert _by(exprs, "count", "3").targets == (0, 1, 2)
    # 200 vs 170 px is not a clear enough margin for "the smallest".
    assert not [e for e in exprs if e.attr == "smallest"]
    # Two ships share the top band: "the ship at the top" would be ambiguous.
    assert not [e for e in exprs if e.attr == "top"]


def test_truncated_objects_are_not_referred_to() -> None:
    objs = [Obj(0, "plane", box(0, 0, 100, 100), visible=0.5), Obj(1, "plane", box(200, 200, 210, 210))]
    exprs = attribute_expressions(objs, 256, 256)
    assert not [e for e in exprs if e.attr == "largest"]
    assert _by(exprs, "size", "smallest").targets == (1,)


def test_relation_needs_a_unique_anchor_and_a_clear_nearest() -> None:
    objs = [Obj(0, "building", box(100, 100, 150, 150)), Obj(1, "small-vehicle", box(152, 120, 158, 130)),
            Obj(2, "small-vehicle", box(10, 10, 16, 20))]
    rel = [e for e in attribute_expressions(objs, 256, 256) if e.kind == "relation"]
    assert [(e.class_name, e.targets, e.attr, e.anchor) for e in rel] == [("small-vehicle", (1,), "next to", "building")]
    assert rel[0].text == "the car next to the building"


def test_horizontal_flip_turns_left_into_right() -> None:
    objs = [Obj(0, "plane", box(10, 100, 40, 130)), Obj(1, "plane", box(120, 100, 150, 130))]
    left = _by(attribute_expressions(objs, 256, 256), "position", "left")
    flipped = [Obj(o.id, o.class_name, affine_transform(o.geometry, [-1, 0, 0, 1, 256, 0])) for o in objs]
    new = refresh(left, flipped, 256, 256, np.random.default_rng(0))
    assert new.kind == "position" and new.attr == "right" and new.targets == (0,)
    assert "right" in new.text and "left" not in new.text


def test_refresh_falls_back_to_the_class_when_the_referent_is_gone() -> None:
    objs = _ships()
    largest = _by(attribute_expressions(objs, 256, 256), "size", "largest")
    cropped = [o for o in objs if o.id != 1]  # a crop cut the largest ship away
    new = refresh(largest, cropped, 256, 256, np.random.default_rng(0))
    assert new.kind in ("size", "class") and 1 not in new.targets


def test_sampling_gives_hard_negatives_about_a_quarter_of_the_time() -> None:
    objs = [Obj(0, "ship", box(20, 20, 40, 30)), Obj(1, "ship", box(100, 150, 160, 170))]
    absent = ["plane", "helicopter", "storage-tank", "tennis-court", "large-vehicle"]
    kinds: list[str] = []
    zero_classes: list[str] = []
    for seed in range(200):
        exprs = sample_expressions(objs, 256, 256, labelled=["ship"], known_absent=absent,
                                   rng=np.random.default_rng(seed))
        kinds += [e.kind for e in exprs]
        zero_classes += [e.class_name for e in exprs if e.kind == "zero"]
        assert all(e.targets == () for e in exprs if e.kind == "zero")
        assert "ship" not in {e.class_name for e in exprs if e.kind == "zero"}
    share = kinds.count("zero") / len(kinds)
    assert 0.18 < share < 0.32
    # Look-alikes of ships come first, but every known-absent class is used.
    assert set(zero_classes) == set(absent)
    look = sum(c in VOCABULARY["ship"].look_alikes for c in zero_classes) / len(zero_classes)
    assert look > 0.6


def test_groups_cover_their_members() -> None:
    objs = [Obj(0, "small-vehicle", box(0, 0, 5, 5)), Obj(1, "large-vehicle", box(50, 50, 70, 60))]
    exprs = sample_expressions(objs, 128, 128, labelled=["small-vehicle", "large-vehicle"], known_absent=[],
                               rng=np.random.default_rng(0))
    vehicle = [e for e in exprs if e.class_name == "vehicle"]
    assert vehicle and vehicle[0].targets == (0, 1)


def test_sports_field_group_needs_every_member_labelled() -> None:
    objs = [Obj(0, "tennis-court", box(0, 0, 20, 40)), Obj(1, "ground-track-field", box(60, 10, 120, 100))]
    sports = list(VOCABULARY["sports-field"].children)
    exprs = sample_expressions(objs, 128, 128, labelled=sports, known_absent=[], rng=np.random.default_rng(0))
    group = [e for e in exprs if e.class_name == "sports-field"]
    assert group and group[0].targets == (0, 1)
    # A source that labels tennis courts only cannot say where all the sports fields are.
    exprs = sample_expressions(objs, 128, 128, labelled=["tennis-court", "ground-track-field"], known_absent=[],
                               rng=np.random.default_rng(0))
    assert not [e for e in exprs if e.class_name == "sports-field"]
    # Where every kind of sports field is known absent, so is the group.
    assert "sports-field" in absent_classes([Obj(0, "ship", box(0, 0, 9, 9))], sports)


def test_class_text_uses_synonyms() -> None:
    rng = np.random.default_rng(0)
    texts = {class_text("ship", rng) for _ in range(100)}
    assert any("boat" in t for t in texts) and any("vessel" in t for t in texts) and any("ship" in t for t in texts)


@pytest.fixture
def own_classes() -> Iterator[None]:
    """A class of one's own (rooftop solar panels, with building as look-alike) and a land-cover
    one, forgotten after the test (declarations are global to the process)."""
    register_classes([  # together, so that each may name the other as a look-alike
        {"name": "solar-panel", "singular": ["solar panel", "pv panel"], "look_alikes": ["building", "solar-farm"]},
        {"name": "solar-farm", "singular": "solar farm", "stuff": True, "look_alikes": ["solar-panel"]},
    ])
    yield
    for name in [n for n in VOCABULARY if n not in BUILTIN_CLASSES]:
        _unregister(name)


@pytest.mark.usefixtures("own_classes")
def test_own_classes_get_every_kind_of_expression() -> None:
    panels = [Obj(0, "solar-panel", box(20, 20, 40, 30)), Obj(1, "solar-panel", box(200, 200, 240, 220)),
              Obj(2, "solar-panel", box(120, 30, 137, 40)), Obj(3, "building", box(190, 180, 250, 250))]
    exprs = attribute_expressions(panels, 256, 256, np.random.default_rng(0))
    assert _by(exprs, "size", "largest").targets == (1,)
    assert _by(exprs, "position", "top left").targets == (0,)
    assert _by(exprs, "count", "3").targets == (0, 1, 2)
    relation = [e for e in exprs if e.kind == "relation" and e.class_name == "solar-panel"]
    assert relation and relation[0].targets == (1,) and relation[0].anchor == "building"
    assert all("solar panel" in e.text or "pv panel" in e.text for e in exprs if e.class_name == "solar-panel")
    # One-to-many with its synonyms, and one-to-zero with the look-alike first.
    rng = np.random.default_rng(0)
    texts = {class_text("solar-panel", rng) for _ in range(60)}
    assert any("pv panels" in t for t in texts) and any("solar panels" in t for t in texts)
    zero: list[str] = []
    for seed in range(50):
        drawn = sample_expressions(panels[:3], 256, 256, labelled=["solar-panel"],
                                   known_absent=["solar-panel", "building", "ship", "plane"],
                                   rng=np.random.default_rng(seed))
        zero += [e.class_name for e in drawn if e.kind == "zero"]
    assert zero and "solar-panel" not in zero and zero.count("building") > len(zero) / 3
    absent = sample_expressions([Obj(0, "building", box(0, 0, 50, 50))], 256, 256, labelled=["building"],
                                known_absent=["solar-panel"], rng=np.random.default_rng(1), zero_fraction=0.5)
    assert [(e.kind, e.targets) for e in absent if e.class_name == "solar-panel"] == [("zero", ())]
    # A flip keeps the referent and turns the words.
    row = [Obj(0, "solar-panel", box(10, 100, 40, 130)), Obj(1, "solar-panel", box(120, 100, 150, 130))]
    left = _by(attribute_expressions(row, 256, 256), "position", "left")
    flipped = [Obj(o.id, o.class_name, affine_transform(o.geometry, [-1, 0, 0, 1, 256, 0])) for o in row]
    new = refresh(left, flipped, 256, 256, np.random.default_rng(0))
    assert new.attr == "right" and new.targets == (0,) and "panel on the right" in new.text


@pytest.mark.usefixtures("own_classes")
def test_own_land_cover_gets_class_and_absent_expressions_only() -> None:
    farms = [Obj(0, "solar-farm", box(0, 0, 60, 60)), Obj(1, "solar-farm", box(150, 150, 250, 250))]
    assert attribute_expressions(farms, 256, 256) == []
    exprs = sample_expressions(farms, 256, 256, labelled=["solar-farm"], known_absent=["solar-panel"],
                               rng=np.random.default_rng(0))
    assert {e.kind for e in exprs} <= {"class", "zero"}
    assert [e.targets for e in exprs if e.kind == "class"] == [(0, 1)]
    rng = np.random.default_rng(0)
    assert {class_text("solar-farm", rng) for _ in range(40)} >= {"solar farm areas", "all the solar farm areas"}


def test_an_undeclared_class_is_named_in_the_error() -> None:
    with pytest.raises(InputError, match=r"class 'solar-panel' is not in the geosam vocabulary .* register_class"):
        attribute_expressions([Obj(0, "solar-panel", box(0, 0, 9, 9))], 64, 64)
