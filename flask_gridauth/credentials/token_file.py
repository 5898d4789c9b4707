"""The files a bootstrap token lives in: our own token file, or a key inside an app's JSON settings.

Nobody ever reads a half-written file. Our own file is written to a private
temporary file and hard-linked into place (or replaced, on rotation); an app's
settings file is rewritten whole under a lock on its folder and replaced
atomically. Every file is mode 0600, and one readable by others is warned
about. Nothing here decides what a valid token is: :mod:`.token` checks what
these functions read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigurationError

logger = logging.getLogger("flask_gridauth")


def _warn_if_shared(fd: int, path: str) -> None:
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        logger.warning(
            "the token file %s has mode %04o: group or others may read the bootstrap token; chmod 600 it", path, mode
        )


def read_token_file(path: str) -> object:
    """The ``token`` field of our own token file, unchecked; a :class:`ConfigurationError` if unreadable."""
    # A writer that could not hard-link (see write_token_file) may still be writing: retry briefly.
    for _ in range(50):
        try:
            with open(path, encoding="utf-8") as fh:
                data: Any = json.load(fh)
                token: object = data["token"]
                _warn_if_shared(fh.fileno(), path)
        except (ValueError, KeyError, TypeError):
            time.sleep(0.02)
            continue
        except OSError as exc:
            raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror}") from None
        return token
    raise ConfigurationError(f"the token file {path} is not valid: delete it to generate a new token")


def write_token_file(path: str, token: str, *, replace: bool) -> bool:
    """Write ``token`` to ``path`` with mode 0600; without ``replace``, ``False`` if it exists."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"token": token, "created_at": int(time.time())}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    except OSError as exc:
        raise ConfigurationError(f"cannot write the token file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def folder_lock(path: str) -> Iterator[None]:
    """An exclusive lock on the folder of ``path``: one worker at a time reads, generates and writes.

    The folder, not the file, is locked: the file is replaced by a new inode on
    every write, and a lock file beside an app's settings would be litter.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        raise ConfigurationError(f"cannot open the folder of the token file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def load_settings(path: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` if there is no file. Never half-read: writers replace it whole."""
    try:
        with open(path, encoding="utf-8") as fh:
            data: Any = json.load(fh)
            _warn_if_shared(fh.fileno(), path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read the token file {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigurationError(f"the token file {path} is not valid JSON: fix it by hand") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"the token file {path} must hold a JSON object")
    return data


def find_at(data: dict[str, Any], file_key: tuple[str, ...], path: str) -> object:
    """The value at the dotted ``file_key`` inside ``data``, ``None`` if a part is missing."""
    node: Any = data
    for i, part in enumerate(file_key):
        if not isinstance(node, dict):
            raise ConfigurationError(f"{'.'.join(file_key[:i])} in the token file {path} is not a JSON object")
        node = node.get(part)
        if node is None:
            return None
    return node


def store_at(data: dict[str, Any], file_key: tuple[str, ...], token: str, path: str) -> None:
    """Put ``token`` at the dotted ``file_key`` inside ``data``, making the objects on the way."""
    node = data
    for i, part in enumerate(file_key[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigurationError(f"{'.'.join(file_key[: i + 1])} in the token file {path} is not a JSON object")
        node = child
    node[file_key[-1]] = token


def write_json(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically by ``data``, mode 0600, fsynced."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigurationError(f"cannot write the token file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
