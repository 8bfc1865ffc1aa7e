"""Run a real STAC API on loopback over local STAC files: ``rustac serve`` as a context manager.

Used by the test fixtures and the demo (``rustac`` is a pip package: ``pip install rustac``; it serves
collections/bbox/datetime/ids search and paging from memory and is ready in about 0.1 s).

>>> from geosam.sample_data import demo_catalog
>>> from geosam.stac_server import serve_rustac
>>> with serve_rustac(demo_catalog(tmp).serve_args(), log_path=tmp / "rustac.log") as url:  # doctest: +SKIP
...     ds = geosam.open_stac(url, collections=["naip"])
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from geosam.errors import GeosamError

__all__ = ["free_port", "rustac_executable", "serve_rustac"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rustac_executable() -> str:
    """The ``rustac`` command next to this Python (a venv's bin/) or on PATH."""
    found = shutil.which("rustac", path=str(Path(sys.executable).parent)) or shutil.which("rustac")
    if found is None:
        raise GeosamError("the rustac command is not installed: pip install rustac")
    return found


def _collections_ready(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/collections", timeout=2) as response:
            return len(json.load(response).get("collections", []))
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def serve_rustac(
    hrefs: Sequence[str | os.PathLike[str]],
    *,
    log_path: str | os.PathLike[str],
    port: int | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[str]:
    """Serve ``hrefs`` (collection.json, items.ndjson, ...) with ``rustac serve`` on 127.0.0.1; yields the URL.

    The server's output goes to ``log_path``; it is stopped (terminate, then kill) on exit. Waits until
    ``/collections`` lists every collection among ``hrefs``.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    expected = sum(1 for h in hrefs if Path(h).name == "collection.json")
    log_path = Path(log_path)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [rustac_executable(), "serve", "--addr", f"127.0.0.1:{port}", *map(str, hrefs)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            count = _collections_ready(url)
            if count is not None and count >= expected:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with {process.returncode}"
                    if process.poll() is not None
                    else "did not answer"
                )
                raise GeosamError(
                    f"rustac serve on {url} {state}; its log {log_path}:\n{log_path.read_text()[-2000:]}"
                )
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
