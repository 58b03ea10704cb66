"""Minting box identities: a box id, an EC P-256 key pair and a claim code per box.

The private key and the claim code go only into the box's own folder (for its image and its
label); the vendor gets ``vendor-import.json`` with the public key and a hash of the code, so
neither the factory's import file nor the vendor's database can be used to claim a box.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from .claimcode import hash_code, new_code
from .pem import public_key_pem, write_private_key

BOX_ID = re.compile(r"^MB-[0-9A-F]{6}$")
IMPORT_FILE = "vendor-import.json"


class MintError(Exception):
    """A box folder or import file is unusable; str() says which and what to do."""


@dataclass(frozen=True)
class Identity:
    """What a box knows about itself (``identity.json`` + ``box.key`` in its folder)."""

    box: str
    claim_code: str
    vendor: str
    folder: Path

    @property
    def key_path(self) -> Path:
        return self.folder / "box.key"

    @classmethod
    def load(cls, folder: Path) -> "Identity":
        """Read ``folder/identity.json``; a missing or foreign file is one clear error."""
        path = folder / "identity.json"
        try:
            data = json.loads(path.read_text())
            return cls(box=data["box"], claim_code=data["claim_code"], vendor=data["vendor"], folder=folder)
        except FileNotFoundError:
            raise MintError(f"{path} does not exist; give the folder of one minted box "
                            f"(meterbox-factory mint --out DIR makes DIR/MB-xxxxxx/)") from None
        except (ValueError, KeyError, TypeError) as err:
            raise MintError(f"{path} is not a meterbox identity ({err}); mint the box again") from None


def new_box_id(taken: set[str]) -> str:
    """A random ``MB-`` + 6 upper-case hex id not in ``taken``."""
    while True:
        box = f"MB-{secrets.randbelow(1 << 24):06X}"
        if box not in taken:
            return box


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def mint(out: Path, count: int, vendor: str) -> list[Identity]:
    """Mint ``count`` boxes into ``out``; append them to ``out/vendor-import.json``.

    Box ids are unique against every box already in ``out`` (mint a factory's boxes into one
    long-lived folder; the vendor import also refuses a duplicate id).
    """
    if count < 1:
        raise MintError(f"--count must be at least 1, not {count}")
    if not re.match(r"^https?://[^/\s?#]+", vendor):
        raise MintError(f"--vendor {vendor!r} is not a URL like https://vendor.example")
    vendor = vendor.rstrip("/")
    out.mkdir(parents=True, exist_ok=True)
    import_path = out / IMPORT_FILE
    try:
        records: list[dict[str, str]] = json.loads(import_path.read_text()) if import_path.exists() else []
    except ValueError as err:
        raise MintError(f"{import_path} is damaged ({err}); restore it or mint into a new folder") from None
    taken = {r["box"] for r in records} | {p.name for p in out.iterdir() if BOX_ID.match(p.name)}
    minted = []
    for _ in range(count):
        box = new_box_id(taken)
        taken.add(box)
        folder = out / box
        folder.mkdir(mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        write_private_key(folder / "box.key", key)
        code = new_code()
        identity = Identity(box=box, claim_code=code, vendor=vendor, folder=folder)
        (folder / "identity.json").write_text(
            json.dumps({"box": box, "claim_code": code, "vendor": vendor}, indent=2) + "\n")
        os.chmod(folder / "identity.json", 0o600)  # the claim code is the box's ownership token
        records.append({"box": box, "public_key": public_key_pem(key.public_key()), "claim_hash": hash_code(code)})
        minted.append(identity)
    _atomic_write(import_path, json.dumps(records, indent=2) + "\n")
    return minted
