"""Key format and checksum, and scope expansion and matching, as plain functions."""

from __future__ import annotations

import zlib

import pytest

from flask_gridauth.keys import check_key, display_prefix, generate_key, hash_key, key_pattern
from flask_gridauth.scopes import expand_scopes, is_valid_scope, scope_granted

TABLE = {"admin": ["write"], "write": ["read"]}


def test_key_shape_and_checksum() -> None:
    """A generated key has the documented shape and its last 8 hex are the CRC32 of the 40 before."""
    raw = generate_key("grd", "test")
    prefix, env, body = raw.split("_")
    assert (prefix, env, len(body)) == ("grd", "test", 48)
    assert int(body[40:], 16) == zlib.crc32(body[:40].encode())
    assert check_key(raw, key_pattern("grd"))


def test_keys_are_unique_and_random() -> None:
    """A thousand keys never repeat."""
    assert len({generate_key("grd") for _ in range(1000)}) == 1000


def test_checksum_catches_every_single_digit_typo() -> None:
    """Changing any one hex digit of a key fails the checksum."""
    raw = generate_key("grd")
    pattern = key_pattern("grd")
    start = len("grd_live_")
    for i in range(start, len(raw)):
        for digit in "0123456789abcdef":
            if digit != raw[i]:
                assert not check_key(raw[:i] + digit + raw[i + 1 :], pattern)


def test_trailing_newline_refused() -> None:
    """A key followed by a newline does not match the pattern."""
    raw = generate_key("grd")
    assert not check_key(raw + "\n", key_pattern("grd"))


def test_hash_and_display_prefix() -> None:
    """Keys are stored as hex SHA-256; the displayed prefix shows only the start."""
    raw = generate_key("grd")
    assert len(hash_key(raw)) == 64 and hash_key(raw) != hash_key(generate_key("grd"))
    assert display_prefix(raw, "grd") == raw[:17]


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (["admin"], {"admin", "write", "read"}),
        (["write"], {"write", "read"}),
        (["holdings:write"], {"holdings:write", "holdings:read"}),
        (["a:b:admin"], {"a:b:admin", "a:b:write", "a:b:read"}),
        (["read_admin"], {"read_admin"}),
        (["x:*"], {"x:*"}),
    ],
)
def test_expand_scopes(held: list[str], expected: set[str]) -> None:
    """Expansion follows the implication table, also inside namespaces, and nothing more."""
    assert expand_scopes(held, TABLE) == frozenset(expected)


@pytest.mark.parametrize(
    ("held", "name", "granted"),
    [
        (["admin"], "read", True),
        (["read_admin"], "admin", False),
        (["admin"], "holdings:read", False),
        (["holdings:*"], "holdings:write", True),
        (["holdings:*"], "holdings:deep:write", True),
        (["holdings:*"], "holdingsx:write", False),
        (["holdings:*"], "holdings", False),
        (["*"], "anything:at:all", True),
        (["read"], "rea", False),
    ],
)
def test_scope_granted(held: list[str], name: str, granted: bool) -> None:
    """Matching is exact, with wildcards only at a namespace boundary."""
    assert scope_granted(expand_scopes(held, TABLE), name) is granted


@pytest.mark.parametrize("name", ["read", "holdings:write", "x:*", "a.b-c_d:e"])
def test_valid_scope_names(name: str) -> None:
    """Ordinary and namespaced scope names are accepted."""
    assert is_valid_scope(name)


@pytest.mark.parametrize("name", ["", "*", "a b", "x:*:y", ":read", "read:", "ré", "a" * 201, 5, None, ["read"]])
def test_invalid_scope_names(name: object) -> None:
    """Blank, wildcard-only, spaced, misplaced wildcards, non-ASCII and non-strings are refused."""
    assert not is_valid_scope(name)
