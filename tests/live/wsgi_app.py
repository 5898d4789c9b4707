"""The example app as gunicorn loads it in the live tests: ``gunicorn wsgi_app:app``.

Its config is the JSON in ``GRIDAUTH_LIVE_CONFIG``. A WSGI wrapper adds
``X-Worker-Pid`` to every response (401s included) so a test knows which worker
answered, and holds a request for ``X-Test-Delay`` seconds (at most 1) before
the app sees it, so a burst of concurrent requests reaches every worker.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from quickstart import create_app  # examples/ is on gunicorn's --pythonpath

#: Longest a request may be held before it reaches the app.
MAX_DELAY = 1.0

app = create_app(json.loads(os.environ.get("GRIDAUTH_LIVE_CONFIG", "{}")))
_inner = app.wsgi_app
_pid_header = ("X-Worker-Pid", str(os.getpid()))


def _wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        delay = float(environ.get("HTTP_X_TEST_DELAY", "0"))
    except ValueError:
        delay = 0.0
    if math.isfinite(delay) and delay > 0:
        time.sleep(min(delay, MAX_DELAY))

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, _pid_header], exc_info)

    return _inner(environ, start)


app.wsgi_app = _wrapped  # type: ignore[method-assign]
