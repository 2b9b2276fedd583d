"""Process management for ``cogen-web``: pid file, log files, logging config, systemd sockets.

- :class:`PidFile` writes the serving (or master) process's id and removes
  the file on exit, if it still holds that id.
- :func:`log_handlers` builds the handlers of ``--error-logfile`` and
  ``--access-logfile``; :func:`reopen_log_files` reopens every file handler
  of the ``logging`` tree, which ``cogen-web`` does on SIGUSR1 so that
  logrotate can move the files away (its ``postrotate`` sends the signal).
- :func:`load_log_config` applies a ``--log-config`` file: a
  :func:`logging.config.dictConfig` dict as JSON or TOML, or a
  :func:`logging.config.fileConfig` ini file.
- :func:`systemd_sockets` returns the listening sockets systemd passed
  (socket activation: ``LISTEN_PID``/``LISTEN_FDS``, descriptors from 3 on,
  as sd_listen_fds(3) describes and gunicorn reads them).
"""
from __future__ import annotations

import json
import logging
import logging.config
import os
import socket
import sys
from collections.abc import Callable, MutableMapping

from cogen.errors import CogenError

__all__ = ["PidFile", "ProcessError", "load_log_config", "log_handlers", "reopen_log_files",
           "systemd_sockets", "write_pid_file"]

log = logging.getLogger("cogen.web")

#: The first descriptor systemd passes (SD_LISTEN_FDS_START).
_LISTEN_FDS_START = 3


class ProcessError(CogenError):
    """A process-management setting that cannot be applied (one line, naming the file)."""


class PidFile:
    """The file at ``path`` holding this process's id while it serves.

    :meth:`write` creates (or replaces) it; :meth:`remove` deletes it if it
    still holds the id written (a newer instance may have taken it over).
    Raises ProcessError when it cannot be written.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None

    def write(self) -> None:
        """Write the current process id, atomically (a temporary file renamed over it)."""
        pid = os.getpid()
        tmp = f"{self.path}.{pid}.tmp"
        try:
            with open(tmp, "w") as file:
                file.write(f"{pid}\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise ProcessError(f"cannot write the pid file {self.path!r}: "
                               f"{exc.strerror or exc}") from None
        self.pid = pid

    def remove(self) -> None:
        """Delete the file if it still holds the id :meth:`write` wrote."""
        if self.pid is None or self.pid != os.getpid():
            return  # not written, or a forked child's copy of the object
        try:
            with open(self.path) as file:
                if file.read().strip() != str(self.pid):
                    return
            os.unlink(self.path)
        except OSError:
            pass
        self.pid = None


def write_pid_file(path: str | None, cleanup: Callable[[], object]) -> PidFile | None:
    """Write this process's id to ``path`` if one is set; returns the PidFile (None if not).

    When it cannot be written, calls ``cleanup`` (closing what was opened
    for serving) and raises ``UsageError`` with ProcessError's one line.
    """
    if not path:
        return None
    pidfile = PidFile(path)
    try:
        pidfile.write()
    except ProcessError as exc:
        cleanup()
        from cogen.web.loader import UsageError
        raise UsageError(str(exc)) from None
    return pidfile


def _file_handler(path: str) -> logging.Handler:
    try:
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ProcessError(f"cannot open the log file {path!r}: {exc.strerror or exc}") from None


def log_handlers(error_logfile: str | None,
                 access_logfile: str | None) -> tuple[logging.Handler, logging.Handler]:
    """The (error, access) handlers: files where given (``-`` or None: stderr).

    Raises ProcessError naming a file that cannot be opened for appending.
    """
    error = (_file_handler(error_logfile) if error_logfile and error_logfile != "-"
             else logging.StreamHandler(sys.stderr))
    access = (_file_handler(access_logfile) if access_logfile and access_logfile != "-"
              else logging.StreamHandler(sys.stderr))
    return error, access


def _all_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    for item in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(item, logging.Logger):
            loggers.append(item)
    seen: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in list(logger.handlers):
            seen.setdefault(id(handler), handler)
    return list(seen.values())


def reopen_log_files() -> int:
    """Reopen every :class:`logging.FileHandler` of the logging tree; returns how many.

    Each file is opened again by name (for appending), so after logrotate
    renamed it the next line goes to a new file. A file that cannot be
    opened keeps its old stream, and the failure is logged.
    """
    count = 0
    for handler in _all_handlers():
        if not isinstance(handler, logging.FileHandler):
            continue
        try:
            stream = open(handler.baseFilename, "a", encoding=handler.encoding)
        except OSError as exc:
            log.error("cannot reopen the log file %r: %s", handler.baseFilename,
                      exc.strerror or exc)
            continue
        old = handler.setStream(stream)
        if old is not None:
            old.close()
        count += 1
    return count


def load_log_config(path: str) -> None:
    """Configure logging from ``path``: ``.json``/``.toml`` for dictConfig, else an ini file.

    Raises ProcessError (naming the file) when it cannot be read or applied.
    """
    try:
        if path.endswith((".json", ".toml")):
            if path.endswith(".json"):
                with open(path, encoding="utf-8") as file:
                    config = json.load(file)
            else:
                from cogen.web.config import toml_module
                with open(path, "rb") as file:
                    config = toml_module().load(file)
            config.setdefault("version", 1)
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        else:
            if not os.path.exists(path):
                raise FileNotFoundError(2, "No such file or directory")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except CogenError as exc:
        raise ProcessError(str(exc)) from None
    except OSError as exc:
        raise ProcessError(f"cannot read the logging configuration {path!r}: "
                           f"{exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001  (json, toml, configparser, dictConfig errors)
        raise ProcessError(f"bad logging configuration {path!r}: "
                           f"{type(exc).__name__}: {exc}".replace("\n", " ")) from None


def systemd_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed this process; [] if none.

    Reads ``LISTEN_PID`` (must be this process's id, else the variables are
    another process's and ignored) and ``LISTEN_FDS`` (how many descriptors,
    from 3 on), then removes both (and ``LISTEN_FDNAMES``) from the
    environment, so that child processes do not take them for theirs.
    Raises ProcessError if the variables are malformed or a descriptor is
    not a listening stream socket.
    """
    env = os.environ if environ is None else environ
    pid_text, fds_text = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    if pid_text is None or fds_text is None:
        return []
    try:
        pid, count = int(pid_text), int(fds_text)
    except ValueError:
        raise ProcessError(f"socket activation: bad LISTEN_PID={pid_text!r} or "
                           f"LISTEN_FDS={fds_text!r}") from None
    if pid != os.getpid():
        return []
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    sockets: list[socket.socket] = []
    for fd in range(_LISTEN_FDS_START, _LISTEN_FDS_START + count):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ProcessError(f"socket activation: descriptor {fd} is not a socket: "
                               f"{exc.strerror or exc}") from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET,
                                                                  socket.SO_ACCEPTCONN):
            sock.detach()
            raise ProcessError(f"socket activation: descriptor {fd} is not a listening "
                               f"stream socket")
        sockets.append(sock)
    return sockets
