"""Building the PEP 3333 environ of a request, and trusted proxy headers."""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

__all__ = ["DEFAULT_TRUSTED_HEADERS", "HEADER_KEYS", "PROXY_HEADERS", "ErrorStream", "ProxyRules",
           "check_proxy_headers", "decode_path", "head_environ", "header_key",
           "request_environ"]

# Header names seen before -> their environ keys: clients send the same dozen
# names on every request. The names come from clients, so the cache is
# bounded in entries and in name length (as NAME_CACHE in cogen.web.http._common is);
# past the limit, a new name's key is computed on every use instead.
HEADER_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
KEY_CACHE_LIMIT = 1000
_KEY_NAME_LIMIT = 64


def header_key(name: str) -> str:
    """The environ key of a lower-case header name (``x-a`` → ``HTTP_X_A``)."""
    key = HEADER_KEYS.get(name)
    if key is None:
        key = "HTTP_" + name.upper().replace("-", "_")
        if len(name) <= _KEY_NAME_LIMIT and len(HEADER_KEYS) < KEY_CACHE_LIMIT:
            HEADER_KEYS[name] = key
    return key


def decode_path(path: str) -> str:
    """Percent-decode a raw path into a latin-1 native string (PEP 3333)."""
    if "%" not in path:
        return path
    return unquote(path, encoding="latin-1")


def request_environ(base: dict[str, Any], head: Any, peer: tuple[str, str | int], prefix: str,
                    proxies: ProxyRules, entry: list[Any] | None = None) -> dict[str, Any] | None:
    """The PEP 3333 environ of one request, from the server's ``base`` and the parsed ``head``.

    ``peer`` is ``(address, port)``, the port an int or text (both empty
    text on a Unix socket);
    ``prefix`` the server's ``url_prefix`` without its trailing slash (it is
    SCRIPT_NAME, already in ``base``). Repeated header fields are joined
    (``, ``; ``; `` for Cookie, RFC 9110 §5.3), and the trusted proxy rules
    applied. The body keys (``wsgi.input``, ``CONTENT_LENGTH`` for a chunked
    body) and the gate are the caller's. Returns None when the path is not
    under ``prefix``: the request gets a 404.

    ``entry`` is the head's entry in the server's head cache, ``[head,
    keys]``: the keys made from the head alone (:func:`head_environ`) are
    kept there as ``keys`` and copied from it by the next request with the
    same head. They are never changed once kept: each request changes its
    own copy.
    """
    keys = entry[1] if entry is not None else None
    if keys is None:
        keys = head_environ(head, prefix)
        if keys is None:
            return None
        if entry is not None:
            entry[1] = keys
    environ = base.copy()
    environ.update(keys)
    environ["REMOTE_ADDR"] = peer[0]
    environ["REMOTE_PORT"] = str(peer[1])
    if proxies.is_active:
        proxies.apply(environ)
    return environ


def head_environ(head: Any, prefix: str) -> dict[str, str] | None:
    """The environ keys that come from the request head alone (None: not under ``prefix``).

    REQUEST_METHOD, QUERY_STRING, SERVER_PROTOCOL, REQUEST_URI, RAW_URI,
    PATH_INFO (decoded, ``prefix`` stripped) and the HTTP_* and CONTENT_*
    keys of the header fields (see :func:`request_environ`).
    """
    environ: dict[str, str] = {
        "REQUEST_METHOD": head.method,
        "QUERY_STRING": head.query,
        "SERVER_PROTOCOL": "HTTP/1.1" if head.version[1] else "HTTP/1.0",
        "REQUEST_URI": head.target,
        "RAW_URI": head.target,
    }
    path = head.path
    if "%" in path:
        path = unquote(path, encoding="latin-1")
    elif path == "*":
        # OPTIONS * (asterisk-form) names no resource: PATH_INFO must be
        # empty or start with '/' (PEP 3333, CGI); REQUEST_URI keeps '*'.
        path = ""
    if prefix:
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix):]
        else:
            return None
    environ["PATH_INFO"] = path
    keys = HEADER_KEYS
    for name, value in head.headers:
        key = keys.get(name) or header_key(name)
        if key in environ:
            if key[0] == "H":  # HTTP_*: join repeated fields (RFC 9110 §5.3)
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
                continue
        environ[key] = value
    if head.host is not None:
        environ["HTTP_HOST"] = head.host
    return environ


