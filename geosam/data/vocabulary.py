"""The class vocabulary shared by the whole project: canonical class names, the phrases that name
them, their look-alikes, and the labels each public dataset uses for them.

Canonical names follow DOTA/iSAID spelling (``small-vehicle``, ``ground-track-field``) so that
detection outputs, evaluation tables and training data agree. Land-cover datasets (LoveDA,
Vaihingen) map onto the same table (``agriculture``, ``impervious`` ...).

>>> canonical_class("Small_Vehicle")
'small-vehicle'
>>> VOCABULARY["ship"].plural[:2]
('ships', 'boats')
>>> phrase("plane", plural=True)
'airplanes'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from geosam.errors import InputError


@dataclass(frozen=True)
class ClassInfo:
    """One canonical class.

    ``singular``/``plural`` list the phrases that name it, the preferred one first. ``stuff`` marks
    uncountable land cover (roads, water ...): no size, position or count expressions are made for
    it. ``look_alikes`` are classes a model confuses it with, used to pick hard negatives.
    ``children`` makes this a group class (``vehicle`` = small + large vehicles) whose mask is the
    union of its children.
    """

    name: str
    singular: tuple[str, ...]
    plural: tuple[str, ...]
    stuff: bool = False
    look_alikes: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=(), repr=False)

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every phrase that names this class, singular and plural."""
        return tuple(dict.fromkeys(self.singular + self.plural))


def _c(
    name: str,
    singular: tuple[str, ...],
    plural: tuple[str, ...] | None = None,
    *,
    stuff: bool = False,
    look_alikes: tuple[str, ...] = (),
    children: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
) -> ClassInfo:
    return ClassInfo(
        name, singular, plural if plural is not None else singular, stuff, look_alikes, children, aliases
    )


