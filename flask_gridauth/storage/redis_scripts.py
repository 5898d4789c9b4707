"""The Lua scripts of the Redis backends, shipped as package files under ``storage/lua/``.

Each is read once, at import, with :mod:`importlib.resources` (so an installed wheel or
zip finds them too); ``spend_function.lua`` is preceded by a generated table of the
quota refill periods (from :data:`flask_gridauth.records.REFILL_SECONDS`).
"""

from __future__ import annotations

from importlib.resources import files

from ..records import REFILL_SECONDS


def load_script(name: str) -> str:
    """The text of ``lua/<name>.lua`` in this package."""
    return files(__package__ or "flask_gridauth.storage").joinpath("lua", f"{name}.lua").read_text("utf-8")


_ADD = load_script("add")
_GET = load_script("get")
_LIST = load_script("list")
_CAS = load_script("cas")
_ROTATE = load_script("rotate")

#: ``spend(quota, key, now, cost)``, used by :data:`_SPEND` and :data:`_FIND_COUNT`.
_SPEND_FUNCTION = (
    "local REFILL_SECONDS = {"
    + ", ".join(f"{name} = {seconds}" for name, seconds in REFILL_SECONDS.items())
    + "}\n"
    + load_script("spend_function")
)
_SPEND = _SPEND_FUNCTION + load_script("spend")
_FIND_COUNT = _SPEND_FUNCTION + load_script("find_count")

#: The audit and usage scripts, registered on first use (see ``RedisStorage._activity``).
_ACTIVITY_SCRIPTS = {
    name: load_script(name)
    for name in ("audit_add", "audit_list", "audit_purge", "usage_add", "usage_list", "usage_purge")
}
