"""Building the PEP 3333 environ of a request, and trusted proxy headers."""
from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import unquote

__all__ = ["ErrorStream", "ProxyRules", "decode_path", "header_key"]

# Header names seen before -> their environ keys: clients send the same dozen
# names on every request. The names come from clients, so the cache is
# bounded in entries and in name length (as NAME_CACHE in _http_common is);
# past the limit, a new name's key is computed on every use instead.
_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
KEY_CACHE_LIMIT = 1000
_KEY_NAME_LIMIT = 64


def header_key(name: str) -> str:
    """The environ key of a lower-case header name (``x-a`` → ``HTTP_X_A``)."""
    key = _KEYS.get(name)
    if key is None:
        key = "HTTP_" + name.upper().replace("-", "_")
        if len(name) <= _KEY_NAME_LIMIT and len(_KEYS) < KEY_CACHE_LIMIT:
            _KEYS[name] = key
    return key


def decode_path(path: str) -> str:
    """Percent-decode a raw path into a latin-1 native string (PEP 3333)."""
    if "%" not in path:
        return path
    return unquote(path, encoding="latin-1")


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


class ProxyRules:
    """Apply ``X-Forwarded-*`` and ``Forwarded`` headers from trusted peers only.

    ``trusted`` holds addresses or networks (``10.0.0.0/8``), or ``*`` for
    any peer. From a trusted peer: the client address is the right-most
    forwarded address that is not itself a trusted proxy; the scheme and
    host come from the proxy's headers. Everything else is ignored, so a
    client cannot spoof its address by sending the headers itself.
    """

    def __init__(self, trusted: list[str]) -> None:
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

    def __bool__(self) -> bool:
        return self.any or bool(self.nets)

    def is_trusted(self, addr: str) -> bool:
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
        """Rewrite REMOTE_ADDR, wsgi.url_scheme and HTTP_HOST of a request from a trusted peer."""
        if not self.is_trusted(environ.get("REMOTE_ADDR", "")):
            return
        fwd = environ.get("HTTP_FORWARDED")
        if fwd:
            hops = _parse_forwarded(fwd)
            chain = [h.get("for", "") for h in hops]
            proto = hops[-1].get("proto") if hops else None
            host = hops[-1].get("host") if hops else None
        else:
            chain = [p.strip() for p in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip() or None
            host = environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[-1].strip() or None
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
