"""Who is calling: partner agencies with API keys, staff with signed bearer tokens.

API keys look like "mend_<key id>_<secret>". Only a SHA-256 of the secret is stored: the secret
is 32 random bytes, so a slow password hash adds nothing but latency. Staff tokens are JWTs
signed with Ed25519; services hold only the public key, the issuer holds the private key (a
local issuer for development and tests; an identity provider in production).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import PermissionDenied, Unauthenticated

ROLES = frozenset({"partner", "coordinator", "facilitator", "manager", "auditor", "admin"})
STAFF_ROLES = ROLES - {"partner"}
TOKEN_AUDIENCE = "mend"
ALL_COUNTIES = "*"      # only a service token may span the whole region


@dataclass(frozen=True)
class Principal:
    kind: str                          # "agency" or "staff"
    subject: str                       # agency id, or the staff member's id
    roles: frozenset[str]
    counties: frozenset[str]
    name: str = ""
    agency_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.subject}"

    def has_any_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require_role(self, *roles: str) -> None:
        if not self.has_any_role(*roles):
            raise PermissionDenied(f"this call needs one of the roles: {', '.join(sorted(roles))}")

    def covers(self, county: str) -> bool:
        return county in self.counties or (self.kind == "service" and ALL_COUNTIES in self.counties)


# -- API keys ------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    api_key: str        # shown once
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key() -> IssuedKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return IssuedKey(key_id, f"mend_{key_id}_{secret}", hash_secret(secret))


def split_api_key(api_key: str) -> tuple[str, str]:
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "mend" or not parts[1] or not parts[2]:
        raise Unauthenticated("the API key is malformed")
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


class CachedKeyLookup:
    """Caches successful key look-ups briefly so the hot path skips a database read; a revoked
    key stops working within ttl seconds."""

    def __init__(self, lookup: Callable[[str, str], Principal], ttl: float):
        self.lookup = lookup
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}

    def __call__(self, api_key: str) -> Principal:
        hit = self._cache.get(api_key)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        key_id, secret = split_api_key(api_key)
        principal = self.lookup(key_id, secret)
        if self.ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[api_key] = (now + self.ttl, principal)
        return principal


# -- staff tokens --------------------------------------------------------------------------
def generate_signing_key(private_path: Path, public_path: Path) -> None:
    """Create an Ed25519 key pair for the local issuer, if there is none yet."""
    if private_path.exists() and public_path.exists():
        return
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


class TokenIssuer:
    def __init__(self, private_key_pem: bytes, issuer: str = "mend-local"):
        self.key = serialization.load_pem_private_key(private_key_pem, password=None)
        self.issuer = issuer

    @classmethod
    def from_file(cls, path: Path, issuer: str = "mend-local") -> "TokenIssuer":
        return cls(Path(path).read_bytes(), issuer)

    def issue(self, subject: str, roles: Iterable[str], counties: Iterable[str], *, name: str = "",
              ttl_seconds: int = 3600) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": TOKEN_AUDIENCE, "sub": subject, "iat": now,
                  "exp": now + ttl_seconds, "roles": sorted(roles), "counties": sorted(counties), "name": name}
        return jwt.encode(claims, self.key, algorithm="EdDSA")

    def issue_service(self, service: str, counties: Iterable[str] = (ALL_COUNTIES,), *,
                      ttl_seconds: int = 30 * 24 * 3600) -> str:
        """A token for one Mend service calling another over nameko RPC (kept in a secret)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": TOKEN_AUDIENCE, "sub": service, "iat": now, "exp": now + ttl_seconds,
                  "kind": "service", "counties": sorted(counties)}
        return jwt.encode(claims, self.key, algorithm="EdDSA")


class TokenVerifier:
    def __init__(self, public_key_pem: bytes, issuer: str = "mend-local"):
        self.key = serialization.load_pem_public_key(public_key_pem)
        self.issuer = issuer

    @classmethod
    def from_file(cls, path: Path, issuer: str = "mend-local") -> "TokenVerifier":
        return cls(Path(path).read_bytes(), issuer)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self.key, algorithms=["EdDSA"], audience=TOKEN_AUDIENCE,
                                issuer=self.issuer, options={"require": ["exp", "sub", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the bearer token is not valid") from None
        roles = claims.get("roles")
        counties = claims.get("counties")
        if claims.get("kind") == "service":
            if not isinstance(counties, list) or not counties or not all(isinstance(c, str) and c for c in counties):
                raise Unauthenticated("the service token is bound to no county")
            return Principal(kind="service", subject=str(claims["sub"]), roles=frozenset({"service"}),
                             counties=frozenset(counties))
        if (not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles)
                or not set(roles) <= STAFF_ROLES):
            raise Unauthenticated("the bearer token carries no valid staff roles")
        if (not isinstance(counties, list) or not counties or ALL_COUNTIES in counties
                or not all(isinstance(c, str) and c for c in counties)):
            raise Unauthenticated("the bearer token is bound to no county")
        return Principal(kind="staff", subject=str(claims["sub"]), roles=frozenset(roles),
                         counties=frozenset(counties), name=str(claims.get("name") or ""))


class Authenticator:
    """Turns call metadata (lower-case header names) into a Principal, or refuses."""

    def __init__(self, token_verifier: TokenVerifier | None, api_key_lookup: Callable[[str], Principal] | None = None):
        self.token_verifier = token_verifier
        self.api_key_lookup = api_key_lookup

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        api_key = headers.get("x-api-key")
        authorization = headers.get("authorization", "")
        if api_key:
            if self.api_key_lookup is None:
                raise Unauthenticated("this service accepts staff bearer tokens only")
            return self.api_key_lookup(api_key.strip())
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization must be 'Bearer <token>'")
            if self.token_verifier is None:
                raise Unauthenticated("this service does not accept bearer tokens")
            return self.token_verifier.verify(token.strip())
        raise Unauthenticated("no credentials: send x-api-key or authorization: Bearer <token>")
