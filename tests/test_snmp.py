"""snmp.py against snmpsim: remembered table rows, and how they follow a changing printer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meterbox.config import Credential, Secret
from meterbox.printers.columns import REWALK
from meterbox.printers.snmp import SnmpClient, Target
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


SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SERIAL = "1.3.6.1.2.1.43.5.1.1.17.1"


def test_steady_state_is_one_get_of_scalars_and_changing_cells_static_cells_are_kept(tmp_path: Path) -> None:
    """P2: one GET carries the scalars and the remembered rows' changing cells; descriptions are not asked again."""
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim:
        async def go() -> list[tuple[int, dict[str, object], dict[str, dict[str, object]]]]:
            client = SnmpClient()
            target = Target(sim.host, sim.port, Credential(community=Secret("jetdirect_m130nw")))
            out = []
            try:
                for i in range(3):
                    if i == 2:
                        sim.set_values("jetdirect_m130nw", {f"{SUPPLY_LEVEL}.1.1": 27, f"{SUPPLY_DESCR}.1.1": "New"})
                    before = client.requests
                    scalars, columns = await client.read(target, [SYS_DESCR, SERIAL], [SUPPLY_DESCR, SUPPLY_LEVEL],
                                                         static=[SUPPLY_DESCR])
                    out.append((client.requests - before, scalars, columns))
            finally:
                client.close()
            return out
        polls = asyncio.run(go())
    assert [n for n, _, _ in polls] == [2, 1, 1]          # first: GET beside GETBULK; then one GET each
    assert polls[1][1] == polls[0][1] and set(polls[1][1]) == {SYS_DESCR, SERIAL}
    assert polls[2][2][SUPPLY_LEVEL]["1.1"] == 27                       # a changing cell: read every poll
    assert polls[2][2][SUPPLY_DESCR]["1.1"] == polls[0][2][SUPPLY_DESCR]["1.1"] != b"New"  # kept from the walk


def test_the_rewalk_walks_the_changing_columns_and_gets_static_cells_of_new_rows_only(tmp_path: Path) -> None:
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim:
        path = sim.recording("jetdirect_m130nw")
        original = path.read_text(encoding="latin-1")
        without = "".join(line for line in original.splitlines(keepends=True)
                          if not line.startswith((f"{SUPPLY_DESCR}.1.5|", f"{SUPPLY_LEVEL}.1.5|")))
        sim.replace_recording("jetdirect_m130nw", without)

        async def go() -> tuple[list[dict[str, dict[str, object]]], int]:
            client = SnmpClient()
            target = Target(sim.host, sim.port, Credential(community=Secret("jetdirect_m130nw")))
            seen = []
            try:
                for i in range(REWALK):
                    if i == 1:
                        sim.replace_recording("jetdirect_m130nw", original)     # a drum is put in
                    before = client.requests
                    seen.append((await client.read(target, [], [SUPPLY_DESCR, SUPPLY_LEVEL], [SUPPLY_DESCR]))[1])
            finally:
                client.close()
            return seen, client.requests - before
        seen, last = asyncio.run(go())
    assert set(seen[0][SUPPLY_LEVEL]) == {"1.1"} and set(seen[-2][SUPPLY_LEVEL]) == {"1.1"}
    assert set(seen[-1][SUPPLY_LEVEL]) == {"1.1", "1.5"} and set(seen[-1][SUPPLY_DESCR]) == {"1.1", "1.5"}
    assert seen[-1][SUPPLY_DESCR]["1.5"] == b"Imaging Drum HP CF219A"
    assert last == 2                       # the REWALK-th poll: GETBULK of the level column, GET of the new row's description


def test_many_printers_read_at_once_share_one_socket_and_close_leaves_none(printers: Simulator) -> None:
    """A poll round starts every printer at once: they must share the client's one socket, not each
    open one (a box with hourly sweeps ran out of file descriptors in two days that way)."""
    import os

    def sockets() -> set[str]:
        """This process's sockets by inode: others' (a paho client of an earlier test, closed by the
        garbage collector meanwhile) may go at any moment, so sets are compared, not counts."""
        found = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                link = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:               # the listing's own descriptor, gone already
                continue
            if link.startswith("socket:"):
                found.add(link)
        return found

    async def go() -> tuple[set[str], set[str], set[str]]:
        before = sockets()
        client = SnmpClient()
        target = Target(printers.host, printers.port, Credential(community=Secret("jetdirect_m130nw")))
        answers = await asyncio.gather(*(client.get(target, ["1.3.6.1.2.1.1.2.0"]) for _ in range(20)))
        during = sockets()
        client.close()
        await asyncio.sleep(0)            # the transport closes on the next loop turn
        assert all(answers), answers
        return before, during, sockets()
    before, during, after = asyncio.run(go())
    opened = during - before
    assert len(opened) == 1, f"{len(opened)} sockets for 20 requests at once"
    assert not opened & after, "the client's socket outlived close()"
