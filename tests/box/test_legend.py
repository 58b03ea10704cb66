"""hw/legend.toml is the one source: the README and hw/ carry its rendering, unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterbox.box.legend import Legend, LegendError, render_markdown
from meterbox.box.pins import data_file
from meterbox.errors import StoreError, TlsError, UplinkError

ROOT = Path(__file__).resolve().parents[2]
SECTION = re.compile(r"<!-- legend -->\n(.*?)<!-- /legend -->", re.S)


def test_packaged_legend_is_hw_legend_toml() -> None:
    assert data_file("legend.toml").read_text() == (ROOT / "hw" / "legend.toml").read_text()


@pytest.mark.parametrize("doc", ["README.md", "hw/WIRING.md"])
def test_docs_carry_the_rendered_legend(doc: str) -> None:
    """Regenerate with: python -m meterbox.box.legend (prints the section)."""
    found = SECTION.search((ROOT / doc).read_text())
    if found is None:
        pytest.fail(f"{doc} has no <!-- legend --> … <!-- /legend --> section")
    assert found.group(1) == render_markdown(Legend.load())


def test_error_classes_map_to_fault_codes() -> None:
    legend = Legend.load()
    for err, fault in ((TlsError, "tls"), (UplinkError, "vendor_unreachable"), (StoreError, "storage")):
        found = legend.fault_for_code(err.code)
        assert found is not None and found.name == fault


def test_inconsistent_legend_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "hw" / "legend.toml").read_text()
    bad = tmp_path / "legend.toml"
    bad.write_text(text.replace("blinks = 2", "blinks = 1"))
    with pytest.raises(LegendError, match="own blink count"):
        Legend.load(bad)
    bad.write_text(text.replace('name = "starting"', 'name = "sleeping"'))
    with pytest.raises(LegendError, match="not one the firmware knows"):
        Legend.load(bad)


def test_wheel_carries_the_hw_files_not_links(tmp_path: Path) -> None:
    """meterbox/box/data/*.toml are links to hw/ in the tree; a wheel must carry the files themselves."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = zipfile.ZipFile(next(tmp_path.glob("meterbox-*.whl")))
    for name in ("pins.toml", "legend.toml"):
        assert wheel.read(f"meterbox/box/data/{name}") == (ROOT / "hw" / name).read_bytes()
