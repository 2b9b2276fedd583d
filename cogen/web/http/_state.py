"""Where one server connection is in its request cycle, and whether it goes on.

Theory of operation
-------------------
h11 keeps the state of a connection in one object that every event goes
through (h11's ``_state.py``); this is the server's half of that, for a
server that reads one request at a time. :class:`ConnectionState` is told
what happened (a byte arrived, a head was parsed, the body was read, the
response ended, the protocol switched) and from that alone decides the
three things that used to be scattered over the request loop, the body
reader and the response: whether to send ``100 Continue``, whether the
connection is kept for another request, and whether a close must linger
(the client may still be sending). The request loop moves the state on
where nothing is decided (IDLE -> RECV_HEAD when bytes come, DONE -> IDLE
for the next request); nothing here touches a socket::

    IDLE -- a byte of a request --> RECV_HEAD -- its head --> RECV_BODY (a body)
                                                          \\-> SEND_BODY (none)
    RECV_BODY -- body read --> SEND_BODY
    SEND_BODY -- response ended, keep-alive --> DONE -- next cycle --> IDLE
    any -- a close decided (request, response, error) --> MUST_CLOSE
    SEND_BODY -- 101 sent --> SWITCHED_PROTOCOL (the socket is someone else's)

RECV_HEAD is the server's addition to h11's list: a graceful stop treats a
connection that has sent part of a head (serve it) differently from one
that has sent nothing (close it, or give it a last request). A response may
end before the body was read (an app that streams its input and stops
early): the state stays RECV_BODY, and :meth:`ConnectionState.end_response`
says whether reading the rest could keep the connection.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cogen.web.http import RequestHead

__all__ = [
    "DONE",
    "IDLE",
    "MUST_CLOSE",
    "RECV_BODY",
    "RECV_HEAD",
    "SEND_BODY",
    "SWITCHED_PROTOCOL",
    "ConnectionState",
    "State",
]


class State(enum.Enum):
    """The states of :class:`ConnectionState` (see the module's theory of operation)."""

    IDLE = "IDLE"
    RECV_HEAD = "RECV_HEAD"
    RECV_BODY = "RECV_BODY"
    SEND_BODY = "SEND_BODY"
    DONE = "DONE"
    MUST_CLOSE = "MUST_CLOSE"
    SWITCHED_PROTOCOL = "SWITCHED_PROTOCOL"


IDLE: Final = State.IDLE
RECV_HEAD: Final = State.RECV_HEAD
RECV_BODY: Final = State.RECV_BODY
SEND_BODY: Final = State.SEND_BODY
DONE: Final = State.DONE
MUST_CLOSE: Final = State.MUST_CLOSE
SWITCHED_PROTOCOL: Final = State.SWITCHED_PROTOCOL


class ConnectionState:
    """The server side of one HTTP/1.1 connection's request cycle.

    Attributes:
        state: a :class:`State`; IDLE at first.
        requests: requests whose head was parsed on this connection.
        keep_alive: false once anything ruled out another request (the
            request asked to close, the response could not be framed for
            keep-alive, an error).
        expect_continue: the client waits for ``100 Continue`` before it
            sends the body, and it was not sent yet.
        linger: the connection closes while the client may still be
            sending: discard what it sends for a while before closing.
    """

    __slots__ = ("expect_continue", "keep_alive", "linger", "requests", "state")

    def __init__(self) -> None:
        self.state = IDLE
        self.requests = 0
        self.keep_alive = True
        self.expect_continue = False
        self.linger = False

    def start_request(self, head: RequestHead) -> None:
        """A request head was parsed: RECV_BODY if a body follows, else SEND_BODY."""
        self.requests += 1
        self.keep_alive = head.keep_alive
        if head.content_length or head.chunked:
            self.state = RECV_BODY
            self.expect_continue = head.expect_continue
        else:
            self.state = SEND_BODY
            self.expect_continue = False

    def send_continue(self) -> bool:
        """The body is about to be read: True (once) if ``100 Continue`` must go out first."""
        if self.expect_continue:
            self.expect_continue = False
            return True
        return False

    def body_received(self) -> None:
        """The whole request body was read while the response was under way (RECV_BODY -> SEND_BODY)."""
        if self.state is RECV_BODY:
            self.state = SEND_BODY

    def body_drained(self, is_complete: bool) -> None:
        """After the response: the unread rest of the body was read (``is_complete``) or given up.

        DONE if it was and keep-alive holds, else MUST_CLOSE, lingering.
        """
        if is_complete and self.keep_alive:
            self.state = DONE
        else:
            self.must_close(linger=True)

    def end_response(self, keep_alive: bool) -> bool:
        """The response is out; ``keep_alive``: it allows another request.

        SEND_BODY -> DONE when the connection may go on, else MUST_CLOSE.
        With the body not all read (RECV_BODY), returns True if reading the
        rest (bounded) may keep the connection: keep-alive holds and the
        client was not left waiting for ``100 Continue`` (it never sent the
        body). Otherwise the connection must close, lingering. Returns
        False in every other case.
        """
        if not keep_alive:
            self.keep_alive = False
        state = self.state
        if state is SEND_BODY:
            self.state = DONE if self.keep_alive else MUST_CLOSE
        elif state is RECV_BODY:
            if self.keep_alive and not self.expect_continue:
                return True
            self.must_close(linger=True)
        return False

    def must_close(self, linger: bool = False) -> None:
        """No more requests on this connection; ``linger``: the client may still be sending."""
        self.state = MUST_CLOSE
        self.keep_alive = False
        if linger:
            self.linger = True

    def switch_protocol(self) -> None:
        """The response switched protocols (a ``101`` went out): no more HTTP here."""
        self.state = SWITCHED_PROTOCOL
        self.keep_alive = False
