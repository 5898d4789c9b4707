"""Node and tweetnacl for the tests that run the documented JavaScript snippets.

tweetnacl is installed once per test session with npm into a temporary folder.
Without node or npm the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: The tweetnacl release the guides were written against.
TWEETNACL = "tweetnacl@1.0.3"


def require(tool: str) -> str:
    """The path of ``tool``; skip the test without it, or fail under CI."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{tool} is required in CI but is not on PATH")
        pytest.skip(f"{tool} is not installed")
    return path


@functools.lru_cache(maxsize=1)
def _install() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="gridauth-node-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "package.json").write_text('{"name": "gridauth-guide-tests", "private": true}\n')
    proc = subprocess.run(
        [require("npm"), "install", "--no-audit", "--no-fund", "--silent", TWEETNACL],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"npm install {TWEETNACL} failed: {proc.stderr[-2000:]}")
    return folder


def tweetnacl_dir() -> Path:
    """A folder whose ``node_modules`` holds tweetnacl; node scripts run there can ``require('tweetnacl')``."""
    require("node")
    try:
        return _install()
    except RuntimeError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
