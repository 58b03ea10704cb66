"""The wire contract, checked on the box: every payload against the vendor's own JSON Schemas.

The broker acknowledges whatever it is given; the vendor's ingest then rejects a payload
outside the contract (a serial over 64 characters, a model over 128), and the box would
have marked it sent. So the store checks every payload before it is kept for sending,
against the same files as the vendor (cloud/contract/*.schema.json; the package carries
them through the symlink outbox/contract, a wheel as real files). Values are cleaned or cut
where that keeps their meaning (control characters and terminal escapes go, a model is cut
to 128 characters); a meter or supply that still does not fit is left out, and a message
that still does not fit is kept locally with the reason, never offered to the uplink.

fastjsonschema compiles each schema to a Python function once (about 5 ms each here, 12 us
per check); jsonschema, which the vendor uses, takes ten times as long to import and brings
a Rust extension, and the box's start-up time and RAM are budgets.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import fastjsonschema

from meterbox.logs import log_once
from meterbox.printers.reading import Device, Reading

log = logging.getLogger(__name__)

CONTRACT = Path(__file__).with_name("contract")   # -> cloud/contract (a symlink in the repository)
SCHEMAS = {"reading": "reading.v1.schema.json", "device": "device.v1.schema.json",
           "status": "status.v1.schema.json"}
# An ANSI/VT escape sequence (CSI, OSC, or a lone ESC and its next character), then any other control.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.?)|\x9b[0-?]*[ -/]*[@-~]", re.S)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Check = Callable[[Any], Any]


@functools.cache
def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACT / SCHEMAS[kind]).read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator(kind: str, part: str = "") -> Check:
    """The compiled check of a message KIND, or of the items of one of its arrays (PART)."""
    schema = _schema(kind)
    if part:
        schema = schema["properties"][part]["items"]
    return fastjsonschema.compile(schema)


def problem(kind: str, body: Any, part: str = "") -> str | None:
    """Why BODY is outside the contract (one line), or None if it fits."""
    try:
        _validator(kind, part)(body)
    except fastjsonschema.JsonSchemaValueException as err:
        return f"{err.message.replace('data.', '', 1).replace('data ', 'the message ', 1)}"[:200]
    return None


def printable(text: str | None) -> str | None:
    """TEXT without terminal escapes and control characters, whitespace collapsed."""
    if text is None:
        return None
    return " ".join(_CONTROL.sub(" ", _ESCAPE.sub("", text)).split()) or None


def _cut(text: str | None, limit: int) -> str | None:
    text = printable(text)
    if text is None or len(text) <= limit:
        return text
    head = text[:limit]
    word = head.rsplit(" ", 1)[0]    # a model cut at a word keeps its meaning better than mid-word
    return (word if len(word) >= limit // 2 else head).rstrip() or None


def fit_device(device: Device) -> Device:
    """Manufacturer and model as the contract takes them: printable, at most 64 and 128 characters.

    The serial is not changed here: it is the printer's key everywhere on the box, and a
    serial that does not fit is refused (see `problem`), never silently made another one.
    """
    props = _schema("device")["properties"]
    manufacturer = _cut(device.manufacturer, props["manufacturer"]["maxLength"])
    model = _cut(device.model, props["model"]["maxLength"])
    if (manufacturer, model) == (device.manufacturer, device.model):
        return device
    return replace(device, manufacturer=manufacturer, model=model)


def fit_reading(reading: Reading, box_id: str) -> tuple[dict[str, Any], str | None]:
    """The reading's payload with every meter and supply that fits; and why it is refused, if it is."""
    body: dict[str, Any] = reading.payload(box_id)
    if problem("reading", body) is not None:
        for part in ("meters", "supplies"):
            body[part] = [item for item in body[part] if _item_fits(reading.serial, part, item)]
    return body, problem("reading", body) or _serial_problem(reading.serial)


def _item_fits(serial: str, part: str, item: dict[str, Any]) -> bool:
    why = problem("reading", item, part)
    if why:
        name = (printable(str(item.get("name"))) or "?")[:64]
        log_once(log, ("contract", serial, part, name), "printer %s: %s %s is left out of its readings, the "
                 "wire contract does not take it (%s); logged once", (printable(serial) or "?")[:64],
                 part[:-1], name, why)
    return why is None


def _serial_problem(serial: str) -> str | None:
    """The schema takes any 1-64 characters; the box sends no control characters either."""
    return "serial contains control characters" if _CONTROL.search(serial) else None


def device_problem(body: dict[str, Any]) -> str | None:
    return problem("device", body) or _serial_problem(str(body.get("serial", "")))
