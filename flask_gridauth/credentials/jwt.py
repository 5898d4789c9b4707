"""JWT verification. PLACEHOLDER until the JWT issue lands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import Unauthorized
from ..principal import Principal


class JWTVerifier:
    """Verifies JWTs from the configured issuers."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, expand: Any) -> JWTVerifier:
        """Build from ``GRIDAUTH_JWT_*``."""
        return cls()

    def verify(self, token: str) -> Principal:
        """The token's principal, or 401."""
        raise Unauthorized()
