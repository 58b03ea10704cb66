"""The wire contract (cloud/contract/*.json) as validators: the single source of what a box may send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

CONTRACT = Path(__file__).resolve().parent.parent / "contract"
KINDS = {"readings": "reading", "devices": "device", "status": "status"}
SCHEMAS = {kind: json.loads((CONTRACT / f"{name}.v1.schema.json").read_text()) for kind, name in KINDS.items()}
# Built once: jsonschema.validate() would check the schema itself on every message.
VALIDATORS = {kind: jsonschema.Draft202012Validator(schema) for kind, schema in SCHEMAS.items()}


class ContractError(ValueError):
    """A message outside the wire contract; str() is one line for the log."""


def check(topic: str, payload: bytes) -> tuple[str, str, dict[str, Any]]:
    """``(box, kind, body)`` of a message on ``meterbox/v1/<box>/<kind>``, or :class:`ContractError`."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[:2] != ["meterbox", "v1"] or parts[3] not in VALIDATORS:
        raise ContractError(f"topic {topic} is not meterbox/v1/<box>/(readings|devices|status)")
    box, kind = parts[2], parts[3]
    try:
        body = json.loads(payload)
    except ValueError as err:
        raise ContractError(f"not JSON: {err}") from None
    error = jsonschema.exceptions.best_match(VALIDATORS[kind].iter_errors(body))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the message"
        raise ContractError(f"{where}: {error.message}"[:290])
    if body["box"] != box:
        raise ContractError(f"box {body['box']} published under {box}")
    return box, kind, body
