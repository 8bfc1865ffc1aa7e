"""docs/pipeline.ipynb runs from top to bottom (nbclient, a real kernel, a real STAC API inside)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "pipeline.ipynb"


@pytest.mark.slow
def test_pipeline_notebook_executes(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(
        cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"
    )  # kept clean
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 2  # the probability plot and the map
    text = "".join(out.get("text", "") for out in outputs)
    assert "objects; EPSG:26914" in text and "True" in text  # vectors in the CRS; Zarr round trip
    found = int(re.search(r"(\d+) objects; EPSG", text).group(1))  # type: ignore[union-attr]
    assert found >= 10  # the text promises fields to draw (0 when small scenes were padded black)
