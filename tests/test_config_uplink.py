"""The uplink keys of store-and-forward: transport, WebSockets port and path, the office proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterbox.config import ConfigProblems, ProxyConfig, load

BASE = '[box]\nid = "MB-7F3A9C"\n\n[uplink]\nhost = "broker.example.com"\n'


def config(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "meterbox.toml"
    path.write_text(BASE + lines)
    return path


def problems(tmp_path: Path, lines: str) -> str:
    with pytest.raises(ConfigProblems) as err:
        load(config(tmp_path, lines))
    return str(err.value)


def test_defaults_try_mqtt_then_websockets_on_443(tmp_path: Path) -> None:
    up = load(config(tmp_path, "")).uplink
    assert (up.transport, up.port, up.websockets_port, up.websockets_path, up.proxy) == (
        "auto", 8883, 443, "/mqtt", None)


@pytest.mark.parametrize(("text", "expected"), [
    ("http://proxy.example.com:3128", ProxyConfig("http", "proxy.example.com", 3128)),
    ("http://192.0.2.1", ProxyConfig("http", "192.0.2.1", 8080)),
    ("socks5://[2001:db8::1]:1080", ProxyConfig("socks5", "2001:db8::1", 1080)),
])
def test_proxy_urls(tmp_path: Path, text: str, expected: ProxyConfig) -> None:
    assert load(config(tmp_path, f'proxy = "{text}"\n')).uplink.proxy == expected


def test_proxy_credentials_are_kept_and_never_printed(tmp_path: Path) -> None:
    proxy = load(config(tmp_path, 'proxy = "http://box%40site:p%3Ass@192.0.2.1:3128"\n')).uplink.proxy
    assert proxy is not None and proxy.user == "box@site" and proxy.password is not None
    assert proxy.password.reveal() == "p:ss"
    assert "p:ss" not in f"{proxy} {proxy!r}"


def test_an_empty_proxy_is_no_proxy(tmp_path: Path) -> None:
    assert load(config(tmp_path, 'proxy = ""\n')).uplink.proxy is None


@pytest.mark.parametrize(("lines", "message"), [
    ('proxy = "proxy.example.com:3128"\n', 'add "http://" in front'),
    ('proxy = "https://proxy.example.com:3128"\n', 'write "http://" even where browsers use https_proxy'),
    ('proxy = "ftp://proxy.example.com"\n', '"http://" or "socks5://" only'),
    ('proxy = "http://proxy.example.com:99999"\n', "expected a proxy URL"),
    ('transport = "websocket"\n', 'did you mean "websockets"?'),
    ("websockets_port = 0\n", "expected a whole number 1–65535"),
    ('websockets_path = "mqtt"\n', 'did you mean "/mqtt"?'),
])
def test_bad_values_are_one_clear_problem_each(tmp_path: Path, lines: str, message: str) -> None:
    text = problems(tmp_path, lines)
    assert message in text and "line 6" in text


def test_a_bad_proxy_value_is_not_echoed(tmp_path: Path) -> None:
    text = problems(tmp_path, 'proxy = "htp://user:hunter2@proxy"\n')
    assert "hunter2" not in text and "<secret>" in text