_CLASSES = (
    # Objects (countable) -- DOTA-v1.0 / iSAID classes first.
    _c("ship", ("ship", "boat", "vessel"), ("ships", "boats", "vessels"),
       look_alikes=("large-vehicle", "plane", "storage-tank", "bridge", "helicopter"),
       aliases=("boat", "boats", "ships", "vessel")),
    _c("plane", ("airplane", "plane", "aircraft"), ("airplanes", "planes", "aircraft"),
       look_alikes=("helicopter", "ship", "large-vehicle", "storage-tank"),
       aliases=("aircrafts", "aircraft", "airplane", "airplanes", "aeroplane", "planes")),
    _c("helicopter", ("helicopter",), ("helicopters",),
       look_alikes=("plane", "small-vehicle", "swimming-pool")),
    _c("small-vehicle", ("car", "small vehicle"), ("cars", "small vehicles"),
       look_alikes=("large-vehicle", "ship", "helicopter"),
       aliases=("small_vehicle", "car", "cars", "smallvehicle")),
    _c("large-vehicle", ("large vehicle", "truck", "bus"), ("large vehicles", "trucks", "buses"),
       look_alikes=("small-vehicle", "ship", "building", "storage-tank"),
       aliases=("large_vehicle", "truck", "trucks", "bus", "largevehicle")),
    _c("storage-tank", ("storage tank", "oil tank", "tank"), ("storage tanks", "oil tanks", "tanks"),
       look_alikes=("roundabout", "swimming-pool", "building", "ship"),
       aliases=("store_tank", "storage_tank", "storagetank")),
    _c("tennis-court", ("tennis court",), ("tennis courts",),
       look_alikes=("basketball-court", "swimming-pool", "soccer-ball-field"),
       aliases=("tennis_court",)),
    _c("basketball-court", ("basketball court",), ("basketball courts",),
       look_alikes=("tennis-court", "swimming-pool"),
       aliases=("basketball_court",)),
    _c("baseball-diamond", ("baseball field", "baseball diamond"), ("baseball fields", "baseball diamonds"),
       look_alikes=("soccer-ball-field", "ground-track-field", "tennis-court"),
       aliases=("baseball_diamond",)),
    _c("soccer-ball-field", ("soccer field", "football field", "soccer pitch"),
       ("soccer fields", "football fields", "soccer pitches"),
       look_alikes=("ground-track-field", "baseball-diamond", "tennis-court"),
       aliases=("soccer_ball_field", "soccer-field")),
    _c("ground-track-field", ("running track", "athletics track", "ground track field"),
       ("running tracks", "athletics tracks", "ground track fields"),
       look_alikes=("soccer-ball-field", "roundabout", "baseball-diamond"),
       aliases=("ground_track_field",)),
    _c("swimming-pool", ("swimming pool", "pool"), ("swimming pools", "pools"),
       look_alikes=("tennis-court", "storage-tank", "basketball-court"),
       aliases=("swimming_pool",)),
    _c("roundabout", ("roundabout", "traffic circle"), ("roundabouts", "traffic circles"),
       look_alikes=("storage-tank", "ground-track-field", "swimming-pool")),
    _c("harbor", ("harbor", "harbour", "pier"), ("harbors", "harbours", "piers"),
       look_alikes=("bridge", "ship"),
       aliases=("harbour",)),
    _c("bridge", ("bridge",), ("bridges",),
       look_alikes=("harbor", "road"),),
    _c("building", ("building", "house"), ("buildings", "houses"),
       look_alikes=("large-vehicle", "storage-tank", "impervious"),
       aliases=("buildings", "house", "houses")),
    _c("tree", ("tree", "tree crown"), ("trees", "tree crowns"),
       look_alikes=("low-vegetation", "forest"),
       aliases=("trees",)),
    # DOTA-v1.5/v2.0 additions.
    _c("container-crane", ("container crane", "crane"), ("container cranes", "cranes"),
       look_alikes=("bridge", "harbor"), aliases=("container_crane",)),
    _c("airport", ("airport", "airfield"), ("airports", "airfields"), look_alikes=("road",)),
    _c("helipad", ("helipad", "helicopter pad"), ("helipads", "helicopter pads"),
       look_alikes=("roundabout", "storage-tank")),
    # Land cover (stuff).
    _c("road", ("road", "street"), ("roads", "streets"), stuff=True,
       look_alikes=("bridge", "impervious", "water"),
       aliases=("roads",)),
    _c("water", ("water", "water body"), ("water", "water bodies"), stuff=True,
       look_alikes=("road", "forest", "swimming-pool")),
    _c("forest", ("forest", "woodland", "woods"), ("forest", "woodland", "forests"), stuff=True,
       look_alikes=("agriculture", "low-vegetation", "water")),
    _c("agriculture", ("farmland", "cropland", "agricultural land"),
       ("farmland", "cropland", "agricultural fields", "farm fields"), stuff=True,
       look_alikes=("barren", "forest", "low-vegetation"),
       aliases=("agricultural",)),
    _c("barren", ("barren land", "bare soil", "bare ground"), ("barren land", "bare soil", "bare ground"),
       stuff=True, look_alikes=("agriculture", "road")),
    _c("impervious", ("impervious surface", "paved surface", "pavement"),
       ("impervious surfaces", "paved surfaces", "pavement"), stuff=True,
       look_alikes=("building", "road"),
       aliases=("impervious_surfaces", "impervious surfaces")),
    _c("low-vegetation", ("low vegetation", "grass", "lawn"), ("low vegetation", "grass", "lawns"),
       stuff=True, look_alikes=("tree", "agriculture", "forest"),
       aliases=("low_vegetation", "low vegetation")),
    # Groups: the union of their children.
    _c("vehicle", ("vehicle",), ("vehicles",),
       look_alikes=("ship", "building"), children=("small-vehicle", "large-vehicle"),
       aliases=("vehicles",)),
    _c("sports-field", ("sports field", "sports ground", "playing field"),
       ("sports fields", "sports grounds", "playing fields"),
       look_alikes=("swimming-pool", "roundabout", "low-vegetation"),
       children=("tennis-court", "basketball-court", "baseball-diamond", "soccer-ball-field",
                 "ground-track-field"),
       aliases=("sports_field", "sport field", "sports facility")),
)

