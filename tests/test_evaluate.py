"""geosam.evaluation and ``geosam evaluate`` on small real labelled sets of each format.

An oracle that answers every prompt with the rasterized ground truth must score 1.0 everywhere;
an oracle missing one object gives scores that are computed here by hand from the labels. The CLI
runs end to end with the real default model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geosam.cli import main
from geosam.data import rasterize, read_rgb
from geosam.data.instances import InstanceTable
from geosam.errors import InputError
from geosam.evaluation import default_prompt, evaluate, image_probabilities, load_dataset
from tests.tasks_fixtures import EVAL_DATA, Oracle, PixelModel

SETS = {
    "coco": EVAL_DATA / "hrplanes" / "valid",
    "yolo": EVAL_DATA / "ships_ge" / "valid",
    "dota": EVAL_DATA / "dota",
    "isaid": EVAL_DATA / "isaid",
    "vaihingen": EVAL_DATA / "vaihingen",
}
FORMAT = {"coco": "coco", "yolo": "yolo", "dota": "dota", "isaid": "mask", "vaihingen": "mask"}


def _oracle(table: InstanceTable, drop: int | None = None) -> Oracle:
    """Ground truth for every (image, category prompt); ``drop`` leaves out that instance row."""
    oracle = Oracle()
    instances = table.instances if drop is None else table.instances.drop(index=drop)
    for row in table.images.to_dict("records"):
        image = read_rgb(row["image"])
        inst = instances[instances["image"] == row["image"]]
        for name in set(table.instances["class_name"]):
            mask = rasterize(inst[inst["class_name"] == name], (row["height"], row["width"]))
            oracle.add(image, default_prompt(name), mask)
    return oracle


@pytest.mark.parametrize("name", list(SETS))
def test_oracle_scores_one_on_every_format(name: str) -> None:
    table = load_dataset(SETS[name], FORMAT[name])
    assert len(table.images) >= 1 and len(table.instances) >= 3
    result = evaluate(_oracle(table), table, negatives=["tennis courts"], progress=False)
    assert set(result.categories) == set(table.instances["class_name"])
    for cat, s in result.categories.items():
        assert (s.oIoU, s.mIoU, s.precision_50) == (1.0, 1.0, 1.0), cat
        if s.AP50 is None:  # land cover: nothing to box or count
            assert cat in (
                "impervious",
                "low-vegetation",
                "road",
                "water",
                "forest",
                "agriculture",
                "barren",
            )
            assert s.count_acc is None
        elif (
            name == "dota"
        ):  # neighbouring cars touch: their boxes merge, which costs AP and counts
            assert 0.0 < s.AP50 <= 1.0
        else:
            assert (s.AP50, s.count_acc) == (1.0, 1.0), cat
    assert result.negatives == {"tennis courts": 1.0}
    out = result.to_json()
    json.dumps(out, allow_nan=False)  # valid JSON: undefined scores are null
    assert set(out) == {"categories", "negatives", "images"}


def test_scores_of_a_missed_object_are_exact() -> None:
    table = load_dataset(SETS["coco"], "coco")
    # Leave out the first plane of the first image.
    first = table.images.iloc[0]
    drop = int(table.instances.index[table.instances["image"] == first["image"]][0])
    result = evaluate(_oracle(table, drop=drop), table, progress=False)
    s = result.categories["plane"]

    shape = (int(first["height"]), int(first["width"]))
    truth = rasterize(table.instances_of(first["image"]), shape)
    kept = rasterize(
        table.instances.drop(index=drop).pipe(lambda t: t[t["image"] == first["image"]]), shape
    )
    missed = int(truth.sum() - kept.sum())
    total = sum(
        int(rasterize(table.instances_of(r["image"]), (r["height"], r["width"])).sum())
        for r in table.images.to_dict("records")
    )
    n_images, n_objects = len(table.images), len(table.instances)
    assert s.oIoU == pytest.approx((total - missed) / total)
    assert s.mIoU == pytest.approx((kept.sum() / truth.sum() + n_images - 1) / n_images)
    assert s.count_acc == pytest.approx((n_images - 1) / n_images)
    # All other objects found with score 1: precision 1 up to recall (n - 1) / n.
    recall = (n_objects - 1) / n_objects
    expected_ap = (np.floor(recall * 100 + 1e-9) + 1) / 101
    ap50 = s.AP50
    assert ap50 == pytest.approx(expected_ap)


def test_group_class_is_scored_against_the_union_of_its_members() -> None:
    table = load_dataset(SETS["dota"], "dota")  # small and large vehicles
    row = table.images.iloc[0]
    image, shape = read_rgb(row["image"]), (int(row["height"]), int(row["width"]))
    inst = table.instances_of(row["image"])
    union = rasterize(inst, shape)
    cars = rasterize(inst[inst["class_name"] == "small-vehicle"], shape)
    oracle = Oracle()
    oracle.add(image, "vehicles", union)
    result = evaluate(oracle, table, prompts={"vehicle": "vehicles"}, categories=["vehicle"], progress=False)
    s = result.categories["vehicle"]
    assert (s.oIoU, s.objects) == (1.0, len(inst))
    # Answering with the cars alone misses the large vehicles.
    oracle = Oracle()
    oracle.add(image, "vehicles", cars)
    s = evaluate(oracle, table, prompts={"vehicle": "vehicles"}, progress=False).categories["vehicle"]
    assert s.oIoU == pytest.approx(cars.sum() / union.sum())


def test_group_class_needs_images_labelled_for_every_member() -> None:
    vaihingen = load_dataset(SETS["vaihingen"], "mask")  # cars, but no large vehicles labelled
    with pytest.raises(InputError, match="no image is labelled for all"):
        evaluate(Oracle(), vaihingen, prompts={"vehicle": "vehicles"}, progress=False)
    ships = load_dataset(SETS["yolo"], "yolo")
    with pytest.raises(InputError, match="not in the data: vehicle"):
        evaluate(Oracle(), ships, prompts={"vehicle": "vehicles"}, progress=False)


def test_negative_prompt_that_fires_is_counted() -> None:
    table = load_dataset(SETS["yolo"], "yolo")
    oracle = _oracle(table)
    first = read_rgb(table.images.iloc[0]["image"])
    oracle.add(first, "swimming pools", np.eye(*first.shape[:2], dtype=bool))
    result = evaluate(oracle, table, negatives=["swimming pools"], progress=False)
    assert result.negatives["swimming pools"] == pytest.approx(1 - 1 / len(table.images))


def test_tiled_prediction_equals_whole_image_for_a_per_pixel_model() -> None:
    image = read_rgb(next((SETS["dota"] / "images").iterdir()))  # 557 x 712
    whole = image_probabilities(PixelModel(), image, ["a", "b"], tile=None)
    tiled = image_probabilities(PixelModel(), image, ["a", "b"], tile=256, overlap=48)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)

    seen: list[tuple[int, int]] = []

    class Recorder(PixelModel):
        def predict_batch(self, images: np.ndarray, prompts: object) -> np.ndarray:
            seen.append(images.shape[1:3])
            return super().predict_batch(images, prompts)  # type: ignore[arg-type]

    image_probabilities(Recorder(), image, ["a"], tile=256, overlap=32)
    assert all(h <= 256 and w <= 256 for h, w in seen)
    # Windows at most 224 px apart: 3 rows (0, 150, 301) by 4 columns (0, 152, 304, 456).
    assert len(seen) == 3 * 4
    with pytest.raises(InputError, match="overlap"):
        image_probabilities(PixelModel(), image, ["a"], tile=256, overlap=256)


def test_elongated_images_are_predicted_in_square_windows() -> None:
    seen: list[tuple[int, int]] = []

    class Recorder(PixelModel):
        def predict_batch(self, images: np.ndarray, prompts: object) -> np.ndarray:
            seen.append(images.shape[1:3])
            return super().predict_batch(images, prompts)  # type: ignore[arg-type]

    wide = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    probs = image_probabilities(Recorder(), wide, ["a"])
    assert seen == [(360, 360), (360, 360)]  # not stretched to a square whole
    np.testing.assert_allclose(probs, image_probabilities(PixelModel(), wide, ["a"], tile=None), atol=1e-6)
    seen.clear()
    image_probabilities(Recorder(), wide[:, :440], ["a"])  # aspect 1.22: whole
    assert seen == [(360, 440)]
    seen.clear()
    image_probabilities(Recorder(), wide, ["a"], tile=None)
    assert seen == [(360, 640)]


def test_load_dataset_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nothing", "coco")
    with pytest.raises(InputError, match="unknown data format"):
        load_dataset(SETS["coco"], "voc")
    with pytest.raises(InputError, match="neither an iSAID folder"):
        load_dataset(tmp_path, "mask")


# -- the command line, with the real default model -------------------------------------------


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code = main(["evaluate", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[1].startswith("category")  # the readable table comes first
    return json.loads(lines[-1])


def _check_ranges(report: dict[str, object], images: int) -> None:
    assert set(report) == {"categories", "negatives", "images"}
    assert report["images"] == images
    cats = report["categories"]
    assert isinstance(cats, dict) and cats
    for scores in cats.values():
        assert {"prompt", "oIoU", "mIoU", "P@0.5", "AP50", "count_acc", "images", "objects"} <= set(
            scores
        )
        assert isinstance(scores["prompt"], str) and scores["prompt"]
        for key in ("oIoU", "mIoU", "P@0.5", "AP50", "count_acc"):
            v = scores[key]
            assert v is None or 0.0 <= v <= 1.0, (key, v)
        assert scores["mIoU"] is not None and scores["P@0.5"] is not None


def test_cli_network_only_reads_group_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--data", str(SETS["dota"]), "--format", "dota", "--prompt", "vehicle=vehicles",
            "--device", "cpu")  # fmt: skip
    # --threads: 2 is the CI machine's own count, so the process-wide setting changes nothing else
    united, own = _run_cli(capsys, *args), _run_cli(capsys, *args, "--network-only", "--threads", "2")
    for report in (united, own):
        _check_ranges(report, 1)
    cats = united["categories"], own["categories"]
    assert isinstance(cats[0], dict) and isinstance(cats[1], dict)
    assert cats[0]["small-vehicle"] == cats[1]["small-vehicle"]  # no group: the same prompt
    assert cats[0]["vehicle"]["oIoU"] != cats[1]["vehicle"]["oIoU"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "extra", "images"),
    [
        ("coco", ["--limit", "2", "--prompt", "Aircrafts=planes on the apron"], 2),
        ("yolo", ["--limit", "1", "--scales", "0.75", "1"], 1),
        ("dota", ["--tile", "600"], 1),  # 712 x 557: predicted in 2 windows
        ("isaid", [], 1),
        ("vaihingen", [], 1),
    ],
)
def test_cli_end_to_end(
    capsys: pytest.CaptureFixture[str], name: str, extra: list[str], images: int
) -> None:
    report = _run_cli(
        capsys,
        "--data",
        str(SETS[name]),
        "--format",
        FORMAT[name],
        "--negative",
        "tennis courts",
        *extra,
    )
    _check_ranges(report, images)
    negatives = report["negatives"]
    assert isinstance(negatives, dict)
    assert set(negatives) == {"tennis courts"}
    assert 0.0 <= negatives["tennis courts"]["empty_rate"] <= 1.0
    cats = report["categories"]
    assert isinstance(cats, dict)
    if name == "coco":  # the data set's own label maps onto the canonical class
        assert cats["plane"]["prompt"] == "planes on the apron"
        table = load_dataset(SETS["coco"], "coco")
        first_two = set(table.images["image"].head(2))
        assert cats["plane"]["objects"] == int(table.instances["image"].isin(first_two).sum())
    if name == "vaihingen":
        assert cats["impervious"]["AP50"] is None and cats["impervious"]["count_acc"] is None


@pytest.mark.slow
def test_cli_console_script_prints_json_last(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "geosam",
            "evaluate",
            "--data",
            str(SETS["yolo"]),
            "--format",
            "yolo",
            "--limit",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    _check_ranges(json.loads(proc.stdout.strip().splitlines()[-1]), 1)
    assert "evaluate" in proc.stderr  # the progress bar


def test_cli_split_ways_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--data", str(SETS["yolo"]), "--format", "yolo", "--split-shape", "--split-cores", "0.9"])
    assert exit_info.value.code == 2
    assert "--split-cores: not allowed with argument --split-shape" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "planes"], "KEY=VALUE"),
        (["--prompt", "helicopter=choppers"], "not in the data"),
        (["--limit", "0"], "--limit"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--split-cores", "0.3"], "a core probability in [threshold, 1)"),
        (["--threshold", "1.5"], "threshold must be a probability in [0, 1), got 1.5"),
        (["--threshold", "1"], "threshold must be a probability in [0, 1)"),
        (["--tile", "-5"], "tile must be None (every image whole) or an integer >= 16"),
        (["--prompt", "planes=airplanes"], "not in the data: planes; its categories: ship"),
        (["--prompt", "ships=vessels", "--prompt", "boat=boats"], "both name the category ship"),
        (["--prompt", "ship=a", "--prompt", "ship=b"], "--prompt gives 'ship' twice"),
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["--scales", "1", "1"], "scales must be distinct positive window scales"),
        (["--split", "valid"], "--split only applies to --format triplets"),
        (["--classes", "1=ship"], "--classes only applies to --format mask"),
        (["--model", "remotesam-v1"], "pass --weights PATH"),
    ],
)
def test_cli_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code = main(["evaluate", "--data", str(SETS["yolo"]), "--format", "yolo", *args])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("geosam: error: ") and message in err
    assert "evaluate:" not in err  # refused before the progress bar started


def test_cli_refuses_flags_that_triplets_do_not_use(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--data", "triplets", "--format", "triplets", "--prompt", "ship=boats",
                 "--tile", "512"])  # fmt: skip
    assert code == 1
    assert "--prompt, --tile do not apply to --format triplets" in capsys.readouterr().err


def test_evaluate_checks_its_options_up_front() -> None:
    table = load_dataset(SETS["yolo"], "yolo")
    oracle = _oracle(table)
    for options, message in [
        ({"threshold": 1.5}, r"threshold must be a probability in \[0, 1\), got 1.5"),
        ({"tile": -5}, "tile must be None"),
        ({"limit": 0}, "limit must be a positive number"),
        ({"prompts": {"ships": "ships"}}, "not in the data: ships; its categories: ship"),
        ({"prompts": {"ship": "boats"}, "categories": []}, "prompts are given for ship"),
    ]:
        with pytest.raises(InputError, match=message):
            evaluate(oracle, table, progress=False, **options)  # type: ignore[arg-type]
    # a repeated negative prompt is scored once, so its rate stays a share of the images
    result = evaluate(oracle, table, negatives=["pools", "pools"], progress=False)
    assert result.negatives == {"pools": 1.0}


@pytest.mark.parametrize("how", [[], ["--network-only"]])
def test_cli_scores_a_triplet_split_per_expression_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: list[str]
) -> None:
    from geosam.model import create, save_checkpoint
    from tests.data_fixtures import build_crops

    build_crops(tmp_path / "triplets")
    checkpoint = save_checkpoint(
        create("remotesam-lite", input_size=128), tmp_path / "lite.safetensors"
    )
    code = main([
        "evaluate", "--data", str(tmp_path / "triplets"), "--format", "triplets", "--split", "valid",
        "--split", "heldout", "--model", str(checkpoint), "--device", "cpu", "--json", *how,
    ])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(lines[-1])
    samples = pd.read_parquet(tmp_path / "triplets" / "samples.parquet")
    samples = samples[samples["split"].isin(["valid", "heldout"])]
    assert scores["n"] == len(samples)
    for kind, count in samples["kind"].value_counts().items():
        assert scores[f"{kind}/n"] == count
        assert 0.0 <= scores[f"{kind}/P@0.5"] <= 1.0
    assert any(line.startswith("zero ") for line in lines)  # the per-kind table


def test_network_only_asks_the_network_for_group_names(tmp_path: Path) -> None:
    from typing import ClassVar

    from geosam.data.dataset import TripletDataset
    from geosam.evaluation import evaluate_referring
    from geosam.model import RemoteSAM, create
    from tests.data_fixtures import build_crops

    class Recording(RemoteSAM):  # the real predictor, noting whether groups were united per call
        seen: ClassVar[list[bool]] = []

        def pair_probabilities(self, pixels, prompts, *, batch_size=None):  # type: ignore[no-untyped-def]
            self.seen.append(self.unite_groups)
            return super().pair_probabilities(pixels, prompts, batch_size=batch_size)

    build_crops(tmp_path / "triplets")
    model = Recording(create("remotesam-lite", input_size=128), device="cpu", precision="fp32")
    dataset = TripletDataset.for_network(tmp_path / "triplets", model.network, ["valid"], limit=3)
    evaluate_referring(model, dataset, resolve=False)
    assert model.seen and not any(model.seen) and model.unite_groups  # restored afterwards
    model.seen.clear()
    evaluate_referring(model, dataset, resolve=True)
    assert model.seen and all(model.seen)
