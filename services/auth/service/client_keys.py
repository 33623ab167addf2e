"""Public keys registered for private_key_jwt, and the strict check of a client assertion (RFC 7523 §3, RFC 8725).

Each key is pinned to one algorithm when it is registered (EdDSA for an
Ed25519 OKP key, ES256 for a P-256 EC key, RS256 for an RSA key of 2048 bits
or more), and an assertion is verified only with that algorithm: `none`, HMAC
(which would turn a public key into a shared secret) and any algorithm the key
was not registered for are refused before any signature is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kit.errors import InvalidArgument

ALLOWED_ALGORITHMS = ("EdDSA", "ES256", "RS256")
MIN_RSA_BITS = 2048
# Private members of a JWK: a key carrying any of them is refused, never stored.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# An assertion may live at most this long: its jti is kept until it expires.
MAX_ASSERTION_LIFETIME_SECONDS = 600
ASSERTION_LEEWAY_SECONDS = 5
MAX_JTI_LENGTH = 200


@dataclass(frozen=True)
class RegisteredKey:
    kid: str
    algorithm: str
    jwk: dict[str, str]


def registered_key(field: str, jwk: dict[str, Any]) -> RegisteredKey:
    """The public JWK to store and its algorithm; INVALID_ARGUMENT naming what is wrong."""
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise InvalidArgument(field, "is a private or symmetric key; register the public key only")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid.strip() or len(kid) > 200:
        raise InvalidArgument(field, "needs a kid of 1 to 200 characters")
    kty = jwk.get("kty")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=_algorithm_of(jwk)).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        raise InvalidArgument(field, "is not a valid public JWK (OKP Ed25519, EC P-256 or RSA)") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = "EdDSA"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidArgument(field, f"an RSA key must have at least {MIN_RSA_BITS} bits")
        algorithm = "RS256"
    else:
        raise InvalidArgument(field, f"key type {str(kty)[:20]!r} is not allowed (OKP Ed25519, EC P-256, RSA)")
    declared = jwk.get("alg")
    if declared is not None and declared != algorithm:
        raise InvalidArgument(field, f"alg must be {algorithm} for this key")
    public = {name: str(value) for name, value in jwk.items() if name in ("kty", "crv", "x", "y", "n", "e", "kid")}
    return RegisteredKey(kid=kid, algorithm=algorithm, jwk={**public, "alg": algorithm, "use": "sig"})


def _algorithm_of(jwk: dict[str, Any]) -> str:
    return {"OKP": "EdDSA", "EC": "ES256", "RSA": "RS256"}.get(str(jwk.get("kty")), "none-such")


def assertion_header(assertion: str) -> dict[str, Any]:
    """The unverified header, or ValueError; its alg must be one we allow."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise ValueError("client_assertion is not a JWT") from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise ValueError("client_assertion's algorithm is not allowed")
    return header


@dataclass(frozen=True)
class CheckedAssertion:
    jti: str
    expires_at: datetime


def check_assertion(
    assertion: str, key: RegisteredKey, *, client_id: str, audience: str, now: datetime
) -> CheckedAssertion:
    """Verifies the signature with the key's own algorithm and every claim RFC 7523 §3 requires; ValueError if not."""
    try:
        claims = jwt.decode(
            assertion,
            jwt.PyJWK(key.jwk, algorithm=key.algorithm).key,
            algorithms=[key.algorithm],
            audience=audience,
            issuer=client_id,
            leeway=ASSERTION_LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "jti"], "strict_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise ValueError("client_assertion has expired") from None
    except jwt.InvalidAudienceError:
        raise ValueError("client_assertion's aud is not this token endpoint") from None
    except jwt.InvalidTokenError:
        raise ValueError("client_assertion is invalid") from None
    if claims["sub"] != client_id:
        raise ValueError("client_assertion's sub must be the client_id")
    jti, exp = claims["jti"], claims["exp"]
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise ValueError(f"client_assertion's jti must be a string of 1 to {MAX_JTI_LENGTH} characters")
    if not isinstance(exp, int) or exp > now.timestamp() + MAX_ASSERTION_LIFETIME_SECONDS:
        raise ValueError(f"client_assertion's exp must be within {MAX_ASSERTION_LIFETIME_SECONDS} s")
    return CheckedAssertion(jti=jti, expires_at=datetime.fromtimestamp(exp + ASSERTION_LEEWAY_SECONDS, UTC))
