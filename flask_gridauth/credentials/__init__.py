"""One module per credential kind, and the parser that tells them apart."""

from .parse import Credential, CredentialKind, parse_credential

__all__ = ["Credential", "CredentialKind", "parse_credential"]
