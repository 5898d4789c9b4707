"""The docs name every config key, error code, CLI command and option, signal, audit action and route."""

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


def _all_docs() -> str:
    """The text of every page of the docs."""
    return "\n".join(p.read_text() for p in sorted(DOCS.rglob("*.rst")))


def test_every_cli_command_and_option_documented() -> None:
    """Each ``flask gridauth`` command and each of its options appears in the CLI reference."""
    import click

    from flask_gridauth.cli import gridauth_cli

    text = (DOCS / "reference" / "cli.rst").read_text()
    commands = gridauth_cli.commands
    assert len(commands) >= 12
    missing = [name for name in commands if f"``{name}" not in text]
    options = [
        (name, opt)
        for name, command in commands.items()
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ]
    assert len(options) >= 10
    missing += [f"{name} {opt}" for name, opt in options if opt not in text]
    assert missing == []


def test_every_signal_documented() -> None:
    """Each blinker signal has a ``#:`` doc comment, which the API reference's automodule of signals renders."""
    import inspect

    from blinker import NamedSignal

    from flask_gridauth import signals

    names = [name for name, value in vars(signals).items() if isinstance(value, NamedSignal)]
    assert len(names) >= 9
    assert ".. automodule:: flask_gridauth.signals\n   :members:" in (DOCS / "reference" / "api.rst").read_text()
    lines = inspect.getsource(signals).splitlines()
    undocumented = [
        name
        for name in names
        for i, line in enumerate(lines)
        if line.startswith(f"{name} = ") and not (i and lines[i - 1].startswith("#:"))
    ]
    assert undocumented == []


def test_every_audit_action_documented() -> None:
    """Each audit action the code can record is listed in the audit guide."""
    from flask_gridauth.activity import ACTIONS

    text = (DOCS / "guide" / "audit.rst").read_text()
    assert [action for action in ACTIONS if f"``{action}``" not in text] == []


def test_every_blueprint_route_documented(tmp_path: Path) -> None:
    """Each method and path of the key-management blueprint (every option on) is a row of the routes reference."""
    from flask import Flask

    from flask_gridauth import GridAuth, api_keys_blueprint

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN="t" * 32, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_METRICS=True)
    GridAuth(app)
    app.register_blueprint(api_keys_blueprint)
    routes = {
        f"{method} {rule.rule.replace('<key_id>', '<id>')}"
        for rule in app.url_map.iter_rules()
        # _unmatched is the blueprint's JSON 404/405 under its own paths, not a route of its own.
        if rule.endpoint.startswith(api_keys_blueprint.name + ".") and not rule.endpoint.endswith("._unmatched")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert len(routes) >= 15
    text = (DOCS / "reference" / "routes.rst").read_text()
    assert sorted(r for r in routes if f"``{r}``" not in text) == []
