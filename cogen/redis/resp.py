"""RESP2/RESP3 encoding and parsing, sans-IO: bytes in, replies out.

:func:`encode_command` turns a command into the bytes of a RESP array of
bulk strings. :class:`PythonReader` parses replies from bytes fed to it, with
the interface of ``hiredis.Reader``; :func:`make_reader` returns a
``hiredis.Reader`` when the ``hiredis`` package is importable and a
:class:`PythonReader` otherwise, both configured alike, so a client behaves
the same either way.

Reply shapes (the same from both readers):

- simple and bulk strings: ``bytes`` (``str`` with ``encoding=``); a RESP3
  verbatim string without its ``txt:`` prefix;
- integers: ``int``; doubles: ``float`` (``inf``, ``-inf``, ``nan``); big
  numbers: the ``bytes`` of their digits (as hiredis gives them);
- null (``$-1``, ``*-1``, ``_``): ``None``; booleans: ``True``/``False``;
- arrays and sets: ``list``; maps: ``dict``; pushes (RESP3 out-of-band data,
  pub/sub messages): a ``list`` that :func:`is_push` recognises;
- error replies: an *instance* of the ``reply_error`` class (returned, not
  raised: one failed command in a pipeline does not end the parse).

Bytes that are not RESP raise the ``protocol_error`` class from ``gets()``;
the stream cannot be resynchronised after that, so the connection must be
closed. A RESP3 attribute (``|``) is skipped by :class:`PythonReader` (the
reply it annotates is returned); hiredis returns it as a separate list. Redis
sends attributes only to clients that ask for them (``CLIENT TRACKING`` does
not); the client here never does.
"""
from __future__ import annotations

from typing import Any

from cogen.redis.errors import DataError, ProtocolError, ResponseError

__all__ = [
    "HAS_HIREDIS",
    "NOT_ENOUGH_DATA",
    "Push",
    "PythonReader",
    "encode_command",
    "is_push",
    "make_reader",
]

_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - exercised where hiredis is missing
    _hiredis = None

#: True when ``hiredis`` is importable (``make_reader`` then uses its C parser).
HAS_HIREDIS = _hiredis is not None


class _NotEnoughData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_ENOUGH_DATA"


#: What ``gets()`` returns while no whole reply is buffered (``False`` would be
#: ambiguous: it is a RESP3 boolean).
NOT_ENOUGH_DATA: Any = _NotEnoughData()

#: Redis refuses bulk strings longer than this (``proto-max-bulk-len``); a
#: longer length prefix is not a reply but garbage.
MAX_BULK = 512 * 1024 * 1024
#: The longest line (type byte to CRLF) a well-formed reply header can have.
MAX_LINE = 64 * 1024


class Push(list):  # type: ignore[type-arg]
    """A RESP3 push (``>``): out-of-band data such as a pub/sub message; a ``list``."""

    __slots__ = ()


_PUSH_TYPES: tuple[type, ...] = (Push,)
if _hiredis is not None:
    _PUSH_TYPES += (_hiredis.PushNotification,)


def is_push(reply: Any) -> bool:
    """True if ``reply`` is a RESP3 push (from either reader)."""
    return isinstance(reply, _PUSH_TYPES)


# -- encoding ---------------------------------------------------------------------
def _encode_arg(arg: Any) -> bytes:
    cls = type(arg)
    if cls is bytes:
        return arg  # type: ignore[no-any-return]
    if cls is str:
        return arg.encode()  # type: ignore[no-any-return]
    if cls is int or cls is float:
        return repr(arg).encode()
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return str(arg).encode()
    if isinstance(arg, int) and not isinstance(arg, bool):
        return str(int(arg)).encode()  # IntEnum and other int subclasses: the number
    if isinstance(arg, float):
        return repr(float(arg)).encode()
    raise DataError(f"invalid command argument {arg!r} ({type(arg).__name__}): "
                    f"give bytes, str, int or float")


