"""Large response bodies over real sockets: exact on the wire, however the client reads.

A body whose pieces all exist already (a list, a tuple, an iterable over a
list such as Django's ``HttpResponse``) goes out gathered, as many pieces
per ``sendmsg()`` as the socket takes, with a Content-Length when the app
gave none; a large piece of a streamed body goes out behind its head or
its chunk framing without being copied into it. The clients here offer a
small TCP window and read in small pieces, so the server's sends stop
part-way through a piece and go on where they stopped.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
import requests

from .conftest import CLIENT_TIMEOUT, RawClient, get

pytestmark = pytest.mark.timeout(60)

PIECE = 64 * 1024
#: 32 pieces of 64 KiB, each different, so a piece out of place shows.
PIECES = [bytes([65 + i % 26]) * (PIECE - 1) + b"%d" % (i % 10) for i in range(32)]
WHOLE = b"".join(PIECES)


class ListBackedResponse:
    """What Django's HttpResponse is to a server: iterable over a list, with close()."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.closed = False

    def __iter__(self) -> Any:
        return iter(self.pieces)

    def close(self) -> None:
        self.closed = True


def _app(shape: str, made: list[Any]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if shape == "list":
            return list(PIECES)
        if shape == "tuple":
            return tuple(PIECES)
        if shape == "one piece":
            return [WHOLE]
        if shape == "list-backed":
            response = ListBackedResponse(list(PIECES))
            made.append(response)
            return response
        return iter_pieces()

    def iter_pieces() -> Any:  # a generator: each piece sent as it comes, chunked
        for i in range(0, len(WHOLE), 200 * 1024):
            yield WHOLE[i:i + 200 * 1024]

    return app


SHAPES = ["list", "tuple", "one piece", "list-backed", "generator"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_large_body_is_exact_for_a_slow_small_window_client(live_server: Any, shape: str) -> None:
    made: list[Any] = []
    live = live_server(_app(shape, made))
    client = RawClient(live.address, rcvbuf=4096, recv_size=1000)
    try:
        for _ in range(2):  # and the connection goes on
            resp = client.request(get("/"))
            assert resp.status == 200
            assert hashlib.sha256(resp.body).hexdigest() == hashlib.sha256(WHOLE).hexdigest()
            if shape == "generator":
                assert resp.header("transfer-encoding") == "chunked"
            else:
                assert resp.header("content-length") == str(len(WHOLE))
                assert resp.header("transfer-encoding") is None
    finally:
        client.close()
    if shape == "list-backed":
        assert [r.closed for r in made] == [True, True]


def test_a_list_of_many_small_pieces_is_exact_over_tls(
        live_server: Any, tls_server_options: dict[str, Any]) -> None:
    """No sendmsg on TLS: the pieces go out in joined runs, every byte in order."""
    pieces = [b"%06d" % i * 20 for i in range(3000)]  # 120 bytes each, 360,000 in all

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return pieces

    live = live_server(app, **tls_server_options)
    resp = requests.get(f"https://localhost:{live.port}/", timeout=CLIENT_TIMEOUT,
                        verify=tls_server_options["certfile"])
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == str(len(pieces) * 120)
    assert resp.content == b"".join(pieces)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_large_body_is_exact_over_tls(live_server: Any, tls_server_options: dict[str, Any],
                                        shape: str) -> None:
    live = live_server(_app(shape, []), **tls_server_options)
    with requests.Session() as session:
        for _ in range(2):
            resp = session.get(f"https://localhost:{live.port}/", timeout=CLIENT_TIMEOUT,
                               verify=tls_server_options["certfile"])
            assert resp.status_code == 200
            assert resp.content == WHOLE


def test_a_large_list_body_is_not_sent_to_a_head_request(live_server: Any) -> None:
    live = live_server(_app("list", []))
    client = RawClient(live.address)
    try:
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/"))
        head_resp = client.response("HEAD")
        assert head_resp.header("content-length") == str(len(WHOLE))
        assert head_resp.body == b""
        assert client.response().body == WHOLE  # the next response starts where it should
    finally:
        client.close()


def test_a_client_gone_mid_body_leaves_the_server_serving(live_server: Any) -> None:
    live = live_server(_app("list", []))
    gone = RawClient(live.address, rcvbuf=4096)
    gone.send(get("/"))
    assert gone.sock.recv(100).startswith(b"HTTP/1.1 200 ")
    gone.close()  # with most of the body unsent
    client = RawClient(live.address)
    try:
        assert client.request(get("/")).body == WHOLE
    finally:
        client.close()


@pytest.mark.parametrize("threads", [0, 4], ids=["inline", "threads4"])
def test_a_large_django_response_gets_a_content_length_and_arrives_whole(
        live_server: Any, django_app: Any, threads: int) -> None:
    # HttpResponse.write() appends to a list its iterator walks: every piece
    # exists when the view returns, so the body is sized and sent gathered
    from tests.web.django_isolation.urls import BIG_PIECES

    live = live_server(django_app, threads=threads)
    whole = b"".join(BIG_PIECES)
    with requests.Session() as session:
        for _ in range(2):
            resp = session.get(live.url + "/big", timeout=CLIENT_TIMEOUT)
            assert resp.status_code == 200
            assert resp.headers["Content-Length"] == str(len(whole))
            assert "Transfer-Encoding" not in resp.headers
            assert resp.content == whole


def _random_pieces(rng: random.Random) -> list[bytes]:
    """Pieces of mixed sizes (empty ones included) whose order shows in their bytes."""
    sizes = rng.choice([
        lambda: [rng.randrange(0, 300) for _ in range(rng.randrange(1100, 3000))],  # > IOV_MAX pieces
        lambda: [rng.choice([0, 1, 7, 4096, 65535, 65536, 65537, 200_000]) for _ in range(12)],
        lambda: [rng.randrange(0, 150_000) for _ in range(rng.randrange(2, 40))],
    ])()
    return [bytes([i % 251]) * size for i, size in enumerate(sizes)]


@pytest.mark.parametrize("seed", range(8))
def test_gathered_bodies_of_random_pieces_are_exact(live_server: Any, seed: int) -> None:
    # partial sendmsg() calls ending inside a piece, on a boundary, after
    # empty pieces, and bodies of more pieces than one sendmsg() takes
    rng = random.Random(seed)
    bodies = [_random_pieces(rng) for _ in range(3)]

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        pieces = bodies[int(environ["PATH_INFO"][1:])]
        return pieces if environ["QUERY_STRING"] != "tuple" else tuple(pieces)

    live = live_server(app)
    client = RawClient(live.address, rcvbuf=rng.choice([2048, 8192, 65536]),
                       recv_size=rng.choice([500, 4096, 65536]))
    try:
        for i, pieces in enumerate(bodies):
            for query in ("", "?tuple"):
                resp = client.request(get(f"/{i}{query}"))
                whole = b"".join(pieces)
                assert resp.header("content-length") == str(len(whole))
                assert resp.body == whole
    finally:
        client.close()
