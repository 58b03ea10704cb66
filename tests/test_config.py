"""meterbox.config: every problem reported at once, with its line and a fix; secrets never printed."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import meterbox
from meterbox.config import (
    TABLE_KEYS,
    Config,
    ConfigProblems,
    Credential,
    StoreConfig,
    load,
    parse_duration,
    parse_host,
    parse_size,
)
from meterbox.errors import ConfigError

EXAMPLE = Path(meterbox.__file__).parent / "meterbox.example.toml"
BOX = '[box]\nid = "MB-7F3A9C"\n'
MARK = "# <-"        # marks the line a problem must be reported on


def write(tmp_path: Path, text: str, name: str = "meterbox.toml") -> Path:
    """A config file with TEXT (dedented), so each test states its whole file."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> ConfigProblems:
    """The error load() raises for TEXT; fails the test if the file loads."""
    with pytest.raises(ConfigProblems) as info:
        load(write(tmp_path, text))
    return info.value


def marked_line(text: str) -> int:
    """The number of the line carrying MARK, counted independently of the code under test."""
    lines = textwrap.dedent(text).splitlines()
    return next(number for number, line in enumerate(lines, start=1) if line.rstrip().endswith(MARK))


# ------------------------------------------------------------------ the example file

def test_example_loads_with_documented_defaults() -> None:
    config = load(EXAMPLE)
    assert config.box_id == "MB-7F3A9C"
    assert config.poll.interval == 900.0 and config.poll.timeout == 2.0
    assert config.store.max_bytes == StoreConfig().max_bytes
    assert [p.port for p in config.printers] == [161, 161]
    assert config.printers[1].host == "2001:db8::10"
    assert config.printers[1].credential.describe() == "v3 user meterbox (authPriv)"
    assert config.uplink.ca_file == EXAMPLE.parent.absolute() / "certs" / "vendor-ca.pem"


@pytest.mark.parametrize("table", [name for name in TABLE_KEYS if name])
def test_example_sets_every_key(table: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    header = f"[[{table}]]" if table in ("printers", "credentials") else f"[{table}]"
    assert f"\n{header}\n" in text
    for key in TABLE_KEYS[table]:
        assert f"\n{key} = " in text, f"{key} of {header} is not in the example"


# ------------------------------------------------------------------ durations and sizes

@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0),
    ("1.5s", 1.5), (" 15m ", 900.0),
])
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [
    ("512B", 512), ("1KB", 1000), ("64MB", 64_000_000), ("2GB", 2_000_000_000),
    ("1KiB", 1024), ("64MiB", 64 * 2**20), ("1GiB", 2**30), ("64mib", 64 * 2**20), ("0.5GiB", 2**29),
])
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_durations_and_sizes_reach_the_config(tmp_path: Path) -> None:
    config = load(write(tmp_path, BOX + '[poll]\ninterval = "5m"\ntimeout = "500ms"\n'
                                       '[uplink]\nhost = "b.example.com"\nkeepalive = "1h"\n'
                                       '[store]\nmax_size = "1GiB"\n'))
    assert (config.poll.interval, config.poll.timeout) == (300.0, 0.5)
    assert config.uplink.keepalive == 3600.0
    assert config.store.max_bytes == 2**30


@pytest.mark.parametrize(("table", "key", "value", "message"), [
    ("poll", "interval", "300",
     'poll.interval = 300: a duration needs a unit (ms, s, m, h or d); did you mean "300s"?'),
    ("poll", "timeout", '"2"', 'poll.timeout = "2": a duration needs a unit (ms, s, m, h or d); did you mean "2s"?'),
    ("poll", "timeout", "1.5", 'did you mean "1.5s"?'),
    ("uplink", "keepalive", '"5 minutes"', 'expected a duration such as "500ms", "2s", "15m", "1h" or "1d"'),
    ("poll", "interval", '"0s"', "poll.interval = \"0s\": must be longer than 0"),
    ("poll", "interval", "true", "poll.interval = true: expected a duration"),
    ("store", "max_size", "64", 'store.max_size = 64: a size needs a unit (B, KB, MB, GB, KiB, MiB or GiB); '
                                'did you mean "64MB"?'),
    ("store", "max_size", "67108864", 'did you mean "64MiB"?'),
    ("store", "max_size", '"64XB"', 'store.max_size = "64XB": expected a size such as "64MB" or "1GiB"'),
])
def test_bad_durations_and_sizes_are_refused_with_a_fix(
        tmp_path: Path, table: str, key: str, value: str, message: str) -> None:
    host = 'host = "b.example.com"\n' if table == "uplink" else ""
    text = f'{BOX}[{table}]\n{host}{key} = {value}  {MARK}\n'
    error = problems(tmp_path, text)
    assert len(error.problems) == 1
    assert f"line {marked_line(text)}  " in str(error)
    assert message in str(error)


