"""Claim codes: random, typable from a label, and stored at the vendor only as a slow salted hash.

A code is 12 Crockford base32 symbols (60 random bits) in groups of four, ``7KQ2-MX9D-3FHT``.
Crockford's alphabet has no I, L, O or U, and reading it back forgives the usual slips
(lower case, ``O`` for ``0``, ``I``/``L`` for ``1``, missing or extra dashes and spaces).
The hash is in Django's ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` format, so the vendor
service checks it with Django's own ``check_password``; 60 random bits need no more than
the iterations below to make a leaked table useless, and keep minting a batch quick.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
SYMBOLS = 12  # 60 bits
GROUP = 4
ITERATIONS = 100_000
_SLIPS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    """A fresh random claim code, e.g. ``7KQ2-MX9D-3FHT``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(SYMBOLS))
    return "-".join(raw[i:i + GROUP] for i in range(0, SYMBOLS, GROUP))


def normalize(typed: str) -> str:
    """The canonical form of a code as a person typed it: upper case, no separators, slips fixed.

    Returns ``""`` for anything that cannot be a code, so it never matches a hash.
    """
    raw = "".join(ch for ch in typed.upper() if ch not in " -_.\t").translate(_SLIPS)
    if len(raw) != SYMBOLS or any(ch not in ALPHABET for ch in raw):
        return ""
    return "-".join(raw[i:i + GROUP] for i in range(0, SYMBOLS, GROUP))


def hash_code(code: str, *, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    """Django ``pbkdf2_sha256`` hash of the normalised code (what the vendor stores)."""
    salt = salt or secrets.token_urlsafe(16).replace("-", "a").replace("_", "b")
    digest = hashlib.pbkdf2_hmac("sha256", normalize(code).encode(), salt.encode(), iterations, dklen=32)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def check_code(typed: str, encoded: str) -> bool:
    """True when ``typed`` is the code behind ``encoded`` (constant-time compare)."""
    code = normalize(typed)
    try:
        algorithm, iterations, salt, _ = encoded.split("$", 3)
    except ValueError:
        return False
    if not code or algorithm != "pbkdf2_sha256":
        return False
    return hmac.compare_digest(hash_code(code, iterations=int(iterations), salt=salt), encoded)
