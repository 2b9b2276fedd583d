"""cogen.redis.resp: the encoder and both readers (hiredis and pure Python) give the same replies."""
from __future__ import annotations

import enum
import math
from typing import Any

import pytest

from cogen.redis import resp
from cogen.redis.errors import DataError, ProtocolError, ResponseError

READERS = ["python"] + (["hiredis"] if resp.HAS_HIREDIS else [])

# (wire bytes, expected reply): the shapes the module docstring promises.
REPLIES: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", b"OK"),
    (b":-42\r\n", -42),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n$1\r\na\r\n*1\r\n+x\r\n", [1, b"a", [b"x"]]),
    (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
    (b"_\r\n", None),
    (b"#t\r\n", True),
    (b"#f\r\n", False),
    (b",3.25\r\n", 3.25),
    (b",inf\r\n", math.inf),
    (b",-inf\r\n", -math.inf),
    (b"(12345678901234567890\r\n", b"12345678901234567890"),
    (b"=15\r\ntxt:hello world\r\n", b"hello world"),
    (b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n,2.5\r\n", {b"a": 1, b"b": 2.5}),
    (b"~2\r\n:1\r\n:2\r\n", [1, 2]),
    (b"%1\r\n+k\r\n*2\r\n:1\r\n%1\r\n+x\r\n_\r\n", {b"k": [1, {b"x": None}]}),
]


def make(kind: str, **kwargs: Any) -> Any:
    return resp.make_reader(use_hiredis=(kind == "hiredis"), **kwargs)


def read_all(reader: Any) -> list[Any]:
    out = []
    while True:
        reply = reader.gets()
        if reply is resp.NOT_ENOUGH_DATA:
            return out
        out.append(reply)


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize(("wire", "expected"), REPLIES, ids=[repr(w[:12]) for w, _ in REPLIES])
def test_reader_parses_reply_split_at_every_boundary(kind: str, wire: bytes, expected: Any) -> None:
    for cut in range(len(wire) + 1):
        reader = make(kind)
        reader.feed(wire[:cut])
        got = read_all(reader)
        if cut < len(wire):
            assert got == [], f"a whole reply out of {wire[:cut]!r}"
            reader.feed(wire[cut:])
            got = read_all(reader)
        assert got == [expected]


@pytest.mark.parametrize("kind", READERS)
def test_reader_returns_many_replies_fed_at_once_in_order(kind: str) -> None:
    reader = make(kind)
    reader.feed(b"".join(w for w, _ in REPLIES))
    got = read_all(reader)
    assert got == [e for _, e in REPLIES]


@pytest.mark.parametrize("kind", READERS)
def test_reader_returns_error_replies_as_response_error_instances(kind: str) -> None:
    reader = make(kind)
    reader.feed(b"*2\r\n-WRONGTYPE Operation against a key\r\n:1\r\n-ERR unknown command 'FOO'\r\n")
    first, second = read_all(reader)
    assert isinstance(first[0], ResponseError) and first[0].code == "WRONGTYPE"
    assert first[1] == 1
    assert isinstance(second, ResponseError) and str(second) == "ERR unknown command 'FOO'"


@pytest.mark.parametrize("kind", READERS)
def test_reader_marks_pushes(kind: str) -> None:
    reader = make(kind)
    reader.feed(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n*1\r\n:1\r\n")
    push, array = read_all(reader)
    assert push == [b"message", b"ch", b"hi"] and resp.is_push(push)
    assert array == [1] and not resp.is_push(array)


@pytest.mark.parametrize("kind", READERS)
def test_reader_decodes_with_encoding(kind: str) -> None:
    reader = make(kind, encoding="utf-8")
    reader.feed(b"*2\r\n$5\r\n\xc3\xa9t\xc3\xa9\r\n+OK\r\n%1\r\n$1\r\nk\r\n:1\r\n")
    assert read_all(reader) == [["été", "OK"], {"k": 1}]


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("garbage", [b"?what\r\n", b":12x\r\n", b"$abc\r\n"])
def test_reader_raises_protocol_error_on_garbage(kind: str, garbage: bytes) -> None:
    reader = make(kind)
    reader.feed(garbage)
    with pytest.raises(ProtocolError):
        reader.gets()


def test_python_reader_refuses_oversized_bulk_and_endless_header() -> None:
    reader = resp.PythonReader()
    reader.feed(b"$%d\r\n" % (resp.MAX_BULK + 1))
    with pytest.raises(ProtocolError, match="limit"):
        reader.gets()
    reader = resp.PythonReader()
    reader.feed(b"+" + b"x" * resp.MAX_LINE)
    with pytest.raises(ProtocolError, match="end of line"):
        reader.gets()


def test_python_reader_skips_attributes_and_parses_blob_errors() -> None:
    reader = resp.PythonReader()
    reader.feed(b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n!9\r\nERR oops!\r\n")
    ok, err = read_all(reader)
    assert ok == b"ok"
    assert isinstance(err, ResponseError) and str(err) == "ERR oops!"


class Color(enum.IntEnum):
    RED = 1


def test_encode_command_encodes_each_argument_type() -> None:
    wire = resp.encode_command("SET", b"k\x00", 42, 1.5, "é", bytearray(b"b"), memoryview(b"m"), Color.RED)
    assert wire == (b"*8\r\n$3\r\nSET\r\n$2\r\nk\x00\r\n$2\r\n42\r\n$3\r\n1.5\r\n$2\r\n\xc3\xa9\r\n"
                    b"$1\r\nb\r\n$1\r\nm\r\n$1\r\n1\r\n")
    reader = resp.PythonReader()
    reader.feed(wire)
    assert reader.gets() == [b"SET", b"k\x00", b"42", b"1.5", "é".encode(), b"b", b"m", b"1"]


@pytest.mark.parametrize("bad", [None, True, {"a": 1}, [1], object()])
def test_encode_command_rejects_other_types_with_data_error(bad: Any) -> None:
    with pytest.raises(DataError, match="invalid command argument"):
        resp.encode_command("SET", "k", bad)
    with pytest.raises(TypeError):  # DataError is also a TypeError
        resp.encode_command("SET", "k", bad)


def test_encode_command_needs_a_name() -> None:
    with pytest.raises(DataError):
        resp.encode_command()