# ------------------------------------------------------------------ unknown keys and wrong types

@pytest.mark.parametrize(("text", "message"), [
    (BOX + '[poll]\ninterval = "5m"\nintervall = "15m"  # <-\n',
     'poll.intervall: unknown key; did you mean "interval"?'),
    (BOX + '[[printers]]\nhost = "192.0.2.10"\n\n[[printers]]\nhost = "192.0.2.11"\ncomunity = "x"  # <-\n',
     'printers[2].comunity: unknown key; did you mean "community"?'),
    (BOX + '[uplnk]  # <-\nhost = "b.example.com"\n',
     'uplnk: unknown table; did you mean "uplink"?'),
    ('interval = "5m"  # <-\n' + BOX,
     "interval: not a top-level key; move it under [poll]"),
    (BOX + 'state_dirr = "/tmp"  # <-\n',
     'box.state_dirr: unknown key; did you mean "state_dir"?'),
    (BOX + '[store]\ncolour = "blue"  # <-\n',
     "store.colour: unknown key"),
])
def test_unknown_key_names_its_line_and_the_closest_key(tmp_path: Path, text: str, message: str) -> None:
    error = problems(tmp_path, text)
    assert [str(p) for p in error.problems] == [f"line {marked_line(text)}  {message}"]


@pytest.mark.parametrize(("text", "message"), [
    (BOX + '[uplink]\nhost = "b.example.com"\nport = "8883x"  # <-\n',
     'uplink.port = "8883x": expected a whole number 1–65535'),
    (BOX + '[uplink]\nhost = "b.example.com"\nport = 70000  # <-\n',
     "uplink.port = 70000: expected a whole number 1–65535"),
    (BOX + '[poll]\nretries = "1"  # <-\n',
     'poll.retries = "1": expected a whole number 0–10; write it without quotes'),
    (BOX + "[poll]\nconcurrency = true  # <-\n",
     "poll.concurrency = true: expected a whole number 1–256"),
    (BOX + '[uplink]\nhost = "b.example.com"\nserver_name = 5  # <-\n',
     "uplink.server_name = 5: expected a string in quotes"),
    (BOX + '[[credentials]]\nversion = 3  # <-\n',
     'credentials[1].version = 3: expected a string, one of "1", "2c", "3"; did you mean "3"?'),
    (BOX + 'log_level = "warn"  # <-\n',
     'box.log_level = "warn": expected one of "debug", "info", "warning", "error"; did you mean "warning"?'),
    ('[box]\nid = "mb-7f3a9c"  # <-\n',
     'box.id = "mb-7f3a9c": expected "MB-" and 6 hex digits as on the label, such as "MB-7F3A9C"; '
     'did you mean "MB-7F3A9C"?'),
    (BOX + '[printers]  # <-\nhost = "192.0.2.10"\n',
     "printers: expected [[printers]] entries (double brackets), one per printer"),
    ('poll = 5  # <-\n' + BOX,
     "poll: expected a table; write it as a [poll] header with its keys below"),
])
def test_wrong_type_names_the_expected_type_and_line(tmp_path: Path, text: str, message: str) -> None:
    error = problems(tmp_path, text)
    assert [str(p) for p in error.problems] == [f"line {marked_line(text)}  {message}"]


def test_missing_required_keys_say_what_to_add(tmp_path: Path) -> None:
    error = problems(tmp_path, '[poll]\ninterval = "5m"\n[uplink]\nport = 8883\n')
    assert [str(p) for p in error.problems] == [
        'line 3  uplink.host: missing; add host = "broker.example.com"',
        'box.id: missing; add id = "MB-…" under [box], as printed on the label, or identity = the folder of its factory identity',
    ]


def test_line_is_omitted_when_it_cannot_be_found(tmp_path: Path) -> None:
    error = problems(tmp_path, 'printers = [{ host = "bad host" }]\n' + BOX)
    assert [p.line for p in error.problems] == [None]
    assert str(error).splitlines()[1].startswith('  printers[1].host = "bad host": expected an address')


