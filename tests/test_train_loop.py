"""The training loop on remotesam-lite at a small input size: learning, exact resume after an
interruption, run folders that are continued or overwritten but never mixed, DistributedDataParallel
over two CPU processes, and the command line."""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from geosam.cli import main
from geosam.data import build_dataset, read_yolo
from geosam.errors import CheckpointError, InputError
from geosam.model import create, load_model
from geosam.model.checkpoint import read_checkpoint, save_checkpoint
from geosam.train import TrainConfig, train
from geosam.train.trainer import build_network
from tests.data_fixtures import DATA, build_crops

SIZE = 64  # remotesam-lite runs at any multiple of 32; small keeps CPU steps short


@pytest.fixture(scope="module")
def triplets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train_triplets")
    build_crops(out)
    return out


@pytest.fixture(scope="module")
def ships_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own dataset: ships alone, with tennis courts known to be absent from its scenes."""
    out = tmp_path_factory.mktemp("ships_only")
    table = read_yolo(DATA / "ships_ge" / "yolo", source="ships_ge", licence="CC BY 4.0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # advice on a one-class source, not under test
        build_dataset(table, out, seed=0, out_size=256, progress=False, known_absent={"ships_ge": ("tennis-court",)})
    return out


def _log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _config(data: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(data=str(data), out=str(out), input_size=SIZE, batch_size=2, epochs=2,
                                train_limit=8, val_splits=(), threads=1, progress=False, log_every=1, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_the_loss(triplets: Path, tmp_path: Path) -> None:
    result = train(_config(triplets, tmp_path, train_limit=4, batch_size=4, epochs=10, augment=False,
                           balance=None, val_splits=("valid",), val_limit=4))
    losses = [h["train_loss"] for h in result.history]
    assert result.completed and len(losses) == 10
    assert losses[-1] < 0.8 * losses[0], losses
    assert {"val/oIoU", "val/mIoU"} <= set(result.history[-1])
    config, _ = read_checkpoint(tmp_path / "last.safetensors")
    assert config["arch"] == "remotesam-lite" and config["config"]["input_size"] == SIZE
    assert "ships_ge" in config["data"]["sources"]  # provenance and licences travel with the weights
    assert (tmp_path / "best.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in log].count("epoch") == 10


def test_fine_tuning_starts_from_an_official_checkpoint(triplets: Path, tmp_path: Path) -> None:
    """``--init RemoteSAMv1.pth``: a file in the official layout (torch.save of a dict with
    ``model``), read safely and trained on. The layout is shown with remotesam-lite's state, since a
    remotesam-v1 step takes minutes and 12 GB on a CPU (docs/training.md has the measured v1 run)."""
    from tests.test_checkpoint import save_official

    start = create("remotesam-lite", input_size=SIZE, pretrained=False).state_dict()
    path = save_official(tmp_path / "official.pth", start)
    result = train(_config(triplets, tmp_path / "run", init=str(path), freeze=("backbone.",), epochs=1,
                           train_limit=2))
    assert result.completed
    _, state = read_checkpoint(tmp_path / "run" / "last.safetensors")
    frozen = [k for k in start if k.startswith("backbone.") and start[k].is_floating_point()]
    trained = [k for k in start if not k.startswith(("backbone.", "text_encoder.")) and k.endswith(".weight")]
    assert frozen and all(torch.equal(state[k], start[k]) for k in frozen)  # started from the file
    assert any(not torch.equal(state[k], start[k]) for k in trained)  # and trained on it


def test_resume_after_interruption_gives_the_same_weights(triplets: Path, tmp_path: Path) -> None:
    full = train(_config(triplets, tmp_path / "full"))
    stopped = train(_config(triplets, tmp_path / "cut", max_steps=3))  # stops inside the first epoch
    assert not stopped.completed and stopped.global_step == 3
    resumed = train(_config(triplets, tmp_path / "cut", resume=True))
    assert resumed.completed and resumed.global_step == full.global_step == 8
    a, b = full.network.state_dict(), resumed.network.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_seam_weight_changes_the_updates(triplets: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(epochs=1, max_steps=2, sources=("ships_ge", "hrplanes"))
    plain = train(_config(triplets, tmp_path / "plain", **kw)).network.state_dict()
    seams = train(_config(triplets, tmp_path / "seams", seam_weight=5.0, **kw)).network.state_dict()
    assert any(not torch.equal(plain[k], seams[k]) for k in plain if k.startswith("decoder."))
    for name in ("seam_weight", "contact_weight"):
        with pytest.raises(InputError, match=name):
            train(_config(triplets, tmp_path / "bad", **{name: -1.0}))


def test_contact_head_trains_alone_on_a_frozen_network(triplets: Path, tmp_path: Path) -> None:
    # The recipe of the contact head: grown on trained weights, everything else frozen, so the
    # masks before carving stay exactly those of the initial network (batch norms included).
    init = tmp_path / "init.safetensors"
    save_checkpoint(build_network("remotesam-lite", input_size=SIZE), init)
    frozen = ("backbone.", "fusion.", "context.", "decoder.", "presence.")
    result = train(_config(triplets, tmp_path / "run", init=str(init), model_options={"contact_head": True},
                           freeze=frozen, epochs=1, max_steps=2, sources=("ships_ge", "hrplanes")))
    _, before = read_checkpoint(init)
    after = result.network.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in after if k.startswith("contact_head.logit.w"))
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(r["contact"] > 0 for r in steps if r["event"] == "step")


def test_training_warns_of_classes_it_will_teach_to_be_empty(triplets: Path, tmp_path: Path) -> None:
    # On ships alone, "airplanes" is only ever a negative region (a look-alike that must stay empty on
    # the ships): fine-tuning would teach the network to answer it with nothing (docs/model-card.md,
    # "fine-tuning on one source forgets the rest"). With every source, aircraft are also shown.
    init = tmp_path / "init.safetensors"
    save_checkpoint(build_network("remotesam-lite", input_size=SIZE), init)
    kw: dict[str, Any] = dict(init=str(init), epochs=1, max_steps=1, train_limit=None, negative_regions=0.5)
    with pytest.warns(UserWarning, match=r"name .*plane.* only as absent"):
        train(_config(triplets, tmp_path / "ships", sources=("ships_ge",), **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train(_config(triplets, tmp_path / "all", **kw))


def test_a_run_folder_is_continued_or_overwritten_never_mixed(triplets: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(epochs=1, train_limit=4)
    train(_config(triplets, tmp_path, val_splits=("valid",), val_limit=2, **kw))
    assert (tmp_path / "best.safetensors").is_file()
    with pytest.raises(InputError, match=r"already holds a training run \(resume.pt, last.safetensors, log.jsonl\): "
                                         r"pass resume=True to continue it, overwrite=True"):
        train(_config(triplets, tmp_path, **kw))
    with pytest.raises(InputError, match="pass only one of them"):
        train(_config(triplets, tmp_path, resume=True, overwrite=True, **kw))
    # A check that fails after the folder check leaves the run it would have overwritten alone.
    with pytest.raises(InputError, match="freeze prefix"):
        train(_config(triplets, tmp_path, overwrite=True, freeze=("decodr.",), **kw))
    assert (tmp_path / "best.safetensors").is_file()
    (tmp_path / "notes.txt").write_text("mine")
    train(_config(triplets, tmp_path, overwrite=True, **kw))  # no validation: no best.safetensors
    assert not (tmp_path / "best.safetensors").exists() and (tmp_path / "notes.txt").is_file()
    assert [(r["event"], r["global_step"]) for r in _log(tmp_path)] == [("step", 1), ("step", 2), ("epoch", 2)]
    (tmp_path / "resume.pt").unlink()
    with pytest.raises(InputError, match=r"no resume.pt to continue from: pass overwrite=True"):
        train(_config(triplets, tmp_path, resume=True, **kw))


def test_resume_refuses_other_settings_and_logs_the_allowed_changes(
        triplets: Path, ships_only: Path, tmp_path: Path) -> None:
    train(_config(triplets, tmp_path, max_steps=1))
    with pytest.raises(InputError) as refused:
        train(_config(ships_only, tmp_path, resume=True, lr=2e-3, epochs=3, input_size=96, workers=1))
    message = str(refused.value)
    for line in (f"  data: {triplets.resolve()} -> {ships_only.resolve()}", "  epochs: 2 -> 3",
                 "  input_size: 64 -> 96", "  lr: 0.001 -> 0.002"):
        assert line in message, message
    assert "workers" not in message and "pass overwrite=True to start afresh" in message
    assert f"start a new one from its weights, init={tmp_path / 'last.safetensors'}" in message
    # A resume state written before states held their settings: the run's config.json tells them.
    state = torch.load(tmp_path / "resume.pt", weights_only=True)
    del state["settings"]
    torch.save(state, tmp_path / "resume.pt")
    with pytest.raises(InputError, match=r"(?s)other settings.*  batch_size: 2 -> 4"):
        train(_config(triplets, tmp_path, resume=True, batch_size=4))
    resumed = train(_config(triplets, tmp_path, resume=True, log_every=2, presence_weight=0.5))
    assert resumed.completed and resumed.global_step == 8
    (resume,) = [r for r in _log(tmp_path) if r["event"] == "resume"]
    assert resume["global_step"] == 1
    assert resume["changed"] == {"log_every": [1, 2], "max_steps": [1, None], "presence_weight": [0.0, 0.5]}


def test_misspelt_prefixes_are_refused(triplets: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"freeze prefix 'decodr\.' matches no parameter of remotesam-lite "
                                         r"\(did you mean 'decoder\.'\?\); its parameter names start with "
                                         r"backbone\., context\., decoder\., fusion\., presence\."):
        train(_config(triplets, tmp_path / "a", freeze=("decodr.",)))
    with pytest.raises(InputError, match=r"lr_mult prefix 'backbon\.' .*did you mean 'backbone\.'"):
        train(_config(triplets, tmp_path / "b", lr_mult={"backbone.": 0.5, "backbon.": 0.5}))


def test_forgetting_warning_names_classes_the_init_weights_know(ships_only: Path, tmp_path: Path) -> None:
    # Tennis courts are only ever absent in these samples, and so are a ship's look-alikes in the
    # negative regions; the packaged weights find tennis courts, aircraft and vehicles, so those are
    # forgotten, while helicopters, storage tanks and bridges were never more than absent there.
    kw: dict[str, Any] = dict(epochs=1, max_steps=1, negative_regions=0.5)
    with pytest.warns(UserWarning, match="only as absent") as caught:
        train(_config(ships_only, tmp_path / "ft", init="remotesam-lite", **kw))
    (message,) = [str(w.message) for w in caught if "only as absent" in str(w.message)]
    assert "name large-vehicle, plane, tennis-court, vehicle (which remotesam-lite was trained to find)" in message
    assert not {"helicopter", "storage-tank", "bridge"} & set(message.replace(",", " ").split())
    config, _ = read_checkpoint(tmp_path / "ft" / "last.safetensors")
    known = set(config["data"]["classes"])  # what the next fine-tune from these weights compares with
    assert "ship" in known and "harbor" in known and not {"plane", "tennis-court", "small-vehicle"} & known
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        train(_config(ships_only, tmp_path / "ft2", init=str(tmp_path / "ft" / "last.safetensors"), **kw))
    assert not [w for w in again if "only as absent" in str(w.message)]  # nothing left to forget


def test_messages_name_what_exists(triplets: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"init 'remotesam_lite' not found: .*registered: "
                                              r"remotesam-lite, .*did you mean 'remotesam-lite'"):
        train(_config(triplets, tmp_path / "a", init="remotesam_lite"))
    with pytest.raises(InputError, match=r"sources ships not in the dataset .*; its sources are dota, hrplanes, .*ships_ge"):
        train(_config(triplets, tmp_path / "b", sources=("ships_ge", "ships")))
    with pytest.raises(InputError, match=r"sources dota have no samples in split\(s\) valid .*: hrplanes"):
        train(_config(triplets, tmp_path / "b", sources=("dota",), train_splits=("valid",)))
    # Runs shorter than log_every still log their last step, stopped or finished.
    train(_config(triplets, tmp_path / "short", log_every=100, max_steps=1))
    train(_config(triplets, tmp_path / "short", log_every=100, resume=True))
    assert [r["global_step"] for r in _log(tmp_path / "short") if r["event"] == "step"] == [1, 8]
    with pytest.raises(CheckpointError, match=r"resume state of a geosam training run .* not weights: load "
                                              r".*last.safetensors .* or .*best.safetensors"):
        load_model(tmp_path / "short" / "resume.pt")


def test_cli_refuses_a_run_folder_in_its_own_terms(triplets: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--data", str(triplets), "--out", str(tmp_path), "--input-size", str(SIZE), "--epochs", "1",
            "--batch-size", "2", "--train-limit", "4", "--threads", "1", "--val-splits", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    assert ("add --resume to continue it, --overwrite to delete its files and start afresh, or choose another "
            "--out") in capsys.readouterr().err
    assert main([*args, "--resume", "--lr", "1e-3", "--batch-size", "1", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "  --batch-size: 2 -> 1\n  --lr: 0.0003 -> 0.001\n" in err and "--workers" not in err
    assert "or add --overwrite to start afresh" in err
    for bad, message in ((["--freeze", "decodr."], "--freeze prefix 'decodr.'"),
                         (["--lr-mult", "backbon.=0.5"], "--lr-mult prefix 'backbon.'"),
                         (["--init", "remotesam_lite"], "--init 'remotesam_lite' not found"),
                         (["--sources", "ships"], "--sources ships not in the dataset")):
        assert main([*args, "--overwrite", *bad]) == 1
        assert message in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def _ddp_worker(rank: int, port: int, config: dict[str, Any], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    result = train(TrainConfig(**config))
    trained = {k: v.contiguous() for k, v in result.network.state_dict().items() if not k.startswith("text_encoder.")}
    save_file(trained, os.path.join(out, f"rank{rank}.safetensors"))
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes_agree(triplets: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _config(triplets, tmp_path / "run", epochs=1).__dict__
    mp.spawn(_ddp_worker, args=(port, config, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    _, saved = read_checkpoint(tmp_path / "run" / "last.safetensors")  # what rank 0 wrote
    assert all(torch.equal(saved[k], r0[k]) for k in r0)
    # Both ranks took 2 steps of 2 samples each: the 8 samples of the epoch, split between them.
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in steps if r["event"] == "step"] == [1, 2]


def test_cli_prepare_and_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "ships_ge").symlink_to(DATA / "ships_ge" / "yolo")
    assert main(["prepare", "--data-root", str(root), "--out", str(tmp_path / "ds"), "--sources", "ships_ge",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == {"ships_ge/train": summary["total"]}
    args = ["train", "--data", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--input-size", str(SIZE),
            "--epochs", "1", "--batch-size", "1", "--accumulate", "2", "--threads", "1", "--val-splits", "--quiet"]
    assert main([*args, "--max-steps", "1"]) == 130
    assert main([*args, "--resume"]) == 0
    assert (tmp_path / "run" / "last.safetensors").is_file()
    assert "done:" in capsys.readouterr().out
    # the sensor shift reaches the run's recorded settings, and a share outside [0, 1] is refused
    shifted = [*args[:4], str(tmp_path / "shifted"), *args[5:], "--max-steps", "1"]
    assert main([*shifted, "--sensor-shift", "0.5"]) == 130
    assert json.loads((tmp_path / "shifted" / "config.json").read_text())["sensor_shift"] == 0.5
    assert main([*args[:4], str(tmp_path / "bad"), *args[5:], "--sensor-shift", "2"]) == 1
    assert "sensor_shift must be a probability in [0, 1], got 2.0" in capsys.readouterr().err
    # An architecture option over the --init checkpoint: the stride-2 head grows on it.
    grown = ["--init", str(tmp_path / "run" / "last.safetensors"), "--out", str(tmp_path / "fine")]
    assert main([*args, *grown, "--model-option", "fine_head=true"]) == 0
    config, state = read_checkpoint(tmp_path / "fine" / "last.safetensors")
    assert config["config"]["fine_head"] is True and any(k.startswith("fine_head.") for k in state)
    for bad, message in (("fine_head", "KEY=VALUE"), ("fine_head=yes", "not a JSON value")):
        with pytest.raises(SystemExit):
            main([*args, "--model-option", bad])
        assert message in capsys.readouterr().err
    assert main([*args, *grown[:-1], str(tmp_path / "typo"), "--model-option", "fine_haed=true"]) == 1
    assert "remotesam-lite has no setting 'fine_haed'" in capsys.readouterr().err
    # remotesam-v1's cross-scale module is built for 896 px: a smaller input is refused up front
    v1 = [*args[:-4], "--model", "remotesam-v1", "--out", str(tmp_path / "v1"), "--val-splits", "--quiet"]
    assert main(v1) == 1
    assert "remotesam-v1 has no setting 'input_size' (its input size is fixed)" in capsys.readouterr().err
