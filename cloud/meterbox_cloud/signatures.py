"""RFC 9421 HTTP Message Signatures on enrollment requests, checked with ``http-message-signatures``.

What a request must carry: a signature with ``alg="ecdsa-p256-sha256"``, ``keyid`` = box id,
``created`` within five minutes of the vendor's clock, a ``nonce`` not seen before, covering
``@method``, ``@target-uri`` and ``content-digest`` (RFC 9530 sha-256 of the body).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.http import HttpRequest
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, InvalidSignature, algorithms

from .models import Box

WINDOW = dt.timedelta(minutes=5)
REQUIRED = ("@method", "@target-uri", "content-digest")


class SignatureRefused(Exception):
    """The request's signature is refused; str() is the one sentence the box logs."""


@dataclass(frozen=True)
class Request:
    """The view of a Django request the library reads: method, absolute URL, header field lines."""

    method: str
    url: str
    headers: dict[str, str]


class _BoxKeys(HTTPSignatureKeyResolver):
    """keyid -> the public key the factory registered for that box id."""

    def __init__(self) -> None:
        self.box: Box | None = None

    def resolve_public_key(self, key_id: str) -> Any:
        self.box = Box.objects.filter(pk=key_id).first()
        if self.box is None:
            return None
        return serialization.load_pem_public_key(self.box.public_key.encode())

    def resolve_private_key(self, key_id: str) -> Any:
        raise NotImplementedError("the vendor never signs as a box")


class _Verifier(HTTPMessageVerifier):
    max_clock_skew = WINDOW  # created may be up to 5 min ahead, and (with max_age=0) 5 min behind


def verify(request: HttpRequest, body: bytes) -> tuple[Box, str]:
    """Check the signature of an enrollment request; returns the signing box and the nonce.

    Raises :class:`SignatureRefused` with a sentence that says what to fix. Unknown box ids and
    wrong keys get the same sentence, so the API does not tell which box ids exist.
    """
    keys = _BoxKeys()
    verifier = _Verifier(signature_algorithm=algorithms.ECDSA_P256_SHA256, key_resolver=keys)
    message = Request(request.method or "POST", request.build_absolute_uri(), dict(request.headers.items()))
    if "signature" not in {k.lower() for k in message.headers}:
        raise SignatureRefused("the request is not signed; sign it with the box key (RFC 9421, "
                               "ecdsa-p256-sha256, keyid = box id)")
    try:
        (result,) = verifier.verify(message, max_age=dt.timedelta(0), require_components=REQUIRED, body=body)
    except InvalidSignature as err:
        text = str(err)
        if '"created"' in text or "maximum allowable age" in text:
            raise SignatureRefused("the signature's created time is more than 5 minutes from the vendor's "
                                   "clock (a replay, or the box's clock is wrong); set the clock by NTP "
                                   "and sign again") from None
        if "digest" in text.lower():
            raise SignatureRefused("the body does not match the signed Content-Digest (sha-256); "
                                   "sign the body that is sent") from None
        if "Required component" in text:
            raise SignatureRefused(f"the signature must cover {', '.join(REQUIRED)}") from None
        raise SignatureRefused("the signature does not verify with the key the vendor holds for this box id; "
                               "the vendor does not know this box's key (box.key and the factory's import "
                               "must come from the same mint)") from None
    except ValueError:
        raise SignatureRefused("the Signature or Signature-Input header is malformed") from None
    nonce = result.parameters.get("nonce")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise SignatureRefused("the signature has no nonce (8-128 characters); add a fresh random one")
    assert keys.box is not None
    return keys.box, nonce