#: Canonical class name -> :class:`ClassInfo`.
VOCABULARY: dict[str, ClassInfo] = {c.name: c for c in _CLASSES}


def _key(label: str) -> str:
    return re.sub(r"[\s_\-]+", " ", label.strip().lower())


_ALIASES: dict[str, str] = {}
for _info in _CLASSES:
    for _alias in (_info.name, *_info.aliases, *_info.singular, *_info.plural):
        _ALIASES.setdefault(_key(_alias), _info.name)


def canonical_class(label: str) -> str:
    """The canonical class name of a dataset label (case, ``_``/``-``/space and plural insensitive).

    Raises :class:`~geosam.errors.InputError` naming the label when it is not in the vocabulary;
    pass an explicit ``class_map`` to the readers to map labels of your own.

    >>> canonical_class("Ground_Track_Field"), canonical_class("boat")
    ('ground-track-field', 'ship')
    """
    key = _key(label)
    if key in _ALIASES:
        return _ALIASES[key]
    if key.endswith("s") and key[:-1] in _ALIASES:
        return _ALIASES[key[:-1]]
    raise InputError(
        f"label {label!r} is not in the geosam vocabulary; pass class_map={{{label!r}: NAME}} with "
        f"one of: {', '.join(sorted(VOCABULARY))}"
    )


def phrase(name: str, *, plural: bool = False, index: int = 0) -> str:
    """A phrase naming class ``name`` (the preferred one by default).

    >>> phrase("small-vehicle"), phrase("small-vehicle", plural=True, index=1)
    ('car', 'small vehicles')
    """
    info = VOCABULARY[name]
    options = info.plural if plural else info.singular
    return options[index % len(options)]


def members(name: str) -> tuple[str, ...]:
    """The leaf classes whose instances a class covers: its children for a group, else itself."""
    info = VOCABULARY[name]
    return info.children or (name,)


def groups_of(leaves: set[str] | frozenset[str]) -> list[str]:
    """Group classes all of whose children are in ``leaves``."""
    return [c.name for c in _CLASSES if c.children and set(c.children) <= set(leaves)]


# "sports fields", "all the vehicles in the image": the whole class, and nothing else, is asked for.
_CLASS_EXPRESSION = re.compile(
    r"^(?P<head>(?:all (?:of )?(?:the )?|every |the ))?(?P<phrase>.+?)"
    r"(?P<tail> in the (?:image|picture|scene))?$"
)
_GROUP_PHRASES: dict[str, tuple[ClassInfo, bool]] = {}
for _info in _CLASSES:
    if _info.children:
        for _text in _info.plural:
            _GROUP_PHRASES[_key(_text)] = (_info, True)
        for _text in _info.singular:
            _GROUP_PHRASES.setdefault(_key(_text), (_info, False))


def group_prompts(prompt: str) -> tuple[str, ...]:
    """One prompt per member when ``prompt`` asks for a whole group class, else ``()``.

    A group's mask is the union of its members' (:class:`ClassInfo`), so "sports fields" can be
    answered from "tennis courts", "baseball fields", ... which the data labels and the network
    knows far better than the group's own name. Only plain class expressions are split (an optional
    "all the" / "every" / "the" and "in the image"); anything else is left to the network.

    >>> group_prompts("all the vehicles in the image")
    ('all the cars in the image', 'all the large vehicles in the image')
    >>> group_prompts("ships"), group_prompts("the largest vehicle"), group_prompts("cars next to vehicles")
    ((), (), ())
    """
    text = " ".join(prompt.lower().strip().rstrip(".!?").split())
    match = _CLASS_EXPRESSION.match(text)
    group = None if match is None else _GROUP_PHRASES.get(_key(match["phrase"]))
    if match is None or group is None:
        return ()
    info, plural = group
    head, tail = match["head"] or "", match["tail"] or ""
    return tuple(f"{head}{phrase(child, plural=plural)}{tail}" for child in info.children)
