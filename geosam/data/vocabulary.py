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

Classes of your own are declared with :func:`register_class` (or a vocabulary file, a JSON list of
such classes, with :func:`load_vocabulary`) before their labels are read; a dataset built with
them records them in its ``dataset.json`` and declares them again when it is opened.

>>> register_class("solar-panel", singular="solar panel", look_alikes=["building"]).plural
('solar panels',)
>>> canonical_class("Solar_Panels")
'solar-panel'
>>> _unregister("solar-panel")
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
#: The classes geosam ships with; the other entries of VOCABULARY were declared by register_class.
BUILTIN_CLASSES: frozenset[str] = frozenset(VOCABULARY)


def _key(label: str) -> str:
    return re.sub(r"[\s_\-]+", " ", label.strip().lower())


def _keys(info: ClassInfo) -> list[str]:
    """The lookup keys of every label and phrase that names ``info``."""
    return [_key(t) for t in (info.name, *info.aliases, *info.singular, *info.plural)]


_ALIASES: dict[str, str] = {}
for _info in _CLASSES:
    for _alias_key in _keys(_info):
        _ALIASES.setdefault(_alias_key, _info.name)


def canonical_class(label: str) -> str:
    """The canonical class name of a dataset label (case, ``_``/``-``/space and plural insensitive).

    Raises :class:`~geosam.errors.InputError` naming the label when it is not in the vocabulary,
    with the two ways out: declare it (:func:`register_class`, :func:`load_vocabulary`) or map it
    onto a known class with the readers' ``class_map``.

    >>> canonical_class("Ground_Track_Field"), canonical_class("boat")
    ('ground-track-field', 'ship')
    """
    key = _key(label)
    if key in _ALIASES:
        return _ALIASES[key]
    if key.endswith("s") and key[:-1] in _ALIASES:
        return _ALIASES[key[:-1]]
    text = " ".join(label.lower().split())
    suggestion = _suggest_name(label)
    raise InputError(
        f"label {label!r} is not in the geosam vocabulary. To use it as a class of its own, "
        f"declare it before reading the labels: register_class({suggestion!r}, singular={text!r}) or "
        f"a vocabulary file loaded with load_vocabulary(PATH) (docs/training.md, 'Classes of your "
        f"own'); or map it onto a known class with class_map={{{label!r}: NAME}}, NAME one of: "
        f"{', '.join(sorted(VOCABULARY))}"
    )


def class_info(name: str) -> ClassInfo:
    """The :class:`ClassInfo` of canonical class ``name``, with a clear error for an undeclared one.

    >>> class_info("ship").stuff
    False
    """
    info = VOCABULARY.get(name)
    if info is None:
        raise InputError(
            f"class {name!r} is not in the geosam vocabulary of this process: declare it with "
            f"register_class({name!r}, ...) or load_vocabulary(PATH) first (a dataset built with it "
            "declares it when opened with TripletDataset)"
        )
    return info


def phrase(name: str, *, plural: bool = False, index: int = 0) -> str:
    """A phrase naming class ``name`` (the preferred one by default).

    >>> phrase("small-vehicle"), phrase("small-vehicle", plural=True, index=1)
    ('car', 'small vehicles')
    """
    info = class_info(name)
    options = info.plural if plural else info.singular
    return options[index % len(options)]


def members(name: str) -> tuple[str, ...]:
    """The leaf classes whose instances a class covers: its children for a group, else itself."""
    info = class_info(name)
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


# -- classes of your own -------------------------------------------------------------------------
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_FIELDS = ("name", "singular", "plural", "stuff", "look_alikes", "aliases")


def _suggest_name(label: str) -> str:
    """A valid class name for ``label``: "Solar Panel" -> "solar-panel"."""
    return "-".join(re.sub(r"[^a-z0-9]+", " ", label.lower()).split()) or "my-class"


