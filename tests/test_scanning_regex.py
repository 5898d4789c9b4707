"""The regular expression registered with GitHub finds our keys and nothing of the other credential kinds."""

from __future__ import annotations

import re
import secrets
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flask_gridauth.credentials.signature import fingerprint
from flask_gridauth.credentials.token import TokenSettings
from flask_gridauth.keys import check_key, generate_key, key_pattern
from flask_gridauth.secret_scanning import scanning_regex

from .jwks_server import ec_key, ed25519_key, rsa_key

PREFIXES = ["grd", "a", "acme", "sk9", "z0123456789abcde"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("environment", ["live", "test"])
def test_matches_every_generated_key(prefix: str, environment: str) -> None:
    """200 generated keys of each prefix and environment are found whole, inside text, and only once."""
    regex = re.compile(scanning_regex(prefix))
    for _ in range(200):
        key = generate_key(prefix, environment)  # type: ignore[arg-type]
        assert regex.fullmatch(key)
        assert check_key(key, key_pattern(prefix))
        text = f'export API_KEY="{key}"\nconfig = {{"key": {key!r}}}\n{key}'
        assert regex.findall(text) == [key, key, key]


def test_refuses_near_misses() -> None:
    """Uppercase, other prefixes or environments, and runs too short or too long inside a token are not matched."""
    regex = re.compile(scanning_regex("grd"))
    key = generate_key("grd")
    for miss in (
        key.upper(),
        key.replace("_live_", "_prod_"),
        "x" + key,  # another prefix, xgrd
        key[:-1],
        key + "0",
        key + "g",
        generate_key("grdx"),
        generate_key("acme"),
    ):
        assert regex.search(miss) is None, miss


def test_matches_no_other_credential_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """JWTs (RS256, ES256, EdDSA, HS256), bootstrap tokens and signing-key fingerprints are never matched."""
    monkeypatch.delenv("GRIDAUTH_API_TOKEN", raising=False)
    token_makers = [
        TokenSettings.from_config({"GRIDAUTH_API_TOKEN": None, "GRIDAUTH_TOKEN_PREFIX": prefix}, "grd")
        for prefix in ("", "grip_", "grd_")
    ]
    regexes = [re.compile(scanning_regex(p)) for p in PREFIXES]
    others: list[str] = []
    claims = {"iss": "https://issuer.example.com", "sub": "grd_live_" + "a" * 48, "exp": int(time.time()) + 60}
    for signer in (rsa_key(), ec_key(), ed25519_key()):
        others.append(signer.sign(claims))
    others.append(jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256"))
    for _ in range(50):
        others += [maker.new_token() for maker in token_makers]  # as generated on a first start
        public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        others.append(fingerprint(public))
    assert len(set(others)) == len(others)  # every token really was generated afresh
    for other in others:
        for regex in regexes:
            assert regex.search(other) is None
    # The claims above hold a key-shaped string; the JWT's base64url encoding of it is not one.
    assert all("grd_live_" not in other for other in others)
