"""The body of one request as its head frames it: counted or chunked.

Private: import RequestBody from cogen.web.http.

The one body assembly: the server's body reader (cogen/web/body.py) and
:class:`~cogen.web.http.RequestParser` both feed their buffer to
:meth:`RequestBody.decode`, so the tests and the fuzzer, which drive the
parser, exercise the framing production runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from cogen.web.http._chunked import ChunkedDecoder

if TYPE_CHECKING:
    from cogen.web.http import RequestHead

__all__ = ["RequestBody"]


class RequestBody:
    """The body of one request: ``Content-Length`` bytes, or a chunked body.

    Args:
        head: the request's head (its ``content_length`` and ``chunked``).
        max_body: the most bytes of a chunked body (a Content-Length over
            it was refused with the head already), None for no limit.
        max_chunk_line: longest chunk-size line, as for ChunkedDecoder.
        max_trailer_bytes, max_trailer_count: the trailer section's limits
            (the server and the parser give the head's).

    Attributes:
        received: body bytes decoded so far.
    """

    __slots__ = ("decoder", "received", "remaining")

    def __init__(self, head: RequestHead, *, max_body: int | None = None,
                 max_chunk_line: int = 4096, max_trailer_bytes: int = 65536,
                 max_trailer_count: int = 100) -> None:
        self.received = 0
        self.remaining = head.content_length or 0
        self.decoder = ChunkedDecoder(max_body=max_body, max_line=max_chunk_line,
                                      max_trailer_bytes=max_trailer_bytes,
                                      max_trailer_count=max_trailer_count) \
            if head.chunked else None

    @property
    def done(self) -> bool:
        """True once the whole body (for a chunked one, its trailer section too) was decoded."""
        decoder = self.decoder
        return decoder.done if decoder is not None else not self.remaining

    @property
    def trailers(self) -> list[tuple[str, str]]:
        """The trailer fields of a chunked body (lower-case names); empty for other bodies."""
        return self.decoder.trailers if self.decoder is not None else []

    def decode(self, buf: bytes | bytearray, limit: int = 1 << 62) -> tuple[bytes, int]:
        """Decode the body bytes at the start of ``buf``; returns ``(data, used)``.

        ``data`` is body bytes with the transfer coding removed (``b""`` if
        ``buf`` holds none yet, or the body is done); ``used`` how many bytes
        of ``buf`` they took (drop them; what follows the body is left
        alone). A counted body gives at most ``limit`` bytes at a time; a
        chunked one gives all it has. Raises RemoteProtocolError for a bad
        chunked body.
        """
        decoder = self.decoder
        if decoder is not None:
            data, used = decoder.decode(buf)
        else:
            used = min(self.remaining, limit, len(buf))
            if not used:
                return b"", 0
            # (a whole bytes buffer is not copied: the slice is the object itself)
            data = bytes(buf[:used])
            self.remaining -= used
        self.received += len(data)
        return data, used

    def eof_error(self) -> str:
        """What a connection that ends before the body does is missing, for its error."""
        if self.decoder is not None:
            return "connection closed in the middle of a chunked body"
        return f"connection closed with {self.remaining} bytes of the body missing"