def plural_of(noun: str) -> str:
    """English plural of a phrase's last word, for the regular cases; a word already plural
    ("planes", "Aircrafts") is kept. Class phrases of your own and captions use it.

    >>> [plural_of(n) for n in ["solar panel", "bus", "quarry", "bench", "tennis courts", "greenhouse"]]
    ['solar panels', 'buses', 'quarries', 'benches', 'tennis courts', 'greenhouses']
    """
    head, _, last = noun.rpartition(" ")
    low = last.lower()
    if low.endswith(("ss", "us", "sh", "ch", "x", "z")):
        last += "es"
    elif low.endswith("s"):
        pass
    elif re.search(r"[^aeiou]y$", low):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _phrases(value: str | Iterable[str] | None, what: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InputError(f"class {name!r}: {what} must be non-empty strings, got {item!r}")
        out.append(" ".join(item.lower().split()))  # the tokenizer is uncased; one space between words
    return tuple(dict.fromkeys(out))


def make_class(
    name: str,
    *,
    singular: str | Iterable[str] | None = None,
    plural: str | Iterable[str] | None = None,
    stuff: bool = False,
    look_alikes: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> ClassInfo:
    """A checked :class:`ClassInfo` for a class of your own, without declaring it (see
    :func:`register_class` for the arguments).

    >>> make_class("solar-farm", stuff=True).plural
    ('solar farm',)
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"class name {name!r} must be lower-case words (letters, digits) joined by '-', "
            f"e.g. {_suggest_name(str(name))!r}"
        )
    if not isinstance(stuff, bool):
        raise InputError(f"class {name!r}: stuff must be true or false, got {stuff!r}")
    one = _phrases(singular, "singular phrases", name) or (name.replace("-", " "),)
    # Land cover has no plural form to speak of ("water", "farmland"); objects add an "s".
    many = _phrases(plural, "plural phrases", name) or (one if stuff else tuple(plural_of(t) for t in one))
    alike = _phrases(look_alikes, "look_alikes", name)
    alias = _phrases(aliases, "aliases", name)
    return ClassInfo(name, one, many, stuff, alike, (), alias)


def register_class(
    name: str,
    *,
    singular: str | Iterable[str] | None = None,
    plural: str | Iterable[str] | None = None,
    stuff: bool = False,
    look_alikes: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> ClassInfo:
    """Declare a class of your own, so that the importers accept its labels and the expression
    generator can name it; returns its :class:`ClassInfo`.

    ``name`` is the canonical name (lower-case words joined by ``-``, as ``"solar-panel"``);
    ``singular``/``plural`` the phrases that name it, preferred first (default: the name's words,
    and their plural for objects); ``stuff`` marks uncountable land cover (no size, position, count
    or relation expressions); ``look_alikes`` are classes a model confuses it with (hard negatives:
    declared class names); ``aliases`` are other labels datasets give it (``"PV module"``). A
    label's case, ``_``/``-``/spaces and a final ``s`` do not matter.

    Declaring a class again with the same definition does nothing; a different definition of a
    declared (or built-in) class is refused, since datasets already built name it by its phrases.

    >>> register_class("greenhouse", look_alikes=["building"]).plural
    ('greenhouses',)
    >>> register_class("greenhouse", look_alikes=["building"]) == VOCABULARY["greenhouse"]
    True
    >>> _unregister("greenhouse")
    """
    info = make_class(name, singular=singular, plural=plural, stuff=stuff, look_alikes=look_alikes,
                      aliases=aliases)
    _register([info], "register_class")
    return VOCABULARY[info.name]


def class_to_json(info: ClassInfo) -> dict[str, Any]:
    """The vocabulary-file entry of a class (the arguments of :func:`register_class`).

    >>> class_to_json(make_class("solar-panel"))["plural"]
    ['solar panels']
    """
    data = asdict(info)
    return {key: list(data[key]) if isinstance(data[key], tuple) else data[key] for key in _FIELDS}


def class_from_json(entry: Any, where: str) -> ClassInfo:
    """The :class:`ClassInfo` of one vocabulary-file entry (checked, not declared); ``where``
    names the entry in errors."""
    if not isinstance(entry, Mapping):
        raise InputError(f"{where}: a class must be a JSON object with a 'name', got {entry!r}")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown or "name" not in entry:
        raise InputError(
            f"{where}: a class has the keys {', '.join(_FIELDS)} ('name' required), got "
            f"{sorted(entry)}"
        )
    try:
        return make_class(**dict(entry))
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def register_classes(entries: Iterable[Mapping[str, Any] | ClassInfo], *, where: str = "") -> list[ClassInfo]:
    """Declare several classes at once (vocabulary-file entries or :class:`ClassInfo`), which may
    name each other as look-alikes; nothing is declared if one of them is refused.

    >>> [c.name for c in register_classes([{"name": "pier-x", "look_alikes": ["pond-x"]},
    ...                                    {"name": "pond-x", "stuff": True}])]
    ['pier-x', 'pond-x']
    >>> _unregister("pier-x"); _unregister("pond-x")
    """
    infos = [
        e if isinstance(e, ClassInfo) else class_from_json(e, f"{where or 'vocabulary'} entry {i}")
        for i, e in enumerate(entries)
    ]
    _register(infos, where or "vocabulary")
    return [VOCABULARY[i.name] for i in infos]


def load_vocabulary(path: str | Path) -> list[ClassInfo]:
    """Declare the classes of a vocabulary file and return them.

    The file is a JSON list of classes, each an object with the arguments of
    :func:`register_class`::

        [{"name": "solar-panel", "singular": ["solar panel", "pv panel"],
          "plural": ["solar panels", "pv panels"], "look_alikes": ["building"],
          "aliases": ["PV module"]},
         {"name": "solar-farm", "stuff": true}]

    A triplet dataset's ``dataset.json`` (or its folder) is read too: its ``vocabulary`` entry
    holds the classes of its own it was built with.

    >>> load_vocabulary("my_classes.json")   # doctest: +SKIP
    """
    path = Path(path)
    file = path / "dataset.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except OSError as err:
        raise InputError(f"cannot read the vocabulary file {file}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"vocabulary file {file} is not valid JSON: {err}") from None
    if isinstance(data, Mapping) and data.get("format") == "geosam-triplets":  # a dataset.json
        data = data.get("vocabulary", [])  # built before datasets recorded it: none of its own
    if not isinstance(data, list):
        raise InputError(
            f"vocabulary file {file} must hold a JSON list of classes, e.g. "
            '[{"name": "solar-panel", "singular": ["solar panel"], "look_alikes": ["building"]}]'
        )
    return register_classes(data, where=str(file))


def own_classes(names: Iterable[str] | None = None) -> list[ClassInfo]:
    """The declared classes that are not built in (of ``names`` only, if given), with the declared
    classes they name as look-alikes, so that they can be declared again elsewhere.

    >>> own_classes(["ship", "plane"])
    []
    """
    wanted = set(VOCABULARY) if names is None else set(names)
    todo = sorted(c for c in wanted if c in VOCABULARY and c not in BUILTIN_CLASSES)
    out: dict[str, ClassInfo] = {}
    while todo:
        name = todo.pop()
        if name not in out:
            out[name] = VOCABULARY[name]
            todo += [a for a in out[name].look_alikes if a not in BUILTIN_CLASSES and a in VOCABULARY]
    return [out[n] for n in sorted(out)]


def _register(infos: Sequence[ClassInfo], where: str) -> None:
    """Check ``infos`` together, then declare the new ones (all or none)."""
    batch = {i.name: i for i in infos}
    if len(batch) != len(infos):
        dup = sorted({i.name for i in infos if sum(j.name == i.name for j in infos) > 1})
        raise InputError(f"{where}: class {dup[0]!r} is declared twice")
    new = [i for i in infos if VOCABULARY.get(i.name) != i]
    owner: dict[str, str] = {}
    for info in new:
        if info.name in VOCABULARY:
            what = "a built-in class" if info.name in BUILTIN_CLASSES else "already declared"
            raise InputError(
                f"{where}: class {info.name!r} is {what} with another definition "
                f"({class_to_json(VOCABULARY[info.name])}); declare yours under another name, or "
                "give exactly the same definition (a dataset declares the classes it was built with "
                "when opened: to change one, rebuild the dataset with the new vocabulary, or leave "
                "out the other --vocabulary)"
            )
        for other in info.look_alikes:
            if other == info.name:
                raise InputError(f"{where}: class {info.name!r} names itself as a look-alike")
            if other not in VOCABULARY and other not in batch:
                raise InputError(
                    f"{where}: look-alike {other!r} of class {info.name!r} is not a class name; "
                    f"{_did_you_mean(other)}"
                )
        # A phrase that names two classes would teach the network two answers to one prompt.
        for key in _keys(info):
            taken = _ALIASES.get(key) or owner.get(key)
            if taken is not None and taken != info.name:
                raise InputError(
                    f"{where}: {key!r} of class {info.name!r} already names class {taken!r}; a label "
                    "or phrase must name one class (map such labels with class_map= instead)"
                )
            owner[key] = info.name
    for info in new:
        VOCABULARY[info.name] = info
        for key in _keys(info):
            _ALIASES[key] = info.name


def _did_you_mean(label: str) -> str:
    try:
        return f"did you mean {canonical_class(label)!r}?"
    except InputError:
        return "name a built-in or declared class (geosam.data.VOCABULARY)"


def _unregister(name: str) -> None:
    """Forget a class declared in this process (tests and doctests: declarations are global)."""
    if name in BUILTIN_CLASSES:
        raise InputError(f"{name!r} is a built-in class")
    VOCABULARY.pop(name, None)
    for key in [k for k, v in _ALIASES.items() if v == name]:
        del _ALIASES[key]
