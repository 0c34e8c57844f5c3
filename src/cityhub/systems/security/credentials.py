"""Secrets in and out: argon2 password hashes, the password policy, signed access tokens, opaque
refresh tokens and TOTP codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cityhub.kit.errors import BadRequestData

ISSUER = "cityhub"
#: argon2id with the library's defaults (RFC 9106's second recommended option).
_HASHER = PasswordHasher()
#: Verified against when the user does not exist, so a wrong name costs the same time as a wrong
#: password and the answer's timing does not tell which names exist.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def check_password_policy(password: str, *, username: str, min_length: int) -> None:
    """At least ``min_length`` characters, three of four classes (lower, upper, digit, other), and
    not containing the user name: what MLPS level 3 asks of "complexity"."""
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        problems.append("three of: lower-case letters, upper-case letters, digits, other characters")
    if username and username.lower() in password.lower():
        problems.append("not containing the user name")
    if len(password) > 256:
        problems.append("at most 256 characters")
    if problems:
        raise BadRequestData("the password must have " + "; ".join(problems))


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    username: str
    issued_at: float
    expires_at: float
    token_id: str
    family_id: str | None
    mfa: bool


class TokenError(Exception):
    """The token is malformed, tampered with, expired or not an access token."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


#: Access tokens are JWTs (RFC 7519) signed with HMAC-SHA256. The hub issues them with this one
#: header and accepts no other, so no token can choose its own algorithm ("none", or a public key
#: taken as an HMAC secret). Checked by hand because it is on every request: a general JWT library
#: spends several times longer on the same checks.
_HEADER = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def issue_access_token(
    key: str, *, user_id: uuid.UUID, username: str, ttl: int, family_id: uuid.UUID | None, mfa: bool
) -> tuple[str, AccessClaims]:
    now = time.time()
    claims = AccessClaims(
        user_id=user_id,
        username=username,
        issued_at=now,
        expires_at=now + ttl,
        token_id=secrets.token_hex(8),
        family_id=str(family_id) if family_id else None,
        mfa=mfa,
    )
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "typ": "access",
        "sub": str(user_id),
        "usr": username,
        "iat": now,
        "exp": int(claims.expires_at),
        "jti": claims.token_id,
        "mfa": mfa,
    }
    if family_id is not None:
        payload["sid"] = str(family_id)
    signing_input = _HEADER + b"." + _b64(orjson.dumps(payload))
    signature = _b64(hmac.digest(key.encode(), signing_input, "sha256"))
    return (signing_input + b"." + signature).decode(), claims


def read_access_token(key: str, token: str) -> AccessClaims:
    """The claims of a token this hub signed, still valid; :class:`TokenError` otherwise."""
    raw = token.encode("ascii", errors="replace")
    parts = raw.split(b".")
    if len(parts) != 3 or parts[0] != _HEADER or not parts[1] or not set(parts[1]) <= _B64_CHARS:
        raise TokenError("the access token is not valid")
    expected = _b64(hmac.digest(key.encode(), parts[0] + b"." + parts[1], "sha256"))
    if not hmac.compare_digest(expected, parts[2]):
        raise TokenError("the access token is not valid")
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4)))
        if not isinstance(payload, dict) or payload.get("iss") != ISSUER or payload.get("typ") != "access":
            raise ValueError("not an access token of this hub")
        expires = float(payload["exp"])
        issued = float(payload["iat"])
        user_id = uuid.UUID(str(payload["sub"]))
        token_id = str(payload["jti"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise TokenError("the access token is not valid") from None
    if expires <= time.time():
        raise TokenError("the access token has expired")
    family = payload.get("sid")
    return AccessClaims(
        user_id=user_id,
        username=str(payload.get("usr", "")),
        issued_at=issued,
        expires_at=expires,
        token_id=token_id,
        family_id=str(family) if family is not None else None,
        mfa=payload.get("mfa") is True,
    )


def new_refresh_token() -> tuple[str, str]:
    """An opaque refresh token and the SHA-256 under which it is stored."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="CityHub")


def totp_step(secret: str, code: str, *, last_step: int | None, at: float | None = None) -> int | None:
    """The time step ``code`` belongs to (this one, or one either side for clock drift), or None
    when it is wrong or was already used (a replayed code)."""
    code = code.strip()
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if at is None else at
    current = int(now // totp.interval)
    for step in (current, current - 1, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None
