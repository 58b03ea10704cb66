"""snmp.py against snmpsim: remembered table rows, and how they follow a changing printer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meterbox.config import Credential, Secret
from meterbox.printers.snmp import REWALK, SnmpClient, Target
from support.snmpsim import Simulator

SUPPLY_LEVEL = "1.3.6.1.2.1.43.11.1.1.9"
SUPPLY_DESCR = "1.3.6.1.2.1.43.11.1.1.6"


def walk_n(sim: Simulator, community: str, n: int) -> tuple[list[dict[str, dict[str, object]]], int]:
    """Walk the supplies columns N times with one client; the results and the PDUs sent."""
    async def go() -> tuple[list[dict[str, dict[str, object]]], int]:
        client = SnmpClient()
        target = Target(sim.host, sim.port, Credential(community=Secret(community)))
        try:
            return [await client.walk(target, [SUPPLY_DESCR, SUPPLY_LEVEL]) for _ in range(n)], client.requests
        finally:
            client.close()
    return asyncio.run(go())


def test_second_walk_is_one_get_of_the_known_rows(tmp_path: Path) -> None:
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim:
        results, requests = walk_n(sim, "jetdirect_m130nw", 3)
    assert results[0] == results[1] == results[2]
    assert set(results[0][SUPPLY_LEVEL]) == {"1.1", "1.5"}
    assert requests == 1 + 2  # the full walk fits one GETBULK; then one GET of the known rows each


def test_a_removed_row_is_noticed_at_once_and_a_new_one_within_rewalk(tmp_path: Path) -> None:
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim:
        path = sim.recording("jetdirect_m130nw")
        original = path.read_text(encoding="latin-1")
        without = "".join(line for line in original.splitlines(keepends=True)
                          if not line.startswith(("1.3.6.1.2.1.43.11.1.1.6.1.5|", "1.3.6.1.2.1.43.11.1.1.9.1.5|")))

        async def go() -> list[set[str]]:
            client = SnmpClient()
            target = Target(sim.host, sim.port, Credential(community=Secret("jetdirect_m130nw")))
            seen = [set((await client.walk(target, [SUPPLY_DESCR, SUPPLY_LEVEL]))[SUPPLY_LEVEL])]
            sim.replace_recording("jetdirect_m130nw", without)
            seen.append(set((await client.walk(target, [SUPPLY_DESCR, SUPPLY_LEVEL]))[SUPPLY_LEVEL]))
            sim.replace_recording("jetdirect_m130nw", original)
            for _ in range(REWALK):
                seen.append(set((await client.walk(target, [SUPPLY_DESCR, SUPPLY_LEVEL]))[SUPPLY_LEVEL]))
            client.close()
            return seen

        seen = asyncio.run(go())
    assert seen[0] == {"1.1", "1.5"}
    assert seen[1] == {"1.1"}             # the drum is gone: noticed on the very next poll
    assert seen[-1] == {"1.1", "1.5"}     # a new drum: found by the periodic full walk
