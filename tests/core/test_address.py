"""The one address grammar of sockets.listen and the server's bind (cogen.core.address)."""
from __future__ import annotations

import pathlib
import socket
from typing import Any

import pytest

from cogen.core import sockets
from cogen.core.address import parse_address
from cogen.web.wsgi import parse_bind


@pytest.mark.parametrize("addr,expected", [
    ("127.0.0.1:8080", (False, ("127.0.0.1", 8080))),
    (":8080", (False, ("", 8080))),
    ("8080", (False, ("", 8080))),
    (8080, (False, ("", 8080))),
    ("[::1]:80", (False, ("::1", 80))),
    (("::1", "81", 0, 0), (False, ("::1", 81, 0, 0))),
    ("unix:rel.sock", (True, "rel.sock")),
    ("/tmp/x.sock", (True, "/tmp/x.sock")),
    ("\0abstract", (True, "\0abstract")),
    (b"/tmp/b.sock", (True, b"/tmp/b.sock")),
    (pathlib.Path("/tmp/p.sock"), (True, "/tmp/p.sock")),
    ("rel.sock", (True, "rel.sock")),
    ("dir/with:colon", (True, "dir/with:colon")),
])
def test_parse_address_forms(addr: Any, expected: Any) -> None:
    assert parse_address(addr) == expected


@pytest.mark.parametrize("addr", ["localhost", "dir/with:colon", ""])
def test_without_relative_paths_a_string_without_port_is_an_error(addr: str) -> None:
    with pytest.raises(ValueError, match="want HOST:PORT|invalid port"):
        parse_address(addr, relative_paths=False)


@pytest.mark.parametrize("addr,bad", [("h:abc", "'abc'"), ("h:70000", "'70000'"), ("[::1]80", "IPV6"),
                                      (("h", -1), "-1"), (("h", True), "True"), (3.5, "3.5")])
def test_parse_address_names_the_offending_value(addr: Any, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        parse_address(addr)


def test_parse_bind_takes_a_bare_port_as_listen_does() -> None:
    assert parse_bind("8080") == (socket.AF_INET, ("0.0.0.0", 8080))


def test_listen_and_parse_bind_reject_the_same_bad_port() -> None:
    for call in (sockets.listen, parse_bind):
        with pytest.raises(ValueError, match="invalid port '70000' in bind address '127.0.0.1:70000'"):
            call("127.0.0.1:70000")
