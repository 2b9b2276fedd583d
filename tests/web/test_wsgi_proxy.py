"""trusted_proxy: X-Forwarded-For/Proto/Host and Forwarded are applied only
when the peer is a trusted proxy, so a client cannot spoof its address."""
from __future__ import annotations

from typing import Any

import pytest

from .conftest import _socket_fds, get, recording_app

pytestmark = pytest.mark.timeout(60)

X_FORWARDED = ("X-Forwarded-For: 203.0.113.7, 10.1.2.3\r\nX-Forwarded-Proto: https\r\n"
               "X-Forwarded-Host: public.example:8443\r\n")


def _environ_for(live_server: Any, raw: Any, headers: str, **options: Any) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    live = live_server(recording_app(seen), **options)
    assert raw(live).request(get("/", host="internal", headers=headers)).status == 200
    return seen[0]


def test_forwarded_headers_are_ignored_without_trusted_proxy(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, X_FORWARDED)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "internal"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 10.1.2.3"  # still visible as a header


def test_forwarded_headers_are_ignored_from_an_untrusted_peer(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, X_FORWARDED, trusted_proxy=["10.0.0.1", "192.0.2.0/24"])
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "internal"


def test_x_forwarded_headers_from_a_trusted_peer(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, X_FORWARDED, trusted_proxy=["127.0.0.1"])
    # the right-most address that is not a trusted proxy: 10.1.2.3 is not trusted
    assert env["REMOTE_ADDR"] == "10.1.2.3"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "public.example:8443"


def test_x_forwarded_for_skips_every_trusted_hop(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, X_FORWARDED, trusted_proxy="127.0.0.1, 10.0.0.0/8")
    assert env["REMOTE_ADDR"] == "203.0.113.7"


def test_a_client_cannot_spoof_through_a_trusted_proxy(live_server: Any, raw: Any) -> None:
    """The client sent its own X-Forwarded-For; the proxy appended the real address."""
    env = _environ_for(live_server, raw, "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 198.51.100.9\r\n",
                       trusted_proxy=["127.0.0.1"])
    assert env["REMOTE_ADDR"] == "198.51.100.9"


def test_forwarded_header_from_a_trusted_peer(live_server: Any, raw: Any) -> None:
    env = _environ_for(
        live_server, raw,
        'Forwarded: for="[2001:db8::1]:4711";proto=https;host=shop.example, for=10.9.8.7\r\n'
        + X_FORWARDED,
        trusted_proxy=["127.0.0.1", "10.0.0.0/8"])
    assert env["REMOTE_ADDR"] == "2001:db8::1"  # Forwarded wins over X-Forwarded-*
    assert "REMOTE_PORT" not in env or env["REMOTE_PORT"] != ""
    assert env["wsgi.url_scheme"] == "http"  # the last hop's proto (none): unchanged
    assert env["HTTP_HOST"] == "internal"


def test_forwarded_header_proto_and_host_of_the_last_hop(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw,
                       "Forwarded: for=192.0.2.60;proto=https;host=shop.example\r\n",
                       trusted_proxy=["127.0.0.1"])
    assert env["REMOTE_ADDR"] == "192.0.2.60"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example"


def test_forwarded_header_is_ignored_from_an_untrusted_peer(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, "Forwarded: for=192.0.2.60;proto=https\r\n",
                       trusted_proxy=["10.0.0.1"])
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("headers", [
    "X-Forwarded-Proto: ftp\r\nX-Forwarded-Host: evil host\r\n",
    "X-Forwarded-Proto: javascript\r\nX-Forwarded-Host: a/b\r\n",
])
def test_bogus_proto_and_host_are_ignored(live_server: Any, raw: Any, headers: str) -> None:
    env = _environ_for(live_server, raw, headers, trusted_proxy=["*"])
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "internal"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_invalid_trusted_proxy_is_refused_without_leaking_the_socket() -> None:
    from cogen.core.schedulers import Scheduler
    from cogen.web.wsgi import WSGIServer
    sched = Scheduler()
    before = _socket_fds()
    try:
        with pytest.raises(ValueError, match="not-an-address") as excinfo:
            WSGIServer(("127.0.0.1", 0), recording_app([]), sched, trusted_proxy=["not-an-address"])
        # the traceback keeps the half-built server alive: its socket must be closed already
        assert _socket_fds() == before, "the listening socket was left open"
        del excinfo
    finally:
        sched.close()
