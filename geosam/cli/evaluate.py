"""``geosam evaluate``: score a model on a labelled data set, per category (see geosam.evaluation)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from geosam.cli import MODEL_TERMS, add_view_arguments, reworded
from geosam.cli.prepare import VOCABULARY_TERMS
from geosam.errors import InputError

if TYPE_CHECKING:
    from geosam.model.predictor import RemoteSAM

#: Python-API advice of the data readers and the model loader in this command's terms.
_CLI_TERMS = (
    *MODEL_TERMS,
    *VOCABULARY_TERMS,
)

_EPILOG = """\
examples (the small labelled sets of a source checkout, tests/data/eval):
  geosam evaluate --data tests/data/eval/hrplanes/valid --format coco --limit 2
  geosam evaluate --data tests/data/eval/ships_ge/valid --format yolo --prompt ship="ships" --json
  geosam evaluate --data tests/data/eval/dota --format dota --negative "swimming pools" --negative bridges
  geosam evaluate --data tests/data/eval/vaihingen --format mask
  geosam evaluate --data triplets --format triplets --split valid   # attribute expressions
  geosam evaluate --data roofs/valid/_annotations.coco.json --format coco --vocabulary my_classes.json

The last line printed with --json is one JSON object:
  {"categories": {NAME: {"prompt", "oIoU", "mIoU", "P@0.5", "AP50", "count_acc", "images", "objects"}},
   "negatives": {TEXT: {"empty_rate"}}, "images": N}
(null where a score is undefined: AP50 and count_acc of land-cover classes).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a model on labelled images (oIoU, mIoU, P@0.5, AP50, counting) per category",
        description=(
            "Prompt the model with each category of a labelled data set and score the masks "
            "(oIoU, mIoU, P@0.5 against the rasterized labels), the boxes derived from them (AP50) "
            "and their number (counting accuracy). Negative prompts name things absent from the "
            "data; their score is the share of images left empty."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="data set folder (or COCO json file)")
    p.add_argument(
        "--format",
        required=True,
        choices=("coco", "yolo", "dota", "mask", "triplets"),
        dest="fmt",
        help="coco: json beside the images; yolo: images/ labels/ data.yaml; "
        "dota: images/ labelTxt/; mask: iSAID instance PNGs or img/ + ann/ class masks; "
        "triplets: a `geosam prepare` folder, scored per expression kind (class, zero, size, "
        "position, relation, count) and source",
    )
    p.add_argument(
        "--split",
        action="append",
        default=[],
        help="with --format triplets: the split(s) to score (default valid)",
    )
    p.add_argument(
        "--network-only",
        action="store_true",
        help="score the network's own reading of every prompt: group classes ('vehicles') are not "
        "answered as the union of their members, and with --format triplets size/position/relation "
        "expressions are not resolved by geometry (geosam.tasks.refer)",
    )
    p.add_argument(
        "--model",
        default="remotesam-lite",
        help="registered model name or geosam .safetensors checkpoint (default remotesam-lite)",
    )
    p.add_argument(
        "--weights", default=None, help="weights file for a registered model (e.g. RemoteSAMv1.pth)"
    )
    p.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="CATEGORY=TEXT",
        help="prompt text for a category (repeatable; default: the category's natural phrase)",
    )
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="TEXT",
        help="a prompt naming something absent from the data (repeatable)",
    )
    p.add_argument(
        "--classes",
        action="append",
        default=[],
        metavar="VALUE=NAME",
        help="class table of semantic mask values for --format mask (repeatable)",
    )
    p.add_argument(
        "--vocabulary",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON file declaring classes of your own that the labels use (repeatable; "
        "docs/training.md, 'Classes of your own'; a triplet dataset's dataset.json works too)",
    )
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="evaluate the first N images only"
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,  # 1024, but None tells that it was not given (it has no use with triplets)
        help="images with a side above this are predicted in overlapping windows of this size, "
        "elongated images (aspect above 1.25) in square windows of their short side at most "
        "(default 1024; 0 = always whole, stretched to the network's square input)",
    )
    p.add_argument(
        "--threshold", type=float, default=0.5, help="mask threshold, 0 to below 1 (default 0.5)"
    )
    split = p.add_mutually_exclusive_group()
    split.add_argument(
        "--split-shape",
        action="store_true",
        help="before boxing, split objects that touch at the necks of their mask (parked aircraft "
        "with overlapping wings; default: the paper's connected components; geosam.tasks.boxes)",
    )
    split.add_argument(
        "--split-cores",
        type=float,
        metavar="P",
        help="before boxing, split objects that touch at their cores above probability P (0.9 helps "
        "rows of parked aircraft; default: the paper's connected components; geosam.tasks.boxes)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, all cores)")
    add_view_arguments(p)
    p.add_argument(
        "--json", action="store_true", help="print the scores as one JSON line at the end"
    )
    p.set_defaults(func=run)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{what} must look like KEY=VALUE, got {item!r}")
        if key.strip() in out:  # the last one would silently win
            raise InputError(f"{what} gives {key.strip()!r} twice")
        out[key.strip()] = value.strip()
    return out


