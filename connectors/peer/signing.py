"""Signed envelopes between hubs: a detached JWS (RFC 7515 appendix F), EdDSA with the hub's Ed25519 key, over
the envelope canonicalised with RFC 8785 (JCS). Anyone with the sender's public key can check it with standard
JOSE tools: put the JCS bytes back between the two dots and verify."""

from __future__ import annotations

import json
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

ALG = "EdDSA"


class BadSignature(Exception):
    pass


def canonical(envelope: dict[str, Any]) -> bytes:
    return rfc8785.dumps(envelope)


def sign(envelope: dict[str, Any], private_key_pem: bytes, key_id: str) -> str:
    """The detached compact JWS over the envelope's JCS bytes: `header..signature`."""
    key = jwk.JWK.from_pem(private_key_pem)
    token = jws.JWS(canonical(envelope))
    token.add_signature(key, alg=ALG, protected=json.dumps({"alg": ALG, "kid": key_id}))
    header, _, signature = token.serialize(compact=True).split(".")
    return f"{header}..{signature}"


def verify(envelope_bytes: bytes, detached: str, public_key_pem: bytes) -> dict[str, Any]:
    """The envelope, if `detached` signs exactly its JCS form with the key. Raises BadSignature."""
    try:
        envelope = json.loads(envelope_bytes)
    except (ValueError, RecursionError):
        raise BadSignature("the envelope is not JSON") from None
    if not isinstance(envelope, dict):
        raise BadSignature("the envelope is not an object")
    try:
        key = jwk.JWK.from_pem(public_key_pem)
        token = jws.JWS()
        token.deserialize(detached)
        token.verify(key, alg=ALG, detached_payload=canonical(envelope))
    except (JWException, ValueError, TypeError) as exc:
        raise BadSignature(f"signature does not verify ({type(exc).__name__})") from None
    return envelope


def new_keypair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 pair as the config wants it: (private key, PKCS#8 PEM; public key, SubjectPublicKeyInfo PEM)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return pem, private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
