"""The ``geosam`` command line. Each subcommand lives in its own module of this package.

A subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` on it; :func:`main` discovers the modules, so adding a command touches one file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from geosam.errors import GeosamError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geosam",
        description="Text-prompted segmentation of Earth-observation scenes (RemoteSAM).",
    )
    from geosam import __version__

    parser.add_argument("--version", action="version", version=f"geosam {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geosam`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GeosamError as err:
        print(f"geosam: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
