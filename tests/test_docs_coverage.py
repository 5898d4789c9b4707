"""The reference docs name every config key and every error code the code defines."""

from __future__ import annotations

from pathlib import Path

from flask_gridauth import config, errors

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_config_key_documented() -> None:
    """Each GRIDAUTH_* key of config.py appears in the configuration reference."""
    text = (DOCS / "reference" / "config.rst").read_text()
    keys = [v for k, v in vars(config).items() if k.isupper() and isinstance(v, str) and v.startswith("GRIDAUTH_")]
    assert len(keys) >= 25
    missing = [k for k in keys if f"``{k}``" not in text]
    assert missing == []


def test_every_error_code_documented() -> None:
    """Each error class's status and code appear in the errors reference."""
    text = (DOCS / "reference" / "errors.rst").read_text()
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.GridAuthError)]
    concrete = [c for c in classes if c is not errors.GridAuthError]
    assert len(concrete) >= 7
    for cls in concrete:
        assert f"``{cls.error_code}``" in text, cls
        assert f"``{cls.__name__}``" in text, cls