# ------------------------------------------------------------------ all problems at once

STYLE_EXAMPLE = """\
# meterbox.toml for the front office
[box]
id = "MB-7F3A9C"
state_dir = "/var/lib/meterbox"
log_level = "info"

[uplink]
host = "broker.example.com"
ca_file = "/etc/meterbox/ca.pem"
cert_file = "/etc/meterbox/box.pem"
key_file = "/etc/meterbox/box.key"
port = "8883x"
keepalive = "60s"

[store]
max_size = "64MB"

[poll]
intervall = "15m"
"""


def test_several_problems_are_reported_together_in_line_order(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, STYLE_EXAMPLE))
    assert str(info.value) == (
        f"{tmp_path / 'meterbox.toml'} has 2 problems; nothing was changed:\n"
        '  line 12  uplink.port = "8883x": expected a whole number 1–65535\n'
        '  line 19  poll.intervall: unknown key; did you mean "interval"?'
    )


def test_problems_in_every_section_are_counted(tmp_path: Path) -> None:
    error = problems(tmp_path, """\
        [box]
        id = "MB-7F3A9"
        [poll]
        interval = 300
        [[printers]]
        host = "192.0.2.300"
        [[credentials]]
        version = "3"
        [uplink]
        host = "b.example.com"
        in_flight = 0
        [store]
        max_size = "lots"
        """)
    lines = str(error).splitlines()
    assert lines[0].endswith("has 6 problems; nothing was changed:")
    assert [int(line.split()[1]) for line in lines[1:]] == [2, 4, 6, 7, 11, 13]


def test_one_problem_is_singular(tmp_path: Path) -> None:
    assert "has 1 problem; nothing" in str(problems(tmp_path, BOX + "[poll]\nretries = 99\n"))


# ------------------------------------------------------------------ file-level errors

def test_syntax_error_is_one_config_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, BOX + '[poll]\ninterval = "5m\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert not isinstance(info.value, ConfigProblems)
    message = str(info.value)
    assert message.startswith(f"{path} is not valid TOML: ")
    assert "line 4" in message


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda tmp: tmp / "absent.toml", "no such file; create it (see meterbox.example.toml)"),
    (lambda tmp: tmp, "cannot read it"),
])
def test_unreadable_file_names_the_path_and_what_to_do(
        tmp_path: Path, make: Callable[[Path], Path], fragment: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(str(path))
    assert fragment in str(info.value)


# ------------------------------------------------------------------ secrets

SECRET = "Hunter2-s3cret"


@pytest.mark.parametrize("entry", [
    f'version = "3"\nuser = "u"\nauth_key = "{SECRET[:6]}"',                     # too short
    f'version = "3"\nuser = "u"\npriv_key = "{SECRET}"',                          # priv without auth
    f'version = "3"\nuser = "u"\ncommunity = "{SECRET}"',                          # community on v3
    f'version = "2c"\nauth_key = "{SECRET}"',                                    # v3 key on v2c
    f'comunity = "{SECRET}"',                                                    # typo'd key
    f'version = "9"\ncommunity = "{SECRET}"',                                    # bad version
])
def test_secrets_never_appear_in_messages(tmp_path: Path, entry: str) -> None:
    error = problems(tmp_path, f"{BOX}[[credentials]]\n{entry}\n")
    assert SECRET[:6] not in str(error)
    assert SECRET[:6] not in repr(error.problems)


def test_bad_secret_value_is_echoed_as_placeholder(tmp_path: Path) -> None:
    error = problems(tmp_path, f'{BOX}[[credentials]]\nversion = "3"\nuser = "u"\nauth_key = "{SECRET[:6]}"\n')
    assert str(error.problems[0]) == (
        "line 6  credentials[1].auth_key = <secret>: too short; SNMPv3 keys need at least 8 characters")


def test_secrets_never_appear_in_repr_of_the_loaded_config(tmp_path: Path) -> None:
    config = load(write(tmp_path, f'{BOX}[[credentials]]\ncommunity = "{SECRET}-c"\n'
                                  f'[[credentials]]\nversion = "3"\nuser = "u"\n'
                                  f'auth_key = "{SECRET}-a"\npriv_key = "{SECRET}-p"\n'))
    shown = repr(config) + str(config) + f"{config.credentials[1].auth_key}"
    assert SECRET not in shown
    assert shown.count("<secret>") >= 3
    assert config.credentials[0].community.reveal() == f"{SECRET}-c"
    assert config.credentials[1].priv_key is not None and config.credentials[1].priv_key.reveal() == f"{SECRET}-p"


# ------------------------------------------------------------------ paths

def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, BOX + 'state_dir = "state"\n[uplink]\nhost = "b.example.com"\n'
                          'ca_file = "certs/ca.pem"\ncert_file = "../box.pem"\nkey_file = "/etc/meterbox/box.key"\n',
          name="etc/meterbox.toml")
    monkeypatch.chdir(tmp_path)
    config = load(Path("etc/meterbox.toml"))
    assert config.uplink.ca_file == tmp_path / "etc" / "certs" / "ca.pem"
    assert config.uplink.cert_file == tmp_path / "etc" / ".." / "box.pem"
    assert config.uplink.key_file == Path("/etc/meterbox/box.key")
    assert config.state_dir == tmp_path / "etc" / "state"
    assert config.path == Path("etc/meterbox.toml")


