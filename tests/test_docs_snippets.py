"""Every Python snippet of README.md and docs/**/*.rst runs, so the docs cannot drift from the code.

Each snippet runs in its own Python process, in a temporary folder, under a
small harness:

- ``GRIDAUTH_STORAGE_URI`` defaults to ``memory://`` (a snippet's own setting
  wins); any ``redis://`` URI is pointed at the test Redis under a key prefix of
  this test's own, which is deleted afterwards;
- the network is loopback only: a snippet that reaches for another host fails;
- ``GRIDAUTH_API_TOKEN`` and ``GRIDAUTH_SECRET_KEY`` are set in the environment;
- the snippet runs with ``__name__ != "__main__"`` (so ``app.run()`` guards stay
  shut), then every Flask app it defines is exercised with its test client: each
  argument-free GET route is called without a credential and with the token, and
  must answer without a 5xx, with the JSON error body on 401.

A snippet that cannot run on its own is marked in the page, right before it,
with ``.. skip-snippet: <reason>`` (reStructuredText) or
``<!-- skip-snippet: <reason> -->`` (Markdown).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPET_TOKEN = "snippet-bootstrap-token-0123456789abcdef"

DIRECTIVE_RE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode):: python3?\s*$")
RST_SKIP_RE = re.compile(r"^\s*\.\. skip-snippet:\s*(\S.*)$")
MD_BLOCK_RE = re.compile(r"(?:<!--\s*skip-snippet:\s*(.*?)\s*-->\s*\n)?```python\n(.*?)```", re.S)


@dataclass(frozen=True)
class Snippet:
    """One Python block of a page."""

    path: Path
    line: int
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        """``file:line``, the test id."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def rst_snippets(path: Path) -> list[Snippet]:
    """The ``.. code-block:: python`` blocks of a reStructuredText page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    for index, line in enumerate(lines):
        match = DIRECTIVE_RE.match(line)
        if match is None:
            continue
        indent = len(match.group(1))
        body: list[str] = []
        i = index + 1
        while i < len(lines) and lines[i].strip().startswith(":") and not body:  # directive options
            i += 1
        while i < len(lines):
            text = lines[i]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
            i += 1
        previous = next((lines[j] for j in range(index - 1, -1, -1) if lines[j].strip()), "")
        skip = RST_SKIP_RE.match(previous)
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        found.append(Snippet(path, index + 1, code, skip.group(1).strip() if skip else None))
    return found


def markdown_snippets(path: Path) -> list[Snippet]:
    """The fenced ``python`` blocks of a Markdown page."""
    text = path.read_text(encoding="utf-8")
    return [Snippet(path, text.count("\n", 0, m.start(2)), m.group(2), m.group(1)) for m in MD_BLOCK_RE.finditer(text)]


def all_snippets() -> list[Snippet]:
    """Every Python snippet of the README and the docs, in a stable order."""
    found = markdown_snippets(ROOT / "README.md")
    for page in sorted(DOCS.rglob("*.rst")):
        if "_build" not in page.parts:
            found += rst_snippets(page)
    return found


SNIPPETS = all_snippets()

HARNESS = r"""
import ipaddress, json, os, runpy, socket, sys

from flask import Flask

from flask_gridauth import config as gridauth_config
import flask_gridauth.state_config as gridauth_extension  # where the state builds its storage

# A default only: apply_defaults uses setdefault, so a snippet that names its storage keeps it.
gridauth_config.DEFAULTS[gridauth_config.STORAGE_URI] = "memory://"

_storage_from_uri = gridauth_extension.storage_from_uri


def _test_storage(uri, **kwargs):
    # Whatever Redis a snippet names, it gets the test Redis under this run's own key prefix.
    if isinstance(uri, str) and uri.startswith(("redis://", "rediss://")):
        uri = os.environ["SNIPPET_REDIS_URI"]
    return _storage_from_uri(uri, **kwargs)


gridauth_extension.storage_from_uri = _test_storage


def _loopback_only(address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("localhost",):
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
        if not ok:
            raise OSError(f"snippet harness: the network is loopback only, not {host!r}")


_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    return _connect(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None:
        _loopback_only((host.decode() if isinstance(host, bytes) else host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.getaddrinfo = _guarded_getaddrinfo

namespace = runpy.run_path(sys.argv[1], run_name="snippet")

token = {"Authorization": "Bearer " + os.environ["GRIDAUTH_API_TOKEN"]}
apps = [value for value in namespace.values() if isinstance(value, Flask)]
called = 0
for app in apps:
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.arguments or rule.endpoint == "static":
            continue
        for headers in ({}, token):
            response = client.get(rule.rule, headers=headers)
            called += 1
            assert response.status_code < 500 or response.status_code == 503, (rule.rule, response.status_code)
            if response.status_code == 401:
                body = response.get_json()
                assert body["object"] == "error" and body["code"] == "unauthorized", (rule.rule, body)
print(json.dumps({"apps": len(apps), "calls": called}))
"""


def test_snippets_were_found() -> None:
    """The collector finds the README's and the docs' snippets (a broken regex would silently test nothing)."""
    assert len([s for s in SNIPPETS if s.path.name == "README.md"]) >= 1
    assert len(SNIPPETS) >= 10
    assert all(s.code.strip() for s in SNIPPETS)


def test_skip_markers_are_rare_and_explained() -> None:
    """Snippets skipped by a marker give a reason, and stay a small minority."""
    skipped = [s for s in SNIPPETS if s.skip is not None]
    assert all(len(s.skip or "") >= 10 for s in skipped)
    assert len(skipped) * 4 <= len(SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, tmp_path: Path, redis_uri: str) -> None:
    """The snippet runs to the end in a fresh process, and any app it defines answers sanely."""
    if snippet.skip is not None:
        pytest.skip(f"marked in the page: {snippet.skip}")
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "GRIDAUTH_API_TOKEN": SNIPPET_TOKEN,
        "GRIDAUTH_SECRET_KEY": "snippet-secret-key-" + "k" * 32,
        "SNIPPET_REDIS_URI": redis_uri,
    }
    env.pop("GRIDAUTH_AUTH", None)
    done = subprocess.run(
        [sys.executable, str(harness), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{snippet.id} failed:\n{snippet.code}\n--- stderr ---\n{done.stderr[-4000:]}"
