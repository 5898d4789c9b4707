"""The example app (``examples/quickstart.py``) as gunicorn loads it for the real-server bench.

``GRIDAUTH_BENCH_CONFIG`` (JSON) holds the Flask config the bench chooses: the
storage URI and the rate-limit settings. The app's public ``/`` is the bare
route; ``/boards`` is the authenticated one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from quickstart import create_app  # noqa: E402

app = create_app(json.loads(os.environ.get("GRIDAUTH_BENCH_CONFIG", "{}")))
