"""A multi-room web chat with long polling on a PublishSubscribeQueue.

Run it from the repository root in the venv of the README's quick start::

    .venv/bin/cogen-web examples.chat.app:application --port 8080

then open http://127.0.0.1:8080/ in two browser windows, pick the same room
and a name in each, and talk. (``.venv/bin/python -m cogen.web`` works the same as
``cogen-web``.)

How it works: every room is a :class:`cogen.core.pubsub.PublishSubscribeQueue`.
Joining subscribes the browser under a client id; the page then long-polls:
each poll request *yields* ``room.fetch(client, timeout=...)``, which parks
that request's coroutine (no thread) until somebody publishes, or the timeout
passes. Posting a message yields ``room.publish(message)``, which wakes every
parked poll of the room at once. The app is a plain generator WSGI app that
yields cogen operations directly; the server runs each one and leaves its
outcome on ``environ['cogen']`` (``.result``, ``.exception``), see
:mod:`cogen.web.extensions`.

The HTTP API (all answers are JSON):

- ``POST /rooms/ROOM/join``  form ``name`` -> ``{"client": ID, "history": [...]}``
- ``GET  /rooms/ROOM/poll?client=ID`` -> ``{"messages": [...]}`` (long poll;
  an empty list after the poll timeout; 410 if the subscription is gone)
- ``POST /rooms/ROOM/say``  form ``client``, ``text`` -> ``{"woken": N}``
- ``POST /rooms/ROOM/leave`` form ``client`` -> ``{"left": true}``
- ``GET  /rooms/ROOM/ws?client=ID`` (WebSocket): the same room over one
  connection. The server sends ``{"messages": [...]}`` as messages are
  published; the client sends ``{"text": "..."}`` to say something. Closing
  the WebSocket leaves the room. The page uses it where the browser can and
  falls back to long polling where it cannot (a proxy that drops upgrades).

Several workers: with ``--workers 3`` alone, each worker has rooms of its
own, and a poll served by another worker than the join gets 410. Give the
server a broker and the rooms are shared by every worker::

    cogen-web examples.chat.app:application --port 8080 --workers 3 --broker redis://127.0.0.1:6379/0
    gunicorn -k cogen.web.gunicorn.CogenWorker -w 2 --env COGEN_BROKER=redis://127.0.0.1:6379/0 \
        examples.chat.app:application

Each room's queue is then a named ``PublishSubscribeQueue`` kept in a Redis
stream: every poll, whichever worker serves it, gets the messages its client
has not seen, in order. The client id carries the display name, so that any
worker can say who spoke; the join history is the serving worker's, and
idle clients are not expired (the stream is trimmed, so they pin nothing
but their entry in the subscriber list).
"""
import base64
import collections
import json
import os
import re
import secrets
import time
from urllib.parse import parse_qs

from cogen.core.events import AddCoro, OperationTimeout
from cogen.core.pubsub import NotSubscribedError, PublishSubscribeQueue
from cogen.errors import CogenError

#: How long one poll request waits for messages before answering ``[]``.
POLL_TIMEOUT = float(os.environ.get("CHAT_POLL_TIMEOUT", "25"))
#: A client that has not polled for this long is unsubscribed (its tab was
#: closed without a "leave"), so its backlog does not pin messages forever.
CLIENT_EXPIRY = 2 * POLL_TIMEOUT + 30
HISTORY = 50           # messages a joining client is shown
MAX_TEXT = 1000        # characters in one message
MAX_NAME = 40
MAX_FORM = 16 * 1024   # bytes of a form body
ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")
ROUTE = re.compile(r"/rooms/(?P<room>[^/]+)/(?P<action>join|poll|say|leave|ws)\Z")

PAGE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index.html")


class Room:
    """One chat room: its queue, its members and a little history."""

    def __init__(self, name):
        self.name = name
        # Named: shared by every worker when the server has a broker.
        self.queue = PublishSubscribeQueue(name=f"chat:{name}")
        self.names = {}          # client id -> display name
        self.last_seen = {}      # client id -> time.monotonic() of its last request
        self.history = collections.deque(maxlen=HISTORY)
        self.seq = 0

    def message(self, kind, name, text=""):
        self.seq += 1
        msg = {"seq": self.seq, "kind": kind, "name": name, "text": text, "time": time.time()}
        self.history.append(msg)
        return msg

    def stale_clients(self):
        limit = time.monotonic() - CLIENT_EXPIRY
        return [client for client, seen in self.last_seen.items() if seen < limit]