class ErrorStream:
    """``wsgi.errors``: what the app writes goes to the ``cogen.web.error`` logger."""

    def __init__(self) -> None:
        self._log = logging.getLogger("cogen.web.error")
        self._partial = ""

    def write(self, text: str) -> int:
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            self._log.error("%s", line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            self._log.error("%s", self._partial)
            self._partial = ""


#: The proxy headers cogen knows, by their lower-case names.
PROXY_HEADERS: tuple[str, ...] = ("forwarded", "x-forwarded-for", "x-forwarded-host",
                                  "x-forwarded-proto", "x-forwarded-port")
#: The headers trusted by default: those nginx sets with the documented config.
DEFAULT_TRUSTED_HEADERS: tuple[str, ...] = ("x-forwarded-for", "x-forwarded-host",
                                            "x-forwarded-proto")
_PROXY_KEYS = {name: "HTTP_" + name.upper().replace("-", "_") for name in PROXY_HEADERS}


def check_proxy_headers(headers: Iterable[str]) -> tuple[str, ...]:
    """The lower-cased header names, checked; raises ValueError naming a bad one.

    ``forwarded`` cannot be trusted together with an ``x-forwarded-*``
    header (as in waitress): a proxy that sets one kind passes the client's
    copy of the other on.
    """
    names = tuple(h.strip().lower() for h in headers)
    for name in names:
        if name not in _PROXY_KEYS:
            raise ValueError(f"unknown proxy header {name!r}: want some of {', '.join(PROXY_HEADERS)}")
    if "forwarded" in names and len(set(names)) > 1:
        raise ValueError("the Forwarded header and the X-Forwarded-* headers cannot both be "
                         "trusted: a proxy sets one kind and passes the client's other on")
    return names


class ProxyRules:
    """Apply the trusted proxy headers of trusted peers, and clear the others.

    Args:
        trusted: addresses or networks (``10.0.0.0/8``) of the proxies,
            ``unix`` for peers on a Unix socket, or ``*`` for any peer.
        headers: which of :data:`PROXY_HEADERS` a trusted proxy sets (and
            so overwrites whatever the client sent); the default is
            :data:`DEFAULT_TRUSTED_HEADERS` (see :func:`check_proxy_headers`).
        clear_untrusted: delete from the environ every proxy header that is
            not trusted for this request (all of them from a peer that is
            not a trusted proxy), so that an app reading them directly is
            not spoofed. None (the default) means: when ``trusted`` is set.

    From a trusted peer the client address is the right-most forwarded
    address that is not itself a trusted proxy; the scheme, host and port
    come from the last value of their headers. Raises ValueError naming a
    bad address or header.
    """

    def __init__(self, trusted: list[str], headers: Iterable[str] | None = None,
                 clear_untrusted: bool | None = None) -> None:
        self.any = "*" in trusted
        self.nets: list[str | ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in trusted:
            if item == "*":
                continue
            if item.startswith("unix"):
                self.nets.append("unix")
                continue
            try:
                self.nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"invalid trusted proxy address {item!r}") from None
        names = DEFAULT_TRUSTED_HEADERS if headers is None else check_proxy_headers(headers)
        self.headers = frozenset(names)
        self.clear_untrusted = bool(self) if clear_untrusted is None else clear_untrusted
        #: environ keys deleted from a trusted peer's request / any other request
        self._clear_trusted = tuple(_PROXY_KEYS[n] for n in PROXY_HEADERS if n not in self.headers)
        self._clear_untrusted = tuple(_PROXY_KEYS.values())

        #: whether :meth:`apply` has anything to do
        self.is_active = bool(self) or self.clear_untrusted

    def __bool__(self) -> bool:
        return self.any or bool(self.nets)

    def is_trusted(self, addr: str) -> bool:
        """Whether a peer address (``''`` for a Unix socket peer) is a trusted proxy."""
        if self.any:
            return True
        if not addr:
            return "unix" in self.nets
        try:
            ip = ipaddress.ip_address(addr.split("%", 1)[0])
        except ValueError:
            return False
        return any(not isinstance(net, str) and ip in net for net in self.nets)

    def apply(self, environ: dict[str, Any]) -> None:
        """Rewrite REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST and SERVER_PORT of a request.

        Only the trusted headers of a trusted peer count; the other proxy
        headers are deleted when :attr:`clear_untrusted` is on.
        """
        if not (self and self.is_trusted(environ.get("REMOTE_ADDR", ""))):
            if self.clear_untrusted:
                for key in self._clear_untrusted:
                    environ.pop(key, None)
            return
        trusted = self.headers
        chain: list[str] = []
        proto = host = port = None
        if "forwarded" in trusted:
            fwd = environ.get("HTTP_FORWARDED")
            if fwd:
                hops = _parse_forwarded(fwd)
                chain = [h.get("for", "") for h in hops]
                proto = hops[-1].get("proto")
                host = hops[-1].get("host")
        else:
            if "x-forwarded-for" in trusted:
                chain = [p.strip() for p in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")
                         if p.strip()]
            if "x-forwarded-proto" in trusted:
                proto = _last(environ.get("HTTP_X_FORWARDED_PROTO"))
            if "x-forwarded-host" in trusted:
                host = _last(environ.get("HTTP_X_FORWARDED_HOST"))
            if "x-forwarded-port" in trusted:
                port = _last(environ.get("HTTP_X_FORWARDED_PORT"))
        if self.clear_untrusted:
            for key in self._clear_trusted:
                environ.pop(key, None)
        client = None
        for addr in reversed(chain):
            addr = _strip_port(addr)
            client = addr
            if not self.is_trusted(addr):
                break
        if client:
            environ["REMOTE_ADDR"] = client
            environ.pop("REMOTE_PORT", None)
        if proto and proto.lower() in ("http", "https"):
            environ["wsgi.url_scheme"] = proto.lower()
        if host and all(c.isalnum() or c in ".-:[]_" for c in host):
            environ["HTTP_HOST"] = host
        if port and port.isdigit() and 0 < int(port) < 65536:
            environ["SERVER_PORT"] = str(int(port))


def _last(value: str | None) -> str | None:
    """The last of a comma-separated header value (the one the nearest proxy added)."""
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def _strip_port(addr: str) -> str:
    addr = addr.strip().strip('"')
    if addr.startswith("["):
        return addr[1:addr.find("]")] if "]" in addr else addr
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


def _parse_forwarded(value: str) -> list[dict[str, str]]:
    hops = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            if "=" in pair:
                k, v = pair.split("=", 1)
                pairs[k.strip().lower()] = v.strip().strip('"')
        hops.append(pairs)
    return hops


ERRORS = ErrorStream()
