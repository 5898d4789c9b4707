"""SQLite coalesces last_used_at refreshes: first use at once, refreshes gathered and written together."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from flask_gridauth.storage.sqlite import SQLiteStorage

from .test_storage_contract import make_record


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A fresh SQLite file path."""
    return tmp_path / "keys.db"


@pytest.fixture
def pair(db: Path) -> Iterator[tuple[SQLiteStorage, SQLiteStorage]]:
    """Two storages on one file: as two processes would see it."""
    first, second = SQLiteStorage(str(db), timeout=0.2), SQLiteStorage(str(db), timeout=0.2)
    yield first, second
    first.close()
    second.close()


def test_first_use_is_written_at_once(pair: tuple[SQLiteStorage, SQLiteStorage]) -> None:
    """A key's first use is in the file straight away, for every process."""
    first, second = pair
    record = first.add(make_record())
    used = record.created_at + timedelta(seconds=1)
    first.touch(record, used)
    other = second.get(record.id)
    assert other is not None and other.last_used_at == used


def test_a_refresh_is_read_at_once_here_and_written_with_the_next_flush(
    pair: tuple[SQLiteStorage, SQLiteStorage],
) -> None:
    """A refresh is seen by this process at once, by others once flushed, and a flush writes it."""
    first, second = pair
    record = first.add(make_record())
    first.touch(record, record.created_at + timedelta(seconds=1))
    touched = first.find(record.lookup)
    assert touched is not None
    first.flush()  # the first refresh after this would otherwise be flushed at once
    later = record.created_at + timedelta(seconds=90)
    first.touch(touched, later)
    mine, theirs = first.find(record.lookup), second.find(record.lookup)
    assert mine is not None and mine.last_used_at == later
    assert theirs is not None and theirs.last_used_at == record.created_at + timedelta(seconds=1)
    first.flush()
    flushed = second.get(record.id)
    assert flushed is not None and flushed.last_used_at == later


def test_many_refreshes_are_one_transaction(pair: tuple[SQLiteStorage, SQLiteStorage]) -> None:
    """Refreshes of many keys within the interval are written by one flush, all of them."""
    first, second = pair
    records = [first.add(make_record()) for _ in range(20)]
    for record in records:
        first.touch(record, record.created_at + timedelta(seconds=1))
    touched = [first.get(r.id) for r in records]
    first.flush()
    later = records[0].created_at + timedelta(seconds=120)
    for record in touched:
        assert record is not None
        first.touch(record, later)
    assert len(first._pending) == 20
    first.flush()
    assert not first._pending
    assert [r.last_used_at for r in second.list(None, limit=50)] == [later] * 20


def test_due_flush_runs_with_the_next_look_up(
    pair: tuple[SQLiteStorage, SQLiteStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the interval has passed, the next find writes what was gathered."""
    first, second = pair
    record = first.add(make_record())
    first.touch(record, record.created_at + timedelta(seconds=1))
    touched = first.get(record.id)
    assert touched is not None
    first.flush()
    first.touch(touched, record.created_at + timedelta(seconds=90))
    assert first._pending
    monkeypatch.setattr(first, "_flush_at", 0.0)
    first.find(record.lookup)
    assert not first._pending
    seen = second.get(record.id)
    assert seen is not None and seen.last_used_at == record.created_at + timedelta(seconds=90)


def test_a_locked_file_delays_the_flush_but_fails_no_request(
    db: Path, pair: tuple[SQLiteStorage, SQLiteStorage], caplog: pytest.LogCaptureFixture
) -> None:
    """While another connection holds the write lock, reads work and refreshes wait; then they are written."""
    first, second = pair
    record = first.add(make_record())
    first.touch(record, record.created_at + timedelta(seconds=1))
    touched = first.get(record.id)
    assert touched is not None
    first.flush()
    later = record.created_at + timedelta(seconds=90)
    locker = sqlite3.connect(db, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        caplog.set_level(logging.WARNING, logger="flask_gridauth")
        first._flush_at = 0.0
        first.touch(touched, later)  # the flush fails after the busy timeout: kept, logged
        assert first._pending
        found = first.find(record.lookup)
        assert found is not None and found.last_used_at == later
        assert "retrying later" in caplog.text and record.lookup not in caplog.text
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    first.flush()
    seen = second.get(record.id)
    assert seen is not None and seen.last_used_at == later


def test_close_writes_what_is_pending(pair: tuple[SQLiteStorage, SQLiteStorage]) -> None:
    """Closing a storage writes its gathered refreshes."""
    first, second = pair
    record = first.add(make_record())
    first.touch(record, record.created_at + timedelta(seconds=1))
    touched = first.get(record.id)
    assert touched is not None
    first.flush()
    first.touch(touched, record.created_at + timedelta(seconds=90))
    first.close()
    seen = second.get(record.id)
    assert seen is not None and seen.last_used_at == record.created_at + timedelta(seconds=90)