rooms = {}


def get_room(name):
    room = rooms.get(name)
    if room is None:
        room = rooms[name] = Room(name)
    return room


def is_shared(environ):
    """True when the server has a broker: the rooms' queues are then shared by every worker."""
    broker = getattr(environ["cogen"].sched, "broker", None)
    return bool(getattr(broker, "is_shared", False))


def new_client_id(name):
    """A fresh client id that carries the display name (so any worker knows it)."""
    encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{secrets.token_urlsafe(12)}.{encoded}"


def name_of(client):
    """The display name inside a client id, or None for an id that is not one of ours."""
    _token, dot, encoded = client.partition(".")
    if not dot or len(encoded) > 8 * MAX_NAME:
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def outcome(environ):
    """The result of the operation the app yielded last; raises its exception."""
    gate = environ["cogen"]
    if gate.exception is not None:
        raise gate.result
    return gate.result


def json_response(start_response, status, data):
    body = json.dumps(data).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return body


def unavailable(start_response):
    """503: the broker (shared rooms) cannot be reached; the client retries."""
    return json_response(start_response, "503 Service Unavailable",
                         {"error": "the chat's message broker is unavailable; retrying"})


def read_form(environ):
    """The urlencoded request body (already buffered by the server) as a dict."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(min(length, MAX_FORM)) if length else b""
    fields = parse_qs(body.decode("utf-8", "replace"))
    return {key: values[-1] for key, values in fields.items()}


def application(environ, start_response):
    """The WSGI entry point: the page, or one of the JSON endpoints."""
    path = environ.get("PATH_INFO") or "/"
    method = environ["REQUEST_METHOD"]
    if path == "/" and method in ("GET", "HEAD"):
        with open(PAGE_PATH, "rb") as f:
            page = f.read()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(page)))])
        return [page]
    match = ROUTE.match(path)
    if match is None:
        return [json_response(start_response, "404 Not Found", {"error": "no such page"})]
    room_name, action = match.group("room"), match.group("action")
    if not ROOM_NAME.match(room_name):
        return [json_response(start_response, "400 Bad Request",
                              {"error": "a room name is 1-40 letters, digits, '-' or '_'"})]
    expected = "GET" if action in ("poll", "ws") else "POST"
    if method != expected:
        body = json.dumps({"error": f"use {expected}"}).encode()
        start_response("405 Method Not Allowed", [("Content-Type", "application/json"),
                                                  ("Content-Length", str(len(body))),
                                                  ("Allow", expected)])
        return [body]
    handler = {"join": join, "poll": poll, "say": say, "leave": leave, "ws": websocket}[action]
    return handler(environ, start_response, get_room(room_name))


def remove_client(room, client):
    """Unsubscribe ``client`` and tell the others; yields operations."""
    yield room.queue.unsubscribe(client)
    room.last_seen.pop(client, None)
    name = room.names.pop(client, None) or name_of(client) or "someone"
    if room.names:
        yield room.queue.publish(room.message("left", name))
    elif rooms.get(room.name) is room:
        del rooms[room.name]  # the last one left: forget the room


def expire(room):
    """Unsubscribe the clients of ``room`` that stopped polling; yields operations."""
    for client in room.stale_clients():
        yield from remove_client(room, client)


def join(environ, start_response, room):
    form = read_form(environ)
    name = (form.get("name") or "").strip()[:MAX_NAME] or "anonymous"
    if not is_shared(environ):
        yield from expire(room)
        room = get_room(room.name)  # expire() forgets a room whose members all left
    client = new_client_id(name)
    history = list(room.history)
    yield room.queue.subscribe(client)
    try:
        outcome(environ)
    except CogenError:  # the broker's Redis is unreachable (BrokerError)
        yield unavailable(start_response)
        return
    room.names[client] = name
    room.last_seen[client] = time.monotonic()
    yield room.queue.publish(room.message("joined", name))
    yield json_response(start_response, "200 OK", {"client": client, "room": room.name,
                                                   "history": history})


def poll(environ, start_response, room):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    client = query.get("client", [""])[-1]
    if client not in room.names and not is_shared(environ):
        yield json_response(start_response, "410 Gone", {"error": "not in this room; join again"})
        return
    room.last_seen[client] = time.monotonic()
    # Park this request until a message is published to the room, or time out.
    yield room.queue.fetch(client, timeout=POLL_TIMEOUT)
    try:
        messages = outcome(environ)
    except OperationTimeout:
        messages = []
    except NotSubscribedError:  # it left (or expired) while this poll waited
        yield json_response(start_response, "410 Gone", {"error": "not in this room; join again"})
        return
    except CogenError:  # the broker's Redis is unreachable (BrokerError)
        yield unavailable(start_response)
        return
    room.last_seen[client] = time.monotonic()
    yield json_response(start_response, "200 OK", {"messages": messages})


def say(environ, start_response, room):
    form = read_form(environ)
    client = form.get("client", "")
    text = (form.get("text") or "").strip()[:MAX_TEXT]
    shared = is_shared(environ)
    name = room.names.get(client) or (name_of(client) if shared else None)
    if name is None:
        yield json_response(start_response, "410 Gone", {"error": "not in this room; join again"})
        return
    if not text:
        yield json_response(start_response, "400 Bad Request", {"error": "say something"})
        return
    room.last_seen[client] = time.monotonic()
    if not shared:
        yield from expire(room)
    yield room.queue.publish(room.message("said", name, text))
    try:
        woken = outcome(environ)
    except CogenError:  # the broker's Redis is unreachable: not said
        yield unavailable(start_response)
        return
    yield json_response(start_response, "200 OK", {"woken": woken})


def leave(environ, start_response, room):
    client = read_form(environ).get("client", "")
    if client in room.names or (is_shared(environ) and name_of(client) is not None):
        yield from remove_client(room, client)
    yield json_response(start_response, "200 OK", {"left": True})


def websocket(environ, start_response, room):
    """The room over a WebSocket: published messages out, ``{"text": ...}`` in."""
    client = parse_qs(environ.get("QUERY_STRING", "")).get("client", [""])[-1]
    upgrade = environ["cogen"].websocket
    name = room.names.get(client) or (name_of(client) if is_shared(environ) else None)
    if not upgrade or name is None:
        status = "410 Gone" if upgrade else "400 Bad Request"
        return [json_response(start_response, status, {"error": "join first, then upgrade"})]
    return upgrade.serve(lambda ws: chat_socket(room, client, name, ws))


def chat_socket(room, client, name, ws):
    """One WebSocket client: a child coroutine forwards the room, this one reads the client."""
    from cogen.web.websocket import ConnectionClosed
    yield AddCoro(forward_room, args=(room, client, ws))
    while True:
        try:
            data = json.loads((yield ws.receive()))
            text = str(data.get("text", "")).strip()[:MAX_TEXT]
        except ConnectionClosed:
            break
        except (ValueError, AttributeError):
            continue  # not the JSON object the page sends: ignore it
        room.last_seen[client] = time.monotonic()
        if text:
            try:
                yield room.queue.publish(room.message("said", name, text))
            except CogenError:  # the broker's Redis is unreachable: not said
                yield ws.send(json.dumps({"error": "the chat's message broker is unavailable"}))
    # closing the socket leaves the room (and so ends forward_room)
    try:
        yield from remove_client(room, client)
    except CogenError:
        pass


def forward_room(room, client, ws):
    """Send the room's messages to the socket until the client leaves."""
    from cogen.core.events import Sleep
    from cogen.web.websocket import ConnectionClosed
    while not ws.closed:
        try:
            messages = yield room.queue.fetch(client, timeout=POLL_TIMEOUT)
        except OperationTimeout:
            room.last_seen[client] = time.monotonic()
            continue
        except NotSubscribedError:
            return
        except CogenError:  # the broker's Redis is unreachable: try again soon
            yield Sleep(1)
            continue
        room.last_seen[client] = time.monotonic()
        try:
            yield ws.send(json.dumps({"messages": messages}))
        except ConnectionClosed:
            return
