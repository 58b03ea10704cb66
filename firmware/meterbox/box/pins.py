"""The panel's pin map: hw/pins.toml, with the site's overrides, checked against the 40-pin header."""

from __future__ import annotations

import glob
import importlib.util
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from meterbox.errors import ConfigError

PARTS = ("button", "green", "amber", "red")

#: BCM GPIO number -> physical pin on the Raspberry Pi's 40-pin header.
HEADER: dict[int, int] = {
    0: 27, 1: 28, 2: 3, 3: 5, 4: 7, 5: 29, 6: 31, 7: 26, 8: 24, 9: 21, 10: 19, 11: 23, 12: 32, 13: 33,
    14: 8, 15: 10, 16: 36, 17: 11, 18: 12, 19: 35, 20: 38, 21: 40, 22: 15, 23: 16, 24: 18, 25: 22,
    26: 37, 27: 13,
}
#: On the header, but taken by HATs: a PoE HAT reads its ID EEPROM over these two.
RESERVED = {0: "the HAT ID EEPROM (ID_SD)", 1: "the HAT ID EEPROM (ID_SC)"}


class PinMapError(ConfigError):
    """A pin map names a GPIO twice, or one that is not on the 40-pin header."""

    code = "config"


def data_file(name: str) -> Path:
    """A file of hw/ as shipped in the package (meterbox/box/data/, links to hw/ in the source tree)."""
    return Path(str(resources.files("meterbox.box") / "data" / name))


@dataclass(frozen=True)
class PinMap:
    """BCM GPIO numbers of the button and the three LEDs.

    Example::

        pins = PinMap.load(overrides={"button": 5}, where="/etc/meterbox/meterbox.toml [panel]")
    """

    button: int
    green: int
    amber: int
    red: int

    def gpio(self, part: str) -> int:
        """The BCM number of PART ("button", "green", "amber" or "red")."""
        return int(getattr(self, part))

    def header(self, part: str) -> int:
        """The physical header pin of PART, for wiring tables and messages."""
        return HEADER[self.gpio(part)]

    @classmethod
    def load(cls, data_file_path: Path | None = None, overrides: Mapping[str, int] | None = None,
             where: str = "the config") -> "PinMap":
        """The pin map of DATA_FILE (default: the packaged hw/pins.toml) with OVERRIDES (BCM numbers).

        WHERE names the overrides' place for messages (e.g. "meterbox.toml line 40 [panel]").
        Raises PinMapError naming the key for a GPIO not on the header or used twice.
        """
        path = data_file_path or data_file("pins.toml")
        pins = _read(path)
        source = {part: str(path) for part in pins}
        for part, gpio in (overrides or {}).items():
            if part not in PARTS:
                raise PinMapError(f"{where}: {part} is not a part of the panel; the parts are "
                                  f"{', '.join(PARTS)}")
            pins[part] = _gpio(gpio, part, where)
            source[part] = where
        missing = [p for p in PARTS if p not in pins]
        if missing:
            raise PinMapError(f"{path}: no GPIO for {', '.join(missing)}; add [{missing[0]}] gpio = N "
                              "(a BCM number, see hw/WIRING.md)")
        seen: dict[int, str] = {}
        for part in PARTS:
            gpio = pins[part]
            if gpio in seen:
                raise PinMapError(f"{source[part]}: {part} = GPIO {gpio} is already the {seen[gpio]}'s; "
                                  f"give each part its own GPIO (free ones: {_free(pins)})")
            seen[gpio] = part
        return cls(**pins)


def _read(path: Path) -> dict[str, int]:
    """Each part's gpio from the data file; its header number must be that GPIO's pin."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PinMapError(f"pin map {path} cannot be read ({err.strerror or err}); reinstall meterbox "
                          "or give [panel] pins in the config") from None
    except tomllib.TOMLDecodeError as err:
        raise PinMapError(f"pin map {path} is not valid TOML ({err}); fix that line") from None
    pins: dict[str, int] = {}
    for part, table in doc.items():
        where = f"{path} [{part}]"
        if part not in PARTS or not isinstance(table, dict):
            raise PinMapError(f"{where}: not a part of the panel; the parts are {', '.join(PARTS)}")
        gpio = _gpio(table.get("gpio"), f"{part}.gpio", where)
        header = table.get("header")
        if header is not None and header != HEADER[gpio]:
            raise PinMapError(f"{where}: GPIO {gpio} is header pin {HEADER[gpio]}, not {header!r}; "
                              "correct gpio or header")
        pins[part] = gpio
    return pins


def _gpio(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PinMapError(f"{where}: {key} = {value!r} is not a GPIO number; write the BCM number, "
                          "e.g. 17 (header pin 11)")
    if value not in HEADER:
        raise PinMapError(f"{where}: {key} = {value} is not on the 40-pin header (GPIO 2–27); "
                          "write the BCM number, not the header pin")
    if value in RESERVED:
        raise PinMapError(f"{where}: {key} = GPIO {value} is reserved for {RESERVED[value]}; "
                          "pick another GPIO (2–27)")
    return value


def _free(pins: Mapping[str, int]) -> str:
    used = set(pins.values())
    free = [g for g in sorted(HEADER) if g not in used and g not in RESERVED and g not in (2, 3, 14, 15)]
    return ", ".join(str(g) for g in free[:6]) + ", …"


def gpio_missing() -> str | None:
    """Why this machine has no usable GPIO, or None if it has (a gpiochip and a pin library)."""
    if os.environ.get("GPIOZERO_PIN_FACTORY"):
        return None  # the person chose a pin factory (e.g. mock, or a remote pigpio): gpiozero decides
    if not glob.glob("/dev/gpiochip*"):
        return "no GPIO on this machine (no /dev/gpiochip*)"
    if not any(importlib.util.find_spec(m) for m in ("lgpio", "RPi")):
        return ("no GPIO library: neither lgpio nor RPi.GPIO is installed "
                "(apt-get install python3-lgpio, and a venv with --system-site-packages)")
    return None
