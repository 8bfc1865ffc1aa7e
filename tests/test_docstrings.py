"""The examples in geosam's docstrings run and print what they show (examples that need a scene, a
checkpoint or a cluster are marked ``# doctest: +SKIP`` and only read)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import geosam

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(geosam.__path__, "geosam.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (printed above)"
