"""The layers hold: the client loads no Flask, and the package names load on first use."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_client_loads_no_flask() -> None:
    """`import flask_gridauth.client` loads neither Flask nor werkzeug nor any storage driver."""
    out = _run(
        "import sys, flask_gridauth.client\n"
        "print(sorted(m for m in ('flask', 'werkzeug', 'redis', 'psycopg', 'limits', 'jwt') if m in sys.modules))\n"
        "print(sorted(m for m in sys.modules if m.startswith('flask_gridauth')))"
    )
    loaded, ours = out.splitlines()
    assert loaded == "[]"
    assert ours == "['flask_gridauth', 'flask_gridauth.client', 'flask_gridauth.wire']"


def test_client_names_still_import() -> None:
    """The client's public names still come from flask_gridauth.client."""
    out = _run(
        "from flask_gridauth.client import GridSigner, generate_keypair, load_private_key, sign_request\n"
        "print(sign_request(generate_keypair().private_key, 'GET', '/x', version=1)['X-Grid-Signature'] != '')"
    )
    assert out == "True"


def test_every_public_name_resolves() -> None:
    """Each name of flask_gridauth.__all__ is importable from the package (loaded lazily)."""
    import flask_gridauth

    for name in flask_gridauth.__all__:
        assert getattr(flask_gridauth, name) is not None, name


def test_signature_wire_format_has_one_home() -> None:
    """The server's verifier and the client sign the same bytes: one function, in the core."""
    from flask_gridauth import client, wire
    from flask_gridauth.credentials import signature

    assert signature.signed_message is wire.signed_message is client.signed_message
    assert signature.fingerprint is wire.fingerprint
