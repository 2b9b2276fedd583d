"""trusted_proxy: X-Forwarded-For/Proto/Host (or Forwarded, when named in
trusted_proxy_headers) are applied only when the peer is a trusted proxy, so
a client cannot spoof its address; the untrusted proxy headers are cleared."""
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
        trusted_proxy=["127.0.0.1", "10.0.0.0/8"], trusted_proxy_headers="forwarded")
    assert env["REMOTE_ADDR"] == "2001:db8::1"  # X-Forwarded-* not trusted: ignored, cleared
    assert "HTTP_X_FORWARDED_FOR" not in env and "HTTP_X_FORWARDED_HOST" not in env
    assert "REMOTE_PORT" not in env or env["REMOTE_PORT"] != ""
    assert env["wsgi.url_scheme"] == "http"  # the last hop's proto (none): unchanged
    assert env["HTTP_HOST"] == "internal"


def test_forwarded_header_proto_and_host_of_the_last_hop(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw,
                       "Forwarded: for=192.0.2.60;proto=https;host=shop.example\r\n",
                       trusted_proxy=["127.0.0.1"], trusted_proxy_headers=["Forwarded"])
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


SPOOF = "Forwarded: for=6.6.6.6;proto=http;host=evil.example\r\nX-Forwarded-Port: 1\r\n"
NGINX = "X-Forwarded-For: 198.51.100.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n"


def test_a_client_forwarded_header_through_a_trusted_proxy_is_ignored(live_server: Any,
                                                                       raw: Any) -> None:
    """nginx sets X-Forwarded-* and passes the client's own Forwarded on: it must not win."""
    env = _environ_for(live_server, raw, SPOOF + NGINX, trusted_proxy=["127.0.0.1"])
    assert env["REMOTE_ADDR"] == "198.51.100.9"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example"
    assert env["SERVER_PORT"] != "1"
    # cleared, so an app reading them directly is not spoofed either
    assert "HTTP_FORWARDED" not in env and "HTTP_X_FORWARDED_PORT" not in env
    assert env["HTTP_X_FORWARDED_FOR"] == "198.51.100.9"  # trusted ones stay


def test_untrusted_peer_gets_every_proxy_header_cleared(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, SPOOF + X_FORWARDED, trusted_proxy=["10.0.0.1"])
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["HTTP_HOST"] == "internal"
    assert not [key for key in env if "FORWARDED" in key]


def test_clearing_can_be_turned_off(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, SPOOF + NGINX, trusted_proxy=["127.0.0.1"],
                       clear_untrusted_proxy_headers="no")
    assert env["REMOTE_ADDR"] == "198.51.100.9"  # still ignored
    assert env["HTTP_FORWARDED"] == "for=6.6.6.6;proto=http;host=evil.example"


def test_clearing_without_a_trusted_proxy_clears_them_all(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, SPOOF + NGINX, clear_untrusted_proxy_headers=True)
    assert not [key for key in env if "FORWARDED" in key]
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_x_forwarded_port_when_trusted(live_server: Any, raw: Any) -> None:
    env = _environ_for(live_server, raw, NGINX + "X-Forwarded-Port: 8443\r\n",
                       trusted_proxy=["127.0.0.1"],
                       trusted_proxy_headers="x-forwarded-for x-forwarded-port")
    assert env["SERVER_PORT"] == "8443" and env["REMOTE_ADDR"] == "198.51.100.9"
    assert env["wsgi.url_scheme"] == "http" and env["HTTP_HOST"] == "internal"
    assert "HTTP_X_FORWARDED_PROTO" not in env


@pytest.mark.parametrize("headers, message", [
    ("x-forwarded-for x-real-ip", "unknown proxy header 'x-real-ip'"),
    ("forwarded, x-forwarded-for", "cannot both be trusted"),
])
def test_bad_trusted_proxy_headers_are_refused(headers: str, message: str) -> None:
    from cogen.web.wsgi import WSGIServer
    with pytest.raises(ValueError, match=message):
        WSGIServer(("127.0.0.1", 0), recording_app([]), trusted_proxy_headers=headers)


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
