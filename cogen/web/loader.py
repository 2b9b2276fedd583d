"""Loading the WSGI application named ``MODULE:APP``, and the error for bad input.

The ``cogen-web`` command, its prefork workers and PasteDeploy's ``app``
entry point all load the app here; :class:`UsageError` is how each of them
reports input it cannot use (one line, exit status 2 on the command line).
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["UsageError", "load_app"]


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2.

    ``details``, if not empty, is printed after that line: the traceback of
    an app that failed while being imported or made (that failure is also
    the exception's ``__cause__``).
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _is_missing(exc: ImportError, module_name: str) -> bool:
    """True if ``exc`` says ``module_name`` itself (or a package of its path) does not exist."""
    name = exc.name
    return isinstance(exc, ModuleNotFoundError) and name is not None and (
        name == module_name or module_name.startswith(name + "."))


def _app_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without the frames of this module and of the import machinery."""
    info = traceback.TracebackException.from_exception(exc)
    importlib_init = os.path.join("importlib", "__init__.py")
    info.stack = traceback.StackSummary.from_list([
        frame for frame in info.stack
        if frame.filename != __file__ and not frame.filename.startswith("<frozen importlib")
        and not frame.filename.endswith(importlib_init)])
    return "".join(info.format())


def load_app(spec: str, call: bool = False) -> Callable[..., Any]:
    """Import ``module:attribute`` (the current directory first on sys.path).

    The attribute defaults to ``application``; a trailing ``()``
    (``app:make_app()``), like ``call=True``, calls it without arguments to
    get the application. Raises UsageError with a one-line reason when it
    cannot (and, when the app's own code failed, its traceback as ``details``).
    """
    module_name, sep, attr_path = spec.partition(":")
    if attr_path.endswith("()"):
        attr_path, call = attr_path[:-2], True
    if not module_name or not attr_path and sep:
        raise UsageError(f"invalid application {spec!r}: want MODULE:APP, e.g. myapp:application")
    attr_path = attr_path or "application"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if not _is_missing(exc, module_name):
            raise UsageError(f"importing module {module_name!r} failed: "
                             f"{type(exc).__name__}: {exc}", _app_traceback(exc)) from exc
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (any failure of the app's import is reported)
        raise UsageError(f"importing module {module_name!r} failed: "
                         f"{type(exc).__name__}: {exc}", _app_traceback(exc)) from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if call:
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001  (as for the import)
            raise UsageError(f"calling {module_name}:{attr_path}() failed: "
                             f"{type(exc).__name__}: {exc}", _app_traceback(exc)) from exc
    if not callable(obj):
        raise UsageError(f"{spec} is not callable (got {type(obj).__name__}); "
                         f"use --call if it is a factory")
    app: Callable[..., Any] = obj
    return app
