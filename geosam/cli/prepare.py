"""``geosam prepare``: build the (chip, text, mask) training dataset from labelled data: the
sources of a shared data folder (``--data-root``), labels of your own (``--coco``, ``--yolo``,
``--dota``, ``--vector``), or both."""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING, Any

from geosam.cli import plain_warnings, reworded
from geosam.errors import InputError

if TYPE_CHECKING:
    from geosam.data.instances import InstanceTable

#: The class and label advice of the importers (:func:`geosam.data.canonical_class`, the YOLO
#: reader) in CLI terms; ``geosam evaluate`` uses it too.
VOCABULARY_TERMS: tuple[tuple[str, str], ...] = (
    (
        r"register_class\('([^']*)', singular='([^']*)'\) or a vocabulary file loaded with "
        r"load_vocabulary\(PATH\)",
        r'a vocabulary file passed as --vocabulary FILE, a JSON list of classes such as '
        r'[{"name": "\1", "singular": ["\2"]}]',
    ),
    (r"declare them with register_class\(NAME, \.\.\.\) or load_vocabulary\(PATH\)",
     "declare them in a vocabulary file passed as --vocabulary FILE"),
    (r"map it onto a known class with class_map=\{.*?: NAME\}, NAME one of",
     "rename it in the labels (or read them in Python with class_map=) to one of"),
    (r"pass names=\[\.\.\.\] for the class indices", "add one with a names list for the class indices"),
)

#: The Python advice of the data engine in this command's terms (see geosam.cli.reworded).
_CLI_TERMS: tuple[tuple[str, str], ...] = (
    *VOCABULARY_TERMS,
    (r"pass overwrite=True \(--overwrite\)", "pass --overwrite"),
    (r"^data root ", "--data-root "),
    (r"SHARED_LAYOUT in geosam\.data\.sources", "geosam prepare --help shows it"),
    (r"pass sources=\[\.\.\.\] naming", "pass --sources naming"),
    (r"read it with read_(coco|yolo|dota)\('([^']*)'\) and build_dataset", r"pass it as --\1 \2"),
    (r"labels of your own are read with read_coco/read_yolo/read_dota and build_dataset",
     "labels of your own are passed as --coco JSON, --yolo FOLDER or --dota FOLDER"),
    (r"pass buffer_m= to give them a width", "pass --buffer METRES to give them a width"),
)

#: The advice of build_dataset's warnings in this command's terms.
_WARNING_TERMS: tuple[tuple[str, str], ...] = (
    (r"Pass known_absent=\{'[^']*': \[classes never in its scenes\]\} \(geosam prepare --known-absent\)",
     "Name the classes never in its scenes with --known-absent (labels of your own)"),
    (r"pass chip_sources=\['[^']*'\] to cut them into chips near target_gsd",
     "pass --chip (labels of your own) to cut them into chips near --target-gsd"),
)



