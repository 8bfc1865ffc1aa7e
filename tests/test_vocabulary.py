"""Classes of one's own: declaring them (register_class, vocabulary files), reading labels that use
them, building a dataset that records them, and opening it in a fresh process that never declared
them (a training run, a torchrun or spawned DataLoader worker)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from geosam.cli import main
from geosam.data import (
    BUILTIN_CLASSES,
    VOCABULARY,
    InstanceTable,
    TripletDataset,
    build_dataset,
    canonical_class,
    load_vocabulary,
    read_coco,
    read_yolo,
    register_class,
    register_classes,
)
from geosam.data.vocabulary import _unregister
from geosam.errors import InputError

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
SOLAR = {"name": "solar-panel", "singular": ["solar panel", "pv panel"], "plural": ["solar panels", "pv panels"],
         "look_alikes": ["building", "swimming-pool"], "aliases": ["PV module"]}


@pytest.fixture(autouse=True)
def _forget_own_classes() -> Iterator[None]:
    """Declarations are global to the process: each test starts with the built-in classes only."""
    yield
    for name in [n for n in VOCABULARY if n not in BUILTIN_CLASSES]:
        _unregister(name)


def solar_coco(folder: Path) -> Path:
    """A hand-made COCO file labelling "solar panel" boxes on roof equipment of the Vaihingen crop
    and on a house of the SpaceNet crop; the LoveDA crop (farmland) has none. Two images share the
    stem ``crop``."""
    images = [("vaihingen/img/crop.png", 256, 256), ("spacenet/buildings.tif", 400, 400),
              ("loveda/img/crop.png", 256, 256)]
    boxes = [(1, [138, 178, 20, 16]), (1, [170, 196, 28, 26]), (1, [204, 222, 22, 18]), (2, [228, 150, 22, 14])]
    coco = {
        "licenses": [{"id": 1, "name": "CC BY 4.0"}],
        "categories": [{"id": 1, "name": "solar panel", "supercategory": "none"}],
        "images": [{"id": i, "file_name": str(DATA / f), "width": w, "height": h, "license": 1}
                   for i, (f, w, h) in enumerate(images, 1)],
        "annotations": [{"id": k, "image_id": i, "category_id": 1, "bbox": b, "area": b[2] * b[3],
                         "segmentation": [], "iscrowd": 0} for k, (i, b) in enumerate(boxes, 1)],
    }
    path = folder / "solar.coco.json"
    path.write_text(json.dumps(coco))
    return path


def _vocabulary_file(folder: Path, entries: Any) -> Path:
    path = folder / "classes.json"
    path.write_text(json.dumps(entries))
    return path


# -- declaring ----------------------------------------------------------------------------------
def test_a_declared_class_is_known_by_its_name_aliases_and_phrases() -> None:
    info = register_class("solar-panel", singular=["solar panel", "PV panel"], look_alikes=["building"],
                          aliases=["PV_Module"])
    assert info.plural == ("solar panels", "pv panels")  # regular plurals made, phrases lower-cased
    for label in ("Solar_Panel", "solar panels", "pv-module", "PV panels", "solar-panel"):
        assert canonical_class(label) == "solar-panel"
    land = register_class("solar-farm", stuff=True)
    assert land.singular == land.plural == ("solar farm",) and land.stuff


def test_declaring_again_is_idempotent_and_redefining_is_refused() -> None:
    first = register_class("greenhouse", look_alikes=["building"])
    assert register_class("greenhouse", look_alikes=["building"]) is first
    with pytest.raises(InputError, match="'greenhouse' is already declared with another definition"):
        register_class("greenhouse", look_alikes=["building", "swimming-pool"])
    with pytest.raises(InputError, match="'ship' is a built-in class with another definition"):
        register_class("ship", singular="ship")
    ship = VOCABULARY["ship"]  # the built-in definition itself is accepted as it is
    register_class("ship", singular=ship.singular, plural=ship.plural, look_alikes=ship.look_alikes,
                   aliases=ship.aliases)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Solar Panel"}, r"lower-case words .* e\.g\. 'solar-panel'"),
    ({"name": "solar-panel", "look_alikes": ["cars"]}, r"look-alike 'cars' .* did you mean 'small-vehicle'"),
    ({"name": "solar-panel", "look_alikes": ["unicorn"]}, r"look-alike 'unicorn' .* not a class name"),
    ({"name": "solar-panel", "look_alikes": ["solar-panel"]}, "names itself as a look-alike"),
    ({"name": "oil-well", "singular": ["tank"]}, "'tank' of class 'oil-well' already names class 'storage-tank'"),
    ({"name": "solar-panel", "singular": [""]}, "non-empty strings"),
    ({"name": "solar-panel", "stuff": "yes"}, "stuff must be true or false"),
])
def test_bad_declarations_are_refused_with_the_reason(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        register_class(**kwargs)
    assert set(VOCABULARY) == BUILTIN_CLASSES


def test_vocabulary_files(tmp_path: Path) -> None:
    farm = {"name": "solar-farm", "stuff": True, "look_alikes": ["solar-panel", "agriculture"]}
    infos = load_vocabulary(_vocabulary_file(tmp_path, [SOLAR, farm]))  # they may name each other
    assert [i.name for i in infos] == ["solar-panel", "solar-farm"]
    assert canonical_class("PV Module") == "solar-panel"
    for entries, message in [
        ({"name": "x"}, "must hold a JSON list of classes"),
        ([{"name": "kiln", "colour": "red"}], r"entry 0: a class has the keys name, singular, .*'colour'"),
        ([{"name": "kiln"}, {"name": "kiln", "stuff": True}], "declared twice"),
        ([{"name": "kiln", "look_alikes": ["chimney"]}], "look-alike 'chimney'"),
    ]:
        with pytest.raises(InputError, match=message):
            load_vocabulary(_vocabulary_file(tmp_path, entries))
    assert "kiln" not in VOCABULARY  # a refused file declares nothing
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(InputError, match=r"broken\.json is not valid JSON"):
        load_vocabulary(tmp_path / "broken.json")


# -- reading and building ---------------------------------------------------------------------
def test_importers_point_to_the_declaration_and_then_read_the_class(tmp_path: Path) -> None:
    coco = solar_coco(tmp_path)
    with pytest.raises(InputError, match=r"register_class\('solar-panel', singular='solar panel'\) or a "
                                         r"vocabulary file loaded with load_vocabulary\(PATH\)"):
        read_coco(coco, source="mine")
    register_classes([SOLAR])
    table = read_coco(coco, source="mine")
    assert table.class_counts() == {"solar-panel": 4}
    assert set(table.images["labelled"]) == {("solar-panel",)}


def _build_mine(tmp_path: Path) -> Path:
    register_classes([SOLAR])
    table = InstanceTable.concat([
        read_coco(solar_coco(tmp_path), source="mine"),
        read_yolo(DATA / "ships_ge" / "yolo", source="ships_ge", licence="CC BY 4.0"),
    ])
    out = tmp_path / "triplets"
    build_dataset(table, out, out_size=256, progress=False,
                  known_absent={"mine": ["ship", "plane"], "ships_ge": ["plane", "solar-panel"]})
    return out


def test_a_dataset_records_its_own_classes_and_samples_them(tmp_path: Path) -> None:
    out = _build_mine(tmp_path)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["vocabulary"] == [{**SOLAR, "stuff": False, "aliases": ["pv module"]}]
    samples = pd.read_parquet(out / "samples.parquet")
    panels = samples[samples["class_name"] == "solar-panel"]
    assert {"class", "count", "size"} <= set(panels["kind"])
    assert panels["text"].str.contains("solar panel|pv panel").all()
    # Its known-absent classes give the one-class source one-to-zero samples.
    assert {"ship", "plane"} & set(samples[(samples["source"] == "mine") & (samples["kind"] == "zero")].class_name)
    # The two crop.png files are two chips, not one overwritten by the other.
    chips = pd.read_parquet(out / "chips.parquet")
    assert {"mine/crop", "mine/crop-2"} <= set(chips["chip"]) and chips["chip"].is_unique
    # A dataset folder is a vocabulary file too (geosam evaluate --vocabulary triplets).
    _unregister("solar-panel")
    assert [c.name for c in load_vocabulary(out)] == ["solar-panel"]


_FRESH = """
import pickle, sys
from geosam.data import VOCABULARY, TripletDataset
from geosam.data.vocabulary import _unregister
assert "solar-panel" not in VOCABULARY
ds = pickle.loads(open(sys.argv[1], "rb").read())  # as a spawned DataLoader worker gets it
assert "solar-panel" in VOCABULARY
ds.set_epoch(1)
items = [ds[i] for i in range(len(ds))]
_unregister("solar-panel")
ds = TripletDataset(sys.argv[2], "train", input_size=64, augment=True)  # as `geosam train` opens it
texts = [ds.view(i, __import__("numpy").random.default_rng(i)).text for i in range(len(ds))]
print(sum("panel" in t for t in texts), len(items))
"""


def test_a_dataset_declares_its_classes_in_a_fresh_process(tmp_path: Path) -> None:
    out = _build_mine(tmp_path)
    ds = TripletDataset(out, "train", input_size=64, augment=True)
    blob = tmp_path / "dataset.pickle"
    blob.write_bytes(pickle.dumps(ds))
    run = subprocess.run([sys.executable, "-c", _FRESH, str(blob), str(out)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    panels, items = (int(v) for v in run.stdout.split())
    assert panels >= 3 and items == len(ds)


def test_a_dataset_with_another_definition_of_its_class_is_refused(tmp_path: Path) -> None:
    out = _build_mine(tmp_path)
    _unregister("solar-panel")
    register_class("solar-panel", singular="photovoltaic panel")
    with pytest.raises(InputError, match=r"dataset\.json: class 'solar-panel' is already declared"):
        TripletDataset(out, "train", input_size=64)


# -- command line -------------------------------------------------------------------------------
def test_evaluate_reads_labels_of_declared_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    coco = solar_coco(tmp_path)
    assert main(["evaluate", "--data", str(coco), "--format", "coco", "--limit", "1"]) == 1
    err = capsys.readouterr().err
    assert "passed as --vocabulary FILE" in err and '[{"name": "solar-panel", "singular": ["solar panel"]}]' in err
    vocabulary = _vocabulary_file(tmp_path, [SOLAR])
    assert main(["evaluate", "--data", str(coco), "--format", "coco", "--limit", "2", "--device", "cpu",
                 "--vocabulary", str(vocabulary), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["categories"]["solar-panel"]["prompt"] == "solar panels"
    assert scores["categories"]["solar-panel"]["objects"] == 4


def test_prepare_builds_labels_of_your_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    coco, vocabulary = solar_coco(tmp_path), _vocabulary_file(tmp_path, [SOLAR])
    out = tmp_path / "mine"
    args = ["prepare", "--out", str(out), "--coco", str(coco), "--source", "roofs", "--quiet"]
    assert main(args) == 1
    assert "--vocabulary FILE" in capsys.readouterr().err
    assert main([*args, "--vocabulary", str(vocabulary), "--known-absent", "ships", "airplanes"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["vocabulary"] == ["solar-panel"] and shown["classes"] == {"solar-panel": 4}
    samples = pd.read_parquet(out / "samples.parquet")
    assert set(samples["source"]) == {"roofs"}
    assert {"ship", "plane"} & set(samples.loc[samples["kind"] == "zero", "class_name"])


def test_coco_images_may_say_which_categories_they_are_labelled_for(tmp_path: Path) -> None:
    # geosam's exports merge files of different classes into one source: a class is absent only
    # on the images that were labelled for it
    register_class("solar-panel")
    coco = json.loads(solar_coco(tmp_path).read_text())
    coco["categories"].append({"id": 2, "name": "building", "supercategory": "none"})
    coco["images"][0]["labelled_category_ids"] = [1]
    coco["images"][1]["labelled_category_ids"] = [1, 2]
    path = tmp_path / "mixed.coco.json"
    path.write_text(json.dumps(coco))
    labelled = [set(c) for c in read_coco(path, source="mine").images.labelled]
    assert labelled == [{"solar-panel"}, {"solar-panel", "building"}, {"solar-panel", "building"}]
    coco["images"][0]["labelled_category_ids"] = [7]
    path.write_text(json.dumps(coco))
    with pytest.raises(InputError, match=r"labelled_category_ids \[7\]"):
        read_coco(path, source="mine")

