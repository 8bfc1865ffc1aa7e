"""Shared pytest configuration. Area-specific fixtures live in tests/<area>_fixtures.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def fast_model():
    """remotesam-lite at 128 px windows with a real backbone and text encoder (tests/pipeline_fixtures.py)."""
    from tests.pipeline_fixtures import fast_model

    return fast_model()
