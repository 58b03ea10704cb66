"""The pin map: hw/pins.toml as shipped, site overrides, and every way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterbox.box.pins import HEADER, PinMap, PinMapError, data_file

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_map_is_hw_pins_toml() -> None:
    assert data_file("pins.toml").read_text() == (ROOT / "hw" / "pins.toml").read_text()
    pins = PinMap.load()
    assert len({pins.button, pins.green, pins.amber, pins.red}) == 4
    assert pins.header("button") == HEADER[pins.button]


def test_override_moves_a_part() -> None:
    assert PinMap.load(overrides={"button": 5}).button == 5


@pytest.mark.parametrize(("overrides", "words"), [
    ({"amber": 22}, ["meterbox.toml line 40 [panel]", "amber = GPIO 22", "already the green"]),
    ({"red": 40}, ["red = 40", "not on the 40-pin header", "not the header pin"]),
    ({"red": 0}, ["GPIO 0", "HAT ID EEPROM"]),
    ({"red": "GPIO5"}, ["red = 'GPIO5'", "BCM number"]),
    ({"buzzer": 5}, ["buzzer is not a part", "button, green, amber, red"]),
])
def test_bad_override_names_key_and_place(overrides: dict[str, int], words: list[str]) -> None:
    with pytest.raises(PinMapError) as err:
        PinMap.load(overrides=overrides, where="meterbox.toml line 40 [panel]")
    for word in words:
        assert word in str(err.value)


def test_broken_data_file(tmp_path: Path) -> None:
    bad = tmp_path / "pins.toml"
    bad.write_text("[button]\ngpio = 17\nheader = 12\n")
    with pytest.raises(PinMapError, match=r"GPIO 17 is header pin 11, not 12"):
        PinMap.load(bad)
    bad.write_text("[button]\ngpio = 17\n[green]\ngpio = 17\n[amber]\ngpio=23\n[red]\ngpio=24\n")
    with pytest.raises(PinMapError, match=r"green = GPIO 17 is already the button's"):
        PinMap.load(bad)
    bad.write_text("[button]\ngpio = 17\n")
    with pytest.raises(PinMapError, match=r"no GPIO for green, amber, red"):
        PinMap.load(bad)
    bad.write_text("[button\n")
    with pytest.raises(PinMapError, match=r"not valid TOML"):
        PinMap.load(bad)
