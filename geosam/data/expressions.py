"""Referring expressions computed from instance geometry, following RemoteSAM's data strategies.

* ``class`` (one-to-many): every instance of a class ("ships", "all the airplanes in the image");
* ``zero`` (one-to-zero): a class absent from the image, with an empty mask;
* ``size``: "the largest ship", "the smallest plane";
* ``position``: "the plane in the top left", "the ship on the right", "the leftmost car";
* ``relation``: "the car next to the building", "the ship closest to the harbor";
* ``count``: "both ships", "the three tennis courts".

Attribute expressions are only made when they are unambiguous in the view (a clear margin between
the referred object and the others), so a flip or a crop changes them: :func:`refresh` recomputes an
expression for an augmented view, keeping the referred object where it can ("the plane on the left"
becomes "the plane on the right" after a horizontal flip).

Classes of your own (:func:`geosam.data.register_class`) get the same expressions from their
phrases; ``stuff`` ones (land cover) only class and absent-class expressions, like the built-in ones.

>>> objs = [Obj(0, "ship", box(10, 10, 40, 30)), Obj(1, "ship", box(200, 150, 210, 160))]
>>> [e.text for e in attribute_expressions(objs, 256, 256) if e.kind == "size"][:1]
['the largest ship']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box  # noqa: F401  (used in the doctest)

from geosam.data.vocabulary import VOCABULARY, class_info, groups_of, members

KINDS = ("class", "zero", "size", "position", "relation", "count")

#: Thresholds that make an attribute expression unambiguous.
SIZE_RATIO = 1.3  # the largest is this much larger than the next
GRID_MARGIN = 0.04  # centroids this close (fraction of the side) to a grid line are ambiguous
FULLY_VISIBLE = 0.9  # a referred object must be at least this visible in the view
MIN_TARGET_AREA = 16.0  # pixels
MAX_COUNT = 6

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class Obj:
    """An instance in a view: ``geometry`` in view pixels, ``visible`` the fraction of it in view."""

    id: int
    class_name: str
    geometry: shapely.Geometry
    visible: float = 1.0

    @property
    def area(self) -> float:
        return float(self.geometry.area)


@dataclass(frozen=True)
class Expression:
    """A referring expression and the instances it refers to.

    ``attr`` is the attribute that decides the referent (``"largest"``, ``"top left"``,
    ``"next to"`` ...), ``anchor`` the class of the other object of a relation.
    """

    text: str
    kind: str
    class_name: str
    targets: tuple[int, ...] = ()
    attr: str = ""
    anchor: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


# -- phrases ------------------------------------------------------------------------------------
def _pick(options: Sequence[str], rng: np.random.Generator | None) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def _singular(name: str, rng: np.random.Generator | None) -> str:
    return _pick(class_info(name).singular, rng)


def _plural(name: str, rng: np.random.Generator | None) -> str:
    return _pick(class_info(name).plural, rng)


def class_text(name: str, rng: np.random.Generator | None = None, *, count: int | None = None) -> str:
    """A one-to-many (or one-to-zero) phrase for class ``name``: "ships", "all the airplanes" ...

    >>> class_text("plane")
    'airplanes'
    """
    info = class_info(name)
    s, p = _singular(name, rng), _plural(name, rng)
    if info.stuff:
        options = [p, s, f"the {p}", f"{p} in the image", f"all {p}", f"{s} areas", f"all the {s} areas"]
    else:
        options = [p, f"all {p}", f"all the {p}", f"{p} in the image", f"all {p} in the image",
                   f"the {p}", f"every {s}", s]
        if count == 1:
            options += [f"the {s}", f"the {s} in the image"]
    return _pick(options, rng)


_POSITION_TEXT = {
    "top left": ("the {s} in the top left", "the {s} at the top left", "the {s} in the upper left corner"),
    "top right": ("the {s} in the top right", "the {s} at the top right", "the {s} in the upper right corner"),
    "bottom left": ("the {s} in the bottom left", "the {s} at the bottom left", "the {s} in the lower left corner"),
    "bottom right": ("the {s} in the bottom right", "the {s} at the bottom right",
                     "the {s} in the lower right corner"),
    "center": ("the {s} in the center", "the {s} in the middle of the image"),
    "left": ("the {s} on the left", "the {s} on the left side"),
    "right": ("the {s} on the right", "the {s} on the right side"),
    "top": ("the {s} at the top", "the {s} near the top of the image"),
    "bottom": ("the {s} at the bottom", "the {s} near the bottom of the image"),
    "leftmost": ("the leftmost {s}",),
    "rightmost": ("the rightmost {s}",),
    "topmost": ("the topmost {s}", "the uppermost {s}"),
    "bottommost": ("the bottommost {s}", "the lowest {s}"),
}
_SIZE_TEXT = {
    "largest": ("the largest {s}", "the biggest {s}", "the largest {s} in the image"),
    "smallest": ("the smallest {s}", "the tiniest {s}", "the smallest {s} in the image"),
}
_RELATION_TEXT = {
    "next to": ("the {s} next to the {a}", "the {s} beside the {a}"),
    "closest to": ("the {s} closest to the {a}", "the {s} nearest to the {a}"),
}


def render(expr: Expression, rng: np.random.Generator | None = None) -> str:
    """The text of an expression from its structured fields (kind, class, attr, anchor)."""
    name = expr.class_name
    if expr.kind in ("class", "zero"):
        return class_text(name, rng, count=len(expr.targets) if expr.kind == "class" else None)
    s = _singular(name, rng)
    if expr.kind == "size":
        return _pick(_SIZE_TEXT[expr.attr], rng).format(s=s)
    if expr.kind == "position":
        return _pick(_POSITION_TEXT[expr.attr], rng).format(s=s)
    if expr.kind == "relation":
        return _pick(_RELATION_TEXT[expr.attr], rng).format(s=s, a=_singular(expr.anchor, rng))
    if expr.kind == "count":
        n, p = len(expr.targets), _plural(name, rng)
        options = [f"both {p}", f"the two {p}"] if n == 2 else [f"all {_NUMBERS[n]} {p}", f"the {_NUMBERS[n]} {p}",
                                                              f"the {n} {p}"]
        return _pick(options, rng)
    raise ValueError(f"unknown expression kind {expr.kind!r}")


# -- attribute expressions -----------------------------------------------------------------------
def _of_class(objs: Sequence[Obj], name: str) -> list[Obj]:
    leaves = set(members(name))
    return [o for o in objs if o.class_name in leaves and o.area > 0]


def _eligible(o: Obj) -> bool:
    return o.visible >= FULLY_VISIBLE and o.area >= MIN_TARGET_AREA


def size_expressions(objs: Sequence[Obj], name: str) -> list[Expression]:
    """"the largest/smallest X" where the referent is clearly the largest/smallest in view."""
    same = sorted(_of_class(objs, name), key=lambda o: o.area)
    out: list[Expression] = []
    if len(same) < 2:
        return out
    big, runner_up = same[-1], same[-2]
    if _eligible(big) and big.area >= SIZE_RATIO * runner_up.area:
        out.append(Expression("", "size", name, (big.id,), "largest"))
    small, next_small = same[0], same[1]
    if _eligible(small) and next_small.area >= SIZE_RATIO * small.area:
        out.append(Expression("", "size", name, (small.id,), "smallest"))
    return out


def _band(value: float, side: float) -> int | None:
    """0/1/2 third of ``side`` that ``value`` falls in; None when too close to a boundary."""
    t = value / side
    for edge in (1 / 3, 2 / 3):
        if abs(t - edge) < GRID_MARGIN:
            return None
    return 0 if t < 1 / 3 else (2 if t > 2 / 3 else 1)


def position_expressions(objs: Sequence[Obj], name: str, width: int, height: int) -> list[Expression]:
    """Grid positions ("in the top left", "on the right") and extremes ("the leftmost") that pick
    out exactly one object of the class."""
    same = _of_class(objs, name)
    if len(same) < 2:
        return []
    cents = [o.geometry.centroid for o in same]
    cols = [_band(c.x, width) for c in cents]
    rows = [_band(c.y, height) for c in cents]
    out: list[Expression] = []
    corner = {(0, 0): "top left", (0, 2): "top right", (2, 0): "bottom left", (2, 2): "bottom right",
              (1, 1): "center"}
    regions: list[tuple[str, list[bool | None]]] = []
    for (r, c), word in corner.items():
        regions.append((word, [None if rr is None or cc is None else (rr == r and cc == c)
                               for rr, cc in zip(rows, cols, strict=True)]))
    for word, values, band in (("left", cols, 0), ("right", cols, 2), ("top", rows, 0), ("bottom", rows, 2)):
        regions.append((word, [None if v is None else v == band for v in values]))
    for word, inside in regions:
        hits = [i for i, v in enumerate(inside) if v]
        if len(hits) == 1 and all(v is not None for v in inside) and _eligible(same[hits[0]]):
            out.append(Expression("", "position", name, (same[hits[0]].id,), word))
    # Extremes need a clear gap to the runner-up, relative to the view and the object size.
    for word, key, sign, side in (("leftmost", "x", 1, width), ("rightmost", "x", -1, width),
                                  ("topmost", "y", 1, height), ("bottommost", "y", -1, height)):
        order = sorted(range(len(same)), key=lambda i: sign * getattr(cents[i], key))
        first, second = order[0], order[1]
        gap = abs(getattr(cents[first], key) - getattr(cents[second], key))
        minx, miny, maxx, maxy = same[first].geometry.bounds
        extent = (maxx - minx) if key == "x" else (maxy - miny)
        if _eligible(same[first]) and gap >= max(0.08 * side, extent):
            out.append(Expression("", "position", name, (same[first].id,), word))
    return out


def relation_expressions(objs: Sequence[Obj]) -> list[Expression]:
    """"the X next to/closest to the Y" for a unique anchor Y and a clearly nearest X."""
    out: list[Expression] = []
    classes = sorted({o.class_name for o in objs if not class_info(o.class_name).stuff})
    for anchor_class in classes:
        anchors = _of_class(objs, anchor_class)
        if len(anchors) != 1 or anchors[0].visible < 0.5:
            continue
        anchor = anchors[0]
        for name in classes:
            if name == anchor_class:
                continue
            same = _of_class(objs, name)
            if not same:
                continue
            dist = sorted((anchor.geometry.distance(o.geometry), i) for i, o in enumerate(same))
            d1, i1 = dist[0]
            target = same[i1]
            if not _eligible(target) or (len(dist) > 1 and d1 > 0.5 * dist[1][0]):
                continue
            tx0, ty0, tx1, ty1 = target.geometry.bounds
            ax0, ay0, ax1, ay1 = anchor.geometry.bounds
            near = d1 <= 0.5 * max(tx1 - tx0, ty1 - ty0, ax1 - ax0, ay1 - ay0)
            if len(dist) == 1 and not near:
                continue  # a lone far-away object is not "closest to" anything in particular
            word = "next to" if near else "closest to"
            out.append(Expression("", "relation", name, (target.id,), word, anchor=anchor_class))
    return out


def count_expressions(objs: Sequence[Obj], name: str) -> list[Expression]:
    """"both ships", "the three planes": every object, when all are fully in view."""
    same = _of_class(objs, name)
    if not 2 <= len(same) <= MAX_COUNT or not all(o.visible >= FULLY_VISIBLE for o in same):
        return []
    return [Expression("", "count", name, tuple(sorted(o.id for o in same)), str(len(same)))]


def attribute_expressions(
    objs: Sequence[Obj], width: int, height: int, rng: np.random.Generator | None = None
) -> list[Expression]:
    """Every unambiguous size, position, relation and count expression of a view, with text."""
    exprs: list[Expression] = []
    for name in sorted({o.class_name for o in objs}):
        if class_info(name).stuff:
            continue
        exprs += size_expressions(objs, name)
        exprs += position_expressions(objs, name, width, height)
        exprs += count_expressions(objs, name)
    exprs += relation_expressions(objs)
    return [replace(e, text=render(e, rng)) for e in exprs]


# -- sampling -----------------------------------------------------------------------------------
def present_classes(objs: Sequence[Obj], labelled: Sequence[str]) -> list[str]:
    """Leaf classes in view, plus group classes whose members are all labelled."""
    leaves = sorted({o.class_name for o in objs if o.area > 0})
    groups = [g for g in groups_of(frozenset(labelled)) if set(members(g)) & set(leaves)]
    return leaves + groups


def absent_classes(objs: Sequence[Obj], known_absent: Sequence[str]) -> list[str]:
    """Classes of ``known_absent`` with nothing in view (groups: no member in view)."""
    seen = {o.class_name for o in objs}
    out = [c for c in known_absent if c in VOCABULARY and not (set(members(c)) & seen)]
    return sorted(set(out) | set(g for g in groups_of(frozenset(out)) if g not in out))


def sample_expressions(
    objs: Sequence[Obj],
    width: int,
    height: int,
    *,
    labelled: Sequence[str],
    known_absent: Sequence[str],
    rng: np.random.Generator,
    zero_fraction: float = 0.25,
    attributes_per_class: int = 2,
    relations: int = 1,
    frequency: Mapping[str, float] | None = None,
) -> list[Expression]:
    """The expressions to train on for one view.

    One ``class`` expression per class in view; up to ``attributes_per_class`` attribute
    expressions of different attributes per class, and ``relations`` relation expressions; and
    ``zero`` expressions for about ``zero_fraction`` of the result, drawn from ``known_absent``
    (classes the source labels exhaustively, or knows are not in its scenes): look-alikes of the
    classes in view first, then classes weighted by ``frequency`` (how often they occur elsewhere
    in the training data), so that negatives are hard.
    """
    out: list[Expression] = []
    for name in present_classes(objs, labelled):
        targets = tuple(o.id for o in _of_class(objs, name))
        e = Expression("", "class", name, targets)
        out.append(replace(e, text=render(e, rng)))
    attrs = attribute_expressions(objs, width, height, rng)
    for name in sorted({e.class_name for e in attrs if e.kind != "relation"}):
        options = [e for e in attrs if e.class_name == name and e.kind != "relation"]
        rng.shuffle(options)
        chosen: list[Expression] = []
        for e in options:
            if len(chosen) < attributes_per_class and all(c.kind != e.kind for c in chosen):
                chosen.append(e)
        out += chosen
    rel = [e for e in attrs if e.kind == "relation"]
    if rel:
        for i in rng.permutation(len(rel))[:relations]:
            out.append(rel[int(i)])
    absent = absent_classes(objs, known_absent)
    n_zero = len(out) * zero_fraction / (1 - zero_fraction) if out else 2
    n_zero = min(int(n_zero + rng.random()), len(absent))
    out += [
        replace(e, text=render(e, rng))
        for e in (Expression("", "zero", c) for c in _hard_negatives(objs, absent, n_zero, rng, frequency))
    ]
    return out


def _hard_negatives(
    objs: Sequence[Obj],
    absent: Sequence[str],
    n: int,
    rng: np.random.Generator,
    frequency: Mapping[str, float] | None,
) -> list[str]:
    pool = list(absent)
    present = {o.class_name for o in objs}
    look_alikes = {a for c in present for a in class_info(c).look_alikes} & set(pool)
    chosen: list[str] = []
    while pool and len(chosen) < n:
        hard = [c for c in pool if c in look_alikes]
        if hard and rng.random() < 0.6:
            pick = hard[int(rng.integers(len(hard)))]
        else:
            # log: common classes first, but rare ones still drawn (negatives from many classes)
            weights = np.asarray([1.0 + np.log1p((frequency or {}).get(c, 0.0)) for c in pool])
            pick = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
        chosen.append(pick)
        pool.remove(pick)
    return chosen


def refresh(
    expr: Expression, objs: Sequence[Obj], width: int, height: int, rng: np.random.Generator
) -> Expression:
    """The expression of the same kind and class for an augmented view of the same objects.

    ``class``/``zero`` keep their text (the mask follows the view). An attribute expression keeps
    its referent when an unambiguous expression of that kind still picks it out (the words may
    change: "left" becomes "right" after a flip); otherwise another valid one of that kind is used,
    and if there is none, the class expression of its class.
    """
    if expr.kind in ("class", "zero"):
        targets = tuple(o.id for o in _of_class(objs, expr.class_name)) if expr.kind == "class" else ()
        return replace(expr, targets=targets)
    if expr.kind == "relation":
        candidates = [e for e in relation_expressions(objs) if e.class_name == expr.class_name]
    elif expr.kind == "size":
        candidates = size_expressions(objs, expr.class_name)
    elif expr.kind == "position":
        candidates = position_expressions(objs, expr.class_name, width, height)
    else:
        candidates = count_expressions(objs, expr.class_name)
    same_attr = [e for e in candidates if e.targets == expr.targets and e.attr == expr.attr]
    # "left" -> "right", "leftmost" -> "rightmost": the same kind of words for the same referent.
    same_family = [e for e in candidates if e.targets == expr.targets and e.attr.endswith("most") == expr.attr.endswith("most")]
    same_target = [e for e in candidates if e.targets == expr.targets]
    for group in (same_attr, same_family, same_target, candidates):
        if group:
            chosen = group[int(rng.integers(len(group)))]
            if chosen.attr == expr.attr and chosen.anchor == expr.anchor and chosen.targets == expr.targets:
                return expr  # nothing changed: keep the exact text
            return replace(chosen, text=render(chosen, rng))
    targets = tuple(o.id for o in _of_class(objs, expr.class_name))
    fallback = Expression("", "class", expr.class_name, targets)
    return replace(fallback, text=render(fallback, rng))
