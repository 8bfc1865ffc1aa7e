"""``geosam prepare``: build the (chip, text, mask) training dataset from labelled data."""

from __future__ import annotations

import argparse
import json

_EPILOG = """\
examples:
  geosam prepare --data-root ../shared/data --out data/triplets
  geosam prepare --data-root ../shared/data --out data/triplets-dota --sources dota isaid --seed 1
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from geosam.data.sources import SHARED_SOURCES

    p = subparsers.add_parser(
        "prepare",
        help="build a (chip, text, mask) training dataset from labelled imagery",
        description=(
            "Read every labelled source of a data folder (COCO, YOLO, DOTA, iSAID, semantic masks, "
            "vector labels), cut large scenes into chips, write referring expressions (class, absent "
            "class, size, position, relation, count) with their masks, and an index with provenance, "
            "licence and split per sample. Deterministic for a given --seed."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", required=True, help="folder with the sources (the layout of shared/data)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--sources", nargs="+", choices=[s.name for s in SHARED_SOURCES],
                   help="only these sources (default: all)")
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


def run(args: argparse.Namespace) -> int:
    from geosam.data.sources import build_shared_dataset

    summary = build_shared_dataset(
        args.data_root, args.out, sources=args.sources, seed=args.seed, out_size=args.chip_size,
        target_gsd=args.target_gsd, overlap=args.overlap, heldout_fraction=args.heldout_fraction,
        zero_fraction=args.zero_fraction, chip_rounds=args.chip_rounds, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(json.dumps({k: summary[k] for k in ("total", "samples", "kinds", "classes")}, indent=2))
    return 0