def encode_command(*args: Any) -> bytes:
    """The RESP bytes of one command: an array of bulk strings.

    Arguments are ``bytes``, ``str`` (sent as UTF-8), ``int`` or ``float``
    (sent as their decimal text), ``bytearray`` or ``memoryview``.

    Raises:
        DataError: an argument of another type (``None``, ``bool``, ``dict``...),
            or no argument at all.
    """
    if not args:
        raise DataError("a command needs at least its name")
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode_arg(arg)
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


# -- parsing ----------------------------------------------------------------------
class _Incomplete(Exception):
    """The buffer ends inside the reply being parsed (internal)."""


_INCOMPLETE = _Incomplete()


class PythonReader:
    """A pure-Python RESP2/RESP3 reply parser with ``hiredis.Reader``'s interface.

    Args:
        protocolError: the exception class raised for bytes that are not RESP.
        replyError: the class whose instances stand for error replies.
        encoding: decode strings with this codec (None: give ``bytes``).
        errors: the codec's error handler (``'strict'`` by default).
        notEnoughData: what :meth:`gets` returns while no whole reply is buffered.

    ``feed(data)`` appends bytes; ``gets()`` returns the next whole reply or
    ``notEnoughData``. A partly received reply is re-parsed from its start
    when more bytes come, which is cheap for the replies Redis sends (the
    buffer is scanned, never copied, until a reply is complete).
    """

    def __init__(self, protocolError: type[Exception] = ProtocolError,  # noqa: N803 (hiredis' names)
                 replyError: type[Exception] = ResponseError, encoding: str | None = None,
                 errors: str = "strict", notEnoughData: Any = NOT_ENOUGH_DATA) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._protocol_error = protocolError
        self._reply_error = replyError
        self._encoding = encoding
        self._errors = errors
        self._not_enough = notEnoughData

    def feed(self, data: bytes | bytearray | memoryview, offset: int = 0, length: int = -1) -> None:
        """Append ``data`` (or ``data[offset:offset+length]``) to the buffer."""
        if offset or length >= 0:
            end = None if length < 0 else offset + length
            data = memoryview(data)[offset:end]
        self._buf += data

    def has_data(self) -> bool:
        """True if bytes wait in the buffer."""
        return len(self._buf) > self._pos

    def gets(self) -> Any:
        """The next whole reply, or ``notEnoughData``; raises ``protocolError`` on garbage."""
        buf = self._buf
        if self._pos >= len(buf):
            return self._not_enough
        try:
            value, pos = self._parse(self._pos)
        except _Incomplete:
            return self._not_enough
        if pos >= len(buf):
            buf.clear()
            self._pos = 0
        elif pos > 65536:
            del buf[:pos]
            self._pos = 0
        else:
            self._pos = pos
        return value

    def _line(self, pos: int) -> tuple[bytes, int]:
        """The header line's payload after the type byte at ``pos``, and the position after its CRLF."""
        buf = self._buf
        end = buf.find(b"\r\n", pos + 1, pos + MAX_LINE)
        if end < 0:
            if len(buf) - pos >= MAX_LINE:
                raise self._protocol_error(f"no end of line in {MAX_LINE} bytes of a reply header")
            raise _INCOMPLETE
        return bytes(buf[pos + 1:end]), end + 2

    def _int(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise self._protocol_error(f"invalid length or integer {text!r} in a reply") from None

    def _string(self, data: bytes) -> Any:
        if self._encoding is None:
            return data
        return data.decode(self._encoding, self._errors)

    def _bulk(self, pos: int) -> tuple[bytes | None, int]:
        """A length-prefixed payload (``$``, ``=``, ``!``) at ``pos``; None for a null bulk."""
        text, pos = self._line(pos)
        size = self._int(text)
        if size < 0:
            if size == -1:
                return None, pos
            raise self._protocol_error(f"invalid bulk length {size} in a reply")
        if size > MAX_BULK:
            raise self._protocol_error(f"bulk length {size} over the {MAX_BULK}-byte limit")
        end = pos + size
        if len(self._buf) < end + 2:
            raise _INCOMPLETE
        if self._buf[end:end + 2] != b"\r\n":
            raise self._protocol_error("a bulk string does not end with CRLF")
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        buf = self._buf
        if pos >= len(buf):
            raise _INCOMPLETE
        kind = buf[pos]
        if kind == 0x24:  # $ bulk string
            data, pos = self._bulk(pos)
            return (None if data is None else self._string(data)), pos
        if kind == 0x2A or kind == 0x7E or kind == 0x3E:  # * array, ~ set, > push
            text, pos = self._line(pos)
            count = self._int(text)
            if count < 0:
                return None, pos
            items: list[Any] = Push() if kind == 0x3E else []
            for _ in range(count):
                item, pos = self._parse(pos)
                items.append(item)
            return items, pos
        if kind == 0x3A:  # : integer
            text, pos = self._line(pos)
            return self._int(text), pos
        if kind == 0x2B:  # + simple string
            text, pos = self._line(pos)
            return self._string(text), pos
        if kind == 0x2D:  # - simple error
            text, pos = self._line(pos)
            return self._reply_error(text.decode("utf-8", "replace")), pos
        if kind == 0x25:  # % map
            text, pos = self._line(pos)
            mapping: dict[Any, Any] = {}
            for _ in range(self._int(text)):
                key, pos = self._parse(pos)
                value, pos = self._parse(pos)
                try:
                    mapping[key] = value
                except TypeError:
                    raise self._protocol_error(f"unhashable map key {key!r} in a reply") from None
            return mapping, pos
        return self._parse_resp3_scalar(kind, pos)

    def _parse_resp3_scalar(self, kind: int, pos: int) -> tuple[Any, int]:
        if kind == 0x5F:  # _ null
            _text, pos = self._line(pos)
            return None, pos
        if kind == 0x23:  # # boolean
            text, pos = self._line(pos)
            if text not in (b"t", b"f"):
                raise self._protocol_error(f"invalid boolean {text!r} in a reply")
            return text == b"t", pos
        if kind == 0x2C:  # , double
            text, pos = self._line(pos)
            try:
                return float(text), pos
            except ValueError:
                raise self._protocol_error(f"invalid double {text!r} in a reply") from None
        if kind == 0x28:  # ( big number
            text, pos = self._line(pos)
            self._int(text)
            return text, pos
        if kind == 0x3D:  # = verbatim string: "txt:" then the text
            data, pos = self._bulk(pos)
            if data is None or len(data) < 4 or data[3:4] != b":":
                raise self._protocol_error("invalid verbatim string in a reply")
            return self._string(data[4:]), pos
        if kind == 0x21:  # ! blob error
            data, pos = self._bulk(pos)
            return self._reply_error((data or b"").decode("utf-8", "replace")), pos
        if kind == 0x7C:  # | attribute: skipped, the annotated reply follows
            text, pos = self._line(pos)
            for _ in range(2 * self._int(text)):
                _item, pos = self._parse(pos)
            return self._parse(pos)
        raise self._protocol_error(f"invalid reply type byte {chr(kind)!r}")


def make_reader(encoding: str | None = None, errors: str = "strict", use_hiredis: bool | None = None) -> Any:
    """A reply reader: ``hiredis.Reader`` if installed (or ``use_hiredis=True``), else :class:`PythonReader`.

    Both raise :class:`~cogen.redis.errors.ProtocolError` on garbage, return
    :class:`~cogen.redis.errors.ResponseError` instances for error replies and
    :data:`NOT_ENOUGH_DATA` while a reply is incomplete.

    Raises:
        RuntimeError: ``use_hiredis=True`` but hiredis is not installed.
    """
    if use_hiredis is None:
        use_hiredis = HAS_HIREDIS
    if use_hiredis:
        if _hiredis is None:
            raise RuntimeError("use_hiredis=True but the hiredis package is not installed "
                               "(pip install 'cogen[redis]')")
        kwargs: dict[str, Any] = {"protocolError": ProtocolError, "replyError": ResponseError,
                                  "notEnoughData": NOT_ENOUGH_DATA}
        if encoding is not None:
            kwargs["encoding"] = encoding
            kwargs["errors"] = errors
        return _hiredis.Reader(**kwargs)
    return PythonReader(encoding=encoding, errors=errors)
