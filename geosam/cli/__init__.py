"""The ``geosam`` command line. Each subcommand lives in its own module of this package.

A subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` on it; :func:`main` discovers the modules, so adding a command touches one file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from geosam.errors import GeosamError

#: Python-API advice in the library's messages (``pass weights=PATH``) in the terms of the flags of
#: the commands that load a model: (regular expression, replacement) pairs for :func:`reworded`.
MODEL_TERMS: tuple[tuple[str, str], ...] = (
    (r"pass weights=PATH", "pass --weights PATH"),
    (r"call load_model\(('[^']*')\) to load it", r"pass it as --model \1 to load it"),
    (r"use device='cpu' or 'auto'", "use --device cpu or auto"),
)


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


def add_view_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--tta`` and ``--scales``: the test-time views of :class:`geosam.RemoteSAM`."""
    parser.add_argument(
        "--tta", action="store_true", help="average with mirrored views (3x the compute; see RemoteSAM)"
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0],
        metavar="S",
        help="average with the image seen at these scales, e.g. 0.75 1 1.25 (sum of S^2 the "
        "compute; see RemoteSAM)",
    )


def reword(text: str, rewrites: Sequence[tuple[str, str]]) -> str:
    """``text`` with each ``(pattern, replacement)`` regular-expression rewrite applied."""
    for pattern, replacement in rewrites:
        text = re.sub(pattern, replacement, text)
    return text


@contextlib.contextmanager
def plain_warnings(command: str, rewrites: Sequence[tuple[str, str]] = ()) -> Iterator[None]:
    """Show the library's UserWarnings as they come, as one line ``geosam COMMAND: warning: ...``
    in the command's terms, instead of Python's file and line of the call."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, UserWarning):
            print(f"geosam {command}: warning: {reword(str(message), rewrites)}", file=sys.stderr)
        else:
            original(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


@contextlib.contextmanager
def reworded(rewrites: Sequence[tuple[str, str]]) -> Iterator[None]:
    """Re-raise a :class:`GeosamError` of the block with ``rewrites`` applied to its message.

    The library's messages advise Python callers (``pass overwrite=True``); a command translates that
    advice into its own flags here instead of making the Python messages vaguer.
    """
    try:
        yield
    except GeosamError as err:
        text = reword(str(err), rewrites)
        if text == str(err):
            raise
        raise type(err)(text) from err


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