def _epilog() -> str:
    from geosam.data.sources import SHARED_LAYOUT

    return f"""\
--data-root holds the shared sources, one folder each (--sources picks some of them):
{SHARED_LAYOUT}
labels of your own (each flag repeatable; together one source, named by --source):
  --coco JSON      a COCO annotation file; images beside it (file_name relative to its folder)
  --yolo FOLDER    a YOLO folder: data.yaml, images/ and labels/ (or train/ valid/ ... with them)
  --dota FOLDER    a DOTA folder: images/ and labelTxt/
  --vector LABELS RASTER
                   georeferenced labels (GeoJSON, GeoPackage, shapefile ...) over a GeoTIFF, in any
                   CRS, with --class-name or --class-column (and --buffer for lines and points);
                   the raster is cut into chips, and its unlabelled pixels count as showing none of
                   the labelled classes, so the labels must cover the whole raster
  The split of each image comes from its folder names (train, valid or val, test; else train):
  `geosam train` validates on valid. Classes outside geosam's vocabulary are declared in a
  --vocabulary file, a JSON list of classes (docs/training.md, "Classes of your own"):
    [{{"name": "solar-panel", "singular": ["solar panel"], "look_alikes": ["building"]}}]

examples:
  geosam prepare --data-root ../shared/data --out data/triplets
  geosam prepare --data-root ../shared/data --out data/triplets-dota --sources dota isaid --seed 1
  geosam prepare --out data/roofs --vocabulary my_classes.json --source roofs \\
      --coco roofs/train/_annotations.coco.json --coco roofs/valid/_annotations.coco.json \\
      --known-absent ship plane storage-tank
  geosam prepare --out data/mixed --data-root ../shared/data --sources ships_ge hrplanes \\
      --vocabulary my_classes.json --yolo my_yolo_export --source mine
  geosam prepare --out data/fields --source fields --vector parcels.gpkg scene.tif \\
      --class-column crop --known-absent ship plane
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from geosam.data.sources import SHARED_SOURCES

    p = subparsers.add_parser(
        "prepare",
        help="build a (chip, text, mask) training dataset from labelled imagery",
        description=(
            "Read labelled imagery (the sources of a shared data folder, or labels of your own in "
            "COCO, YOLO or DOTA format, or georeferenced vectors over a GeoTIFF), cut large scenes "
            "into chips, write referring expressions "
            "(class, absent class, size, position, relation, count) with their masks, and an index "
            "with provenance, licence and split per sample. Deterministic for a given --seed."
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", help="folder of the shared sources, one folder each (layout below)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--sources", nargs="+", choices=[s.name for s in SHARED_SOURCES],
                   help="only these sources of --data-root (default: all)")
    own = p.add_argument_group("labels of your own")
    own.add_argument("--coco", action="append", default=[], metavar="JSON",
                     help="COCO annotation file, images beside it (repeatable)")
    own.add_argument("--yolo", action="append", default=[], metavar="FOLDER",
                     help="YOLO folder with data.yaml, images/, labels/ (repeatable)")
    own.add_argument("--dota", action="append", default=[], metavar="FOLDER",
                     help="DOTA folder with images/, labelTxt/ (repeatable)")
    own.add_argument("--vector", action="append", nargs=2, default=[], metavar=("LABELS", "RASTER"),
                     help="georeferenced labels over a GeoTIFF (repeatable; chipped)")
    own.add_argument("--class-name", metavar="CLASS", help="the class of every --vector feature")
    own.add_argument("--class-column", metavar="COLUMN", help="the --vector labels' column naming each class")
    own.add_argument("--buffer", type=float, metavar="METRES",
                     help="width given to --vector lines and points, in metres either side")
    own.add_argument("--source", metavar="NAME", help="source name of these labels (default: own)")
    own.add_argument("--licence", metavar="TEXT",
                     help="their licence, recorded per sample (default: the COCO file's, else none)")
    own.add_argument("--known-absent", nargs="+", default=[], metavar="CLASS",
                     help="classes that never occur in their scenes, asked for as absent (empty masks): "
                          "needed when they label one class only")
    own.add_argument("--chip", action="store_true",
                     help="cut their images into chips (large scenes; near --target-gsd when --gsd is known)")
    own.add_argument("--gsd", type=float, metavar="METRES",
                     help="their ground sample distance in metres per pixel (DOTA files carry their own)")
    own.add_argument("--vocabulary", action="append", default=[], metavar="FILE",
                     help="JSON file declaring classes outside geosam's vocabulary (repeatable; see below)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chip-size", type=int, default=512, help="stored chip side in pixels (default 512)")
    p.add_argument("--target-gsd", type=float, default=0.3, help="metres per pixel chips are brought near (0.3)")
    p.add_argument("--overlap", type=float, default=0.25, help="overlap of neighbouring chips (0.25)")
    p.add_argument("--heldout-fraction", type=float, default=0.25,
                   help="part of each large train scene kept out as the 'heldout' split (0.25)")
    p.add_argument("--zero-fraction", type=float, default=0.25, help="share of absent-class samples (0.25)")
    p.add_argument("--chip-rounds", type=int, default=3, help="expression draws per large-scene chip (3)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse missing, conflicting or unused flags before any file is read."""
    labels = _has_own_labels(args)
    if args.data_root is None and not labels:
        raise InputError(
            "give --data-root (a folder of the shared sources) and/or labels of your own: "
            "--coco JSON, --yolo FOLDER, --dota FOLDER or --vector LABELS RASTER (geosam prepare --help shows both)"
        )
    vector_flags = {"--class-name": args.class_name, "--class-column": args.class_column, "--buffer": args.buffer}
    if args.vector and (args.class_name is None) == (args.class_column is None):
        raise InputError("--vector needs exactly one of --class-name CLASS (one class for all) or --class-column COLUMN")
    stray = [flag for flag, value in vector_flags.items() if value is not None]
    if stray and not args.vector:
        raise InputError(f"{', '.join(stray)} {'apply' if len(stray) > 1 else 'applies'} to --vector labels: add "
                         "--vector LABELS RASTER")
    if args.buffer is not None and not args.buffer > 0:
        raise InputError(f"--buffer must be a positive number of metres, got {args.buffer}")
    if args.sources and args.data_root is None:
        raise InputError("--sources picks sources of --data-root; give --data-root too")
    given = {"--known-absent": args.known_absent, "--chip": args.chip, "--gsd": args.gsd is not None,
             "--licence": args.licence is not None, "--source": args.source is not None}
    unused = [flag for flag, used in given.items() if used]
    if unused and not labels:
        verb = "apply" if len(unused) > 1 else "applies"
        raise InputError(f"{', '.join(unused)} {verb} to labels of your own: add --coco, --yolo, --dota or --vector")
    if args.gsd is not None and not args.gsd > 0:
        raise InputError(f"--gsd must be a positive number of metres per pixel, got {args.gsd}")
    if args.source is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.source):
        raise InputError(f"--source {args.source!r} must be letters, digits, '_', '.' or '-' (it names a folder)")
    if args.data_root is not None and labels:
        from geosam.data.sources import SHARED_SOURCES

        shared = set(args.sources or [s.name for s in SHARED_SOURCES])
        if (args.source or "own") in shared:
            raise InputError(f"--source {args.source} is a source of --data-root; name yours differently")