def _category_prompts(items: list[str], present: set[str]) -> dict[str, str]:
    """``{category: text}`` of the --prompt flags, refusing keys that name no category of the data
    (the message names the keys as typed, not their canonical class)."""
    from geosam.data.vocabulary import canonical_class
    from geosam.evaluation import unknown_categories

    prompts: dict[str, str] = {}
    keys: dict[str, str] = {}
    for key, text in _pairs(items, "--prompt").items():
        name = key
        if key not in present:
            try:  # accept the data set's own label ("Aircrafts") for a canonical class ("plane")
                name = canonical_class(key)
            except InputError:
                name = key
        if name in keys:  # "ships=..." and "boat=..." both name ship: one would be dropped
            raise InputError(
                f"--prompt {keys[name]}=... and --prompt {key}=... both name the category {name}; "
                "give one prompt per category"
            )
        keys[name] = key
        prompts[name] = text
    unknown = unknown_categories(list(prompts), present)
    if unknown:
        raise InputError(
            f"--prompt names categories that are not in the data: "
            f"{', '.join(keys[name] for name in unknown)}; its categories: "
            f"{', '.join(sorted(present)) or 'none'}"
        )
    return prompts


def _check_args(args: argparse.Namespace) -> None:
    """Refuse bad or unused flags before the data set and the model are loaded."""
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be a positive number of images, got {args.limit}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    if args.fmt == "triplets":
        unused = [
            flag
            for flag, given in (
                ("--prompt", args.prompt),
                ("--negative", args.negative),
                ("--classes", args.classes),
                ("--tile", args.tile is not None),
                ("--split-cores", args.split_cores is not None),
                ("--split-shape", args.split_shape),
            )
            if given
        ]
        if unused:
            raise InputError(
                f"{', '.join(unused)} {'do' if len(unused) > 1 else 'does'} not apply to --format "
                "triplets, whose samples carry their own expressions and are scored at the "
                "network's input size"
            )
    elif args.split:
        raise InputError("--split only applies to --format triplets")
    if args.classes and args.fmt != "mask":
        raise InputError("--classes only applies to --format mask (semantic mask values)")
    if args.split_cores is not None:
        from geosam.tasks.boxes import check_split

        try:
            check_split(args.split_cores, args.threshold)
        except InputError as err:
            raise InputError(f"--split-cores: {err}") from err


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # a shared machine: leave the other cores alone
    with reworded(_CLI_TERMS):
        from geosam.data.vocabulary import load_vocabulary

        for path in args.vocabulary:  # before the labels name them
            load_vocabulary(path)
        return _run_triplets(args) if args.fmt == "triplets" else _run(args)


def _load_model(args: argparse.Namespace) -> RemoteSAM:
    from geosam.model.build import load_model

    return load_model(
        args.model, weights=args.weights, device=args.device, tta=args.tta, scales=args.scales
    )


def _run(args: argparse.Namespace) -> int:
    from geosam.evaluation import DEFAULT_TILE, evaluate, load_dataset

    classes = None
    if args.classes:
        pairs = _pairs(args.classes, "--classes")
        try:
            classes = {int(k): (None if v.lower() == "none" else v) for k, v in pairs.items()}
        except ValueError as err:
            raise InputError(f"--classes values must be integers: {err}") from err
    table = load_dataset(args.data, args.fmt, classes=classes)
    present = set(table.instances["class_name"])
    prompts = _category_prompts(args.prompt, present)  # before loading the model
    model = _load_model(args)
    model.unite_groups = not args.network_only
    result = evaluate(
        model,
        table,
        prompts=prompts,
        negatives=args.negative,
        limit=args.limit,
        threshold=args.threshold,
        split="shape" if args.split_shape else args.split_cores,
        tile=DEFAULT_TILE if args.tile is None else (args.tile or None),
        progress=True,
    )
    print(f"{args.data} ({args.fmt}), model {args.model}: {result.images} images")
    print(result.table())
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def _run_triplets(args: argparse.Namespace) -> int:
    """Referring-expression scores of a triplet dataset split, per expression kind and source."""
    from geosam.data.dataset import TripletDataset
    from geosam.evaluation import evaluate_referring

    splits = args.split or ["valid"]
    model = _load_model(args)
    dataset = TripletDataset.for_network(args.data, model.network, splits, limit=args.limit)
    scores = evaluate_referring(
        model, dataset, resolve=not args.network_only, threshold=args.threshold, progress=True
    )
    groups = sorted({key.rpartition("/")[0] for key in scores})
    how = "network only" if args.network_only else "attributes resolved by geometry"
    print(f"{args.data} ({'+'.join(splits)}), model {args.model}, {how}: {len(dataset)} samples")
    print(f"{'group':<16} {'n':>6} {'oIoU':>7} {'mIoU':>7} {'P@0.5':>7} {'empty':>7}")
    for group in groups:
        prefix = f"{group}/" if group else ""

        def cell(name: str, prefix: str = prefix) -> str:
            value = scores.get(f"{prefix}{name}")
            return "      -" if value is None else f"{value:7.3f}"

        n = int(scores[f"{prefix}n"])
        print(
            f"{group or 'all':<16} {n:>6} {cell('oIoU')} {cell('mIoU')} {cell('P@0.5')} {cell('empty_ok')}"
        )
    if args.json:
        print(json.dumps(scores))
    return 0
