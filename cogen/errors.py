"""The exception hierarchy shared by every part of cogen.

Every exception cogen raises on purpose derives from :class:`CogenError`, so
``except cogen.errors.CogenError`` catches them all. Each subclass says whose
fault the failure is: the remote peer's (a protocol violation, a broken
connection), ours (a local misuse) or the clock's (a timeout).
"""
from __future__ import annotations

__all__ = ["CogenError"]


class CogenError(Exception):
    """Base class of every exception that cogen raises on purpose."""
