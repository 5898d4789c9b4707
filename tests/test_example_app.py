"""The example app of `make demo`: its secret key is shared by every worker of one instance folder."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from quickstart import create_app  # noqa: E402


def test_secret_key_kept_in_instance_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GRIDAUTH_SECRET_KEY, two apps on one instance folder get the same key from a 0600 file."""
    monkeypatch.delenv("GRIDAUTH_SECRET_KEY", raising=False)
    monkeypatch.setenv("GRIDAUTH_INSTANCE_PATH", str(tmp_path))
    config = {"GRIDAUTH_API_TOKEN": "example-token-0123456789", "GRIDAUTH_STORAGE_URI": "memory://"}
    first, second = create_app(config), create_app(config)
    assert first.secret_key == second.secret_key
    assert isinstance(first.secret_key, str) and len(first.secret_key) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "secret-key.json").st_mode) == 0o600


def test_environment_secret_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRIDAUTH_SECRET_KEY replaces the generated key, and no file is written."""
    monkeypatch.setenv("GRIDAUTH_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("GRIDAUTH_INSTANCE_PATH", str(tmp_path))
    app = create_app({"GRIDAUTH_API_TOKEN": "example-token-0123456789", "GRIDAUTH_STORAGE_URI": "memory://"})
    assert app.secret_key == "from-the-environment"
    assert not (tmp_path / "secret-key.json").exists()