def _has_own_labels(args: argparse.Namespace) -> bool:
    return bool(args.coco or args.yolo or args.dota or args.vector)


def _own_labels(args: argparse.Namespace) -> InstanceTable | None:
    """The table of the --coco, --yolo, --dota and --vector labels, or None without any."""
    from geosam.data import InstanceTable, read_coco, read_dota, read_vector_labels, read_yolo
    from geosam.data._common import guess_split

    source, licence = args.source or "own", args.licence
    tables = [read_coco(path, source=source, licence=licence, gsd=args.gsd) for path in args.coco]
    tables += [read_yolo(path, source=source, licence=licence or "", gsd=args.gsd) for path in args.yolo]
    tables += [read_dota(path, source=source, licence=licence or "", split=guess_split(path), labelled=None)
               for path in args.dota]
    tables += [read_vector_labels(labels, raster, class_name=args.class_name, class_column=args.class_column,
                                  buffer_m=args.buffer, source=source, licence=licence or "")
               for labels, raster in args.vector]
    return InstanceTable.concat(tables) if tables else None


def _build_options(args: argparse.Namespace) -> dict[str, Any]:
    """build_dataset's per-source options: the shared sources' and those of the own labels."""
    from geosam.data import canonical_class
    from geosam.data.sources import shared_build_options

    options: dict[str, Any] = (
        shared_build_options(args.sources) if args.data_root is not None
        else {"chip_sources": [], "heldout_sources": [], "known_absent": {}, "licences": {}}
    )
    if _has_own_labels(args):
        source = args.source or "own"
        if args.chip or args.vector:
            options["chip_sources"].append(source)
        absent = []
        for name in args.known_absent:
            try:
                absent.append(canonical_class(name))
            except InputError as err:
                raise InputError(f"--known-absent {name}: {err}") from None
        options["known_absent"][source] = tuple(absent)
    return options


def run(args: argparse.Namespace) -> int:
    from geosam.data import InstanceTable, build_dataset, load_vocabulary
    from geosam.data.sources import read_shared_data

    with reworded(_CLI_TERMS):
        _check_args(args)
        for path in args.vocabulary:
            load_vocabulary(path)
        tables = [read_shared_data(args.data_root, args.sources)] if args.data_root is not None else []
        own = _own_labels(args)
        tables += [own] if own is not None else []
        options = _build_options(args)
        with plain_warnings("prepare", _WARNING_TERMS):
            summary = build_dataset(
                InstanceTable.concat(tables), args.out, seed=args.seed, out_size=args.chip_size,
                target_gsd=args.target_gsd, overlap=args.overlap, heldout_fraction=args.heldout_fraction,
                zero_fraction=args.zero_fraction, chip_rounds=args.chip_rounds, overwrite=args.overwrite,
                progress=not args.quiet, **options,
            )
    shown = {k: summary[k] for k in ("total", "samples", "kinds", "classes")}
    if summary["vocabulary"]:
        shown["vocabulary"] = [c["name"] for c in summary["vocabulary"]]
    print(json.dumps(shown, indent=2))
    return 0
