"""Ed25519-signed requests. PLACEHOLDER until the signed-requests issue lands."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Request

from ..errors import InvalidRequest, Unauthorized
from ..principal import Principal
from ..storage import Storage


def load_public_key(public_key: object) -> tuple[str, str]:
    """Validate a base64 Ed25519 public key: ``(canonical base64, fingerprint)``."""
    raise InvalidRequest("signing keys are not supported yet", field="type")


class SignatureVerifier:
    """Verifies ``<P>-Signature`` requests."""

    def __init__(self, header_prefix: str) -> None:
        env = "HTTP_" + header_prefix.upper().replace("-", "_")
        self.environ_names = (env + "_SIGNATURE", env + "_TIMESTAMP", env + "_FINGERPRINT")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SignatureVerifier:
        """Build from ``GRIDAUTH_SIGNATURE_*``."""
        return cls(config["GRIDAUTH_SIGNATURE_HEADER_PREFIX"])

    def verify(
        self, request: Request, *, storage: Storage, expand: Callable[[Iterable[str]], frozenset[str]]
    ) -> Principal:
        """The signing key's principal, or 401."""
        raise Unauthorized()