def test_defaults_when_only_the_box_id_is_given(tmp_path: Path) -> None:
    config = load(write(tmp_path, BOX))
    assert config == Config(box_id="MB-7F3A9C", state_dir=Path("/var/lib/meterbox"),
                            path=tmp_path / "meterbox.toml")


# ------------------------------------------------------------------ credentials

@pytest.mark.parametrize(("entry", "message"), [
    ('version = "3"\nauth_key = "authkey-123"',
     'credentials[1].user: missing; add user = "..." (the SNMPv3 user name)'),
    ('version = "3"\nuser = "u"\nauth_protocol = "SHA1"\nauth_key = "authkey-123"',
     'credentials[1].auth_protocol = "SHA1": expected one of "SHA", "SHA224", "SHA256", "SHA384", "SHA512", '
     '"MD5"; did you mean "SHA"?'),
    ('version = "3"\nuser = "u"\nauth_key = "authkey-123"\npriv_protocol = "3DES"\npriv_key = "privkey-123"',
     'credentials[1].priv_protocol = "3DES": expected one of "AES", "AES128", "AES192", "AES256", "DES"; '
     'did you mean "DES"?'),
    ('version = "3"\nuser = "u"\nauth_key = "authkey-123"\npriv_key = "1234567"',
     "credentials[1].priv_key = <secret>: too short; SNMPv3 keys need at least 8 characters"),
    ('version = "3"\nuser = "u"\npriv_key = "privkey-123"',
     "credentials[1].priv_key: needs auth_key too (SNMPv3 has no privacy without authentication); add auth_key"),
    ('version = "3"\nuser = "u"\ncommunity = "public"',
     'credentials[1].community: only used with version "1" or "2c"; SNMPv3 uses user, auth_key and priv_key'),
    ('user = "u"',
     'credentials[1].user: only used with version = "3"; add version = "3" or remove user'),
    ('version = "2c"\ncommunity = ""',
     "credentials[1].community = <secret>: must not be empty"),
    ('version = "2"',
     'credentials[1].version = "2": expected one of "1", "2c", "3"; did you mean "2c"?'),
])
def test_invalid_credentials_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    error = problems(tmp_path, f"{BOX}[[credentials]]\n{entry}\n")
    assert [p.subject + ": " + p.message for p in error.problems] == [message]


@pytest.mark.parametrize(("entry", "expected"), [
    ("", Credential()),
    ('version = "1"\ncommunity = "private"', Credential(version="1", community=Credential().community)),
    ('version = "3"\nuser = "u"', Credential(version="3", user="u")),
    ('version = "3"\nuser = "u"\nauth_protocol = "sha256"\nauth_key = "authkey-123"',
     Credential(version="3", user="u", auth_protocol="SHA256")),
    ('version = "3"\nuser = "u"\nauth_key = "authkey-123"\npriv_protocol = "AES128"\npriv_key = "privkey-123"\n'
     'context = "c1"', Credential(version="3", user="u", priv_protocol="AES", context="c1")),
])
def test_valid_credentials_load(tmp_path: Path, entry: str, expected: Credential) -> None:
    [credential] = load(write(tmp_path, f"{BOX}[[credentials]]\n{entry}\n")).credentials
    assert (credential.version, credential.user, credential.auth_protocol, credential.priv_protocol,
            credential.context) == (expected.version, expected.user, expected.auth_protocol,
                                    expected.priv_protocol, expected.context)
    assert credential.community.reveal() == ("private" if 'community = "private"' in entry else "public")
    assert (credential.auth_key is not None) == ("auth_key" in entry)
    assert (credential.priv_key is not None) == ("priv_key" in entry)


# ------------------------------------------------------------------ printer addresses

@pytest.mark.parametrize(("host", "port_key", "expected"), [
    ("192.0.2.10", "", ("192.0.2.10", 161)),
    ("192.0.2.10:1161", "", ("192.0.2.10", 1161)),
    ("192.0.2.10", "port = 1162", ("192.0.2.10", 1162)),
    ("192.0.2.10:1161", "port = 1161", ("192.0.2.10", 1161)),
    ("[2001:db8::10]:162", "", ("2001:db8::10", 162)),
    ("2001:db8::10", "", ("2001:db8::10", 161)),
    ("printer-3.office.example.com", "", ("printer-3.office.example.com", 161)),
])
def test_printer_addresses(tmp_path: Path, host: str, port_key: str, expected: tuple[str, int]) -> None:
    [printer] = load(write(tmp_path, f'{BOX}[[printers]]\nhost = "{host}"\n{port_key}\n')).printers
    assert (printer.host, printer.port) == expected


@pytest.mark.parametrize("host", ["192.0.2.300", "[printer]:161", "192.0.2.10:99999", "bad host", "-x.example", ""])
def test_bad_printer_addresses(host: str) -> None:
    with pytest.raises(ValueError):
        parse_host(host)


def test_same_printer_twice_and_conflicting_ports(tmp_path: Path) -> None:
    error = problems(tmp_path, BOX + '[[printers]]\nhost = "192.0.2.10"\n[[printers]]\nhost = "192.0.2.10:161"\n'
                                     '[[printers]]\nhost = "192.0.2.11:1161"\nport = 161\n')
    assert [str(p) for p in error.problems] == [
        'line 6  printers[2].host = "192.0.2.10:161": same printer as printers[1]; remove one of them',
        "line 9  printers[3].port = 161: differs from the port in host (1161); keep only one",
    ]


def test_enroll_defaults_to_every_printer_and_a_list_picks(tmp_path: Path) -> None:
    base = '[box]\nid = "MB-7F3A9C"\n'
    assert load(write(tmp_path, base)).enroll.allows("ANY123")
    picked = load(write(tmp_path, base + '[enroll]\nserials = ["VNCRC48198"]\n')).enroll
    assert picked.allows("VNCRC48198") and not picked.allows("X3B8022793")
    err = problems(tmp_path, base + "[enroll]\nserials = [42]\n")
    assert "enroll.serials" in str(err) and "serial number in quotes" in str(err)


def test_line_numbers_survive_multiline_arrays_strings_and_dotted_keys(tmp_path: Path) -> None:
    """A key named inside a string or an array is not a key; dotted keys find their table's line."""
    path = write(tmp_path, '''uplink.port = "8883x"
uplink.host = "broker.example.com"

[box]
id = "MB-7F3A9C"
state_dir = """
log_level = "shout"
"""
log_level = "shout"

[discovery]
ranges = [
  "192.0.2.0/24",   # rate = 1 in a comment
  "198.51.100.10-50",
]
hosts = ["a.example"]  # rate = 2
rate = "fast"
''')
    with pytest.raises(ConfigProblems) as err:
        load(path)
    by_subject = {p.subject.split(" =")[0]: p.line for p in err.value.problems}
    assert by_subject == {"uplink.port": 1, "box.log_level": 9, "discovery.rate": 17}


def test_panel_pins_named_twice_or_off_the_header_are_config_errors_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '[box]\nid = "MB-7F3A9C"\n\n[panel]\nbutton = 5\namber = 5\nred = 99\n')
    with pytest.raises(ConfigProblems) as err:
        load(path)
    problems = {p.subject.split(" =")[0]: (p.line, p.message) for p in err.value.problems}
    assert problems["panel.red"][0] == 7 and "not on the 40-pin header" in problems["panel.red"][1]
    assert any(line in (5, 6) and "already" in message for line, message in problems.values())
    good = load(write(tmp_path, '[box]\nid = "MB-7F3A9C"\n\n[panel]\nbutton = 5\n'))
    assert dict(good.panel.pins) == {"button": 5}
