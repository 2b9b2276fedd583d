"""Settings from the command line, the environment and a config file, in one order.

Every option of :data:`cogen.web.options.OPTIONS` (the server's) and of
:data:`cogen.web.options.COMMAND_OPTIONS` (the ``cogen-web`` command's) can
be set three ways besides its default, and the first that sets it wins:

1. the command line (``--workers 4``);
2. the environment: ``COGEN_WEB_`` and the option's name in capitals
   (``COGEN_WEB_WORKERS=4``, ``COGEN_WEB_MAX_BODY=10MB``);
3. the TOML file named by ``--config`` or ``COGEN_WEB_CONFIG``, whose
   top-level keys are the option names (``workers = 4``,
   ``max_body = "10MB"``; dashes may stand for underscores).

Values from the environment are text and go through the option's converter,
as on the command line; TOML values may be text or of the option's type.
A bad value, or an unknown name under the ``COGEN_WEB_`` prefix or in the
file, raises :class:`ConfigError` with one line naming the source and the
option.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import Any

from cogen.errors import CogenError
from cogen.web.options import (
    ALIASES,
    COMMAND_OPTIONS,
    ENV_PREFIX,
    OPTIONS,
    Option,
)

__all__ = ["CommandSettings", "ConfigError", "SETTABLE", "from_environ", "read_config", "settle",
           "toml_module"]

#: Options that the environment and the file can set: all but the ones that
#: hold Python objects (``ssl_context``) or would name the file itself.
SETTABLE: dict[str, Option] = {
    opt.name: opt for opt in OPTIONS + COMMAND_OPTIONS if opt.name != "ssl_context"
}
_NOT_IN_FILE = {"config"}


class ConfigError(CogenError, ValueError):
    """A bad setting from the environment or a config file (one line, naming both)."""


@dataclasses.dataclass(frozen=True)
class CommandSettings:
    """The ``cogen-web`` command's own settings (:data:`~cogen.web.options.COMMAND_OPTIONS`), resolved.

    One field per command option, of the type its converter gives; read by
    attribute. :meth:`from_values` picks them from every option's value
    (:func:`cogen.web.cli.settings_from`), :meth:`defaults` gives the
    options' defaults.
    """

    app: str | None
    call: bool
    config: str | None
    host: str
    port: int
    bind: list[str]
    workers: int
    graceful_timeout: float | None
    log_level: str
    pid: str | None
    access_logfile: str | None
    error_logfile: str | None
    log_config: str | None
    blocked_loop_warning: float | None
    stats_path: str | None
    timeout: float | None
    max_requests: int
    max_requests_jitter: int
    reload: bool

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> CommandSettings:
        """The command options among ``values`` (option name to converted value); others ignored.

        Raises KeyError naming a command option that ``values`` lacks.
        """
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)})

    @classmethod
    def defaults(cls) -> CommandSettings:
        """Every command option at its default."""
        return cls.from_values({opt.name: opt.default for opt in COMMAND_OPTIONS})


def from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``COGEN_WEB_*`` variables of ``environ``, by option name (values as given).

    Raises:
        ConfigError: a ``COGEN_WEB_`` variable names no option.
    """
    found: dict[str, str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        name = ALIASES.get(name, name)
        if name not in SETTABLE:
            raise ConfigError(f"environment {key}: no such option (cogen-web --help lists them)")
        found[name] = value
    return found


def toml_module() -> Any:
    """The TOML reader: :mod:`tomllib`, or tomli on Python 3.10 (ConfigError if it is missing)."""
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    try:
        import tomli  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError("reading a TOML file on Python 3.10 needs the tomli package: "
                          "pip install 'cogen[config]'") from None
    return tomli


def read_config(path: str) -> dict[str, Any]:
    """The settings of the TOML file at ``path``, by option name.

    Raises:
        ConfigError: the file cannot be read or parsed, a key names no
            option, or a value is a table.
    """
    toml = toml_module()
    try:
        with open(path, "rb") as file:
            data = toml.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path!r}: {exc.strerror or exc}") from None
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None
    found: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        name = ALIASES.get(name, name)
        if name not in SETTABLE or name in _NOT_IN_FILE:
            raise ConfigError(f"config file {path!r}: no such option {key!r}")
        if isinstance(value, dict):
            raise ConfigError(f"config file {path!r}: option {key!r} is a table; "
                              f"options are top-level keys")
        found[name] = value
    return found


def settle(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None,
           config_path: str | None = None) -> dict[str, Any]:
    """The options set by any source: command line, else environment, else file.

    Args:
        cli: the options given on the command line, already converted (the
            command line reports its own errors, naming its flags).
        environ: the environment (``os.environ`` if None).
        config_path: the TOML file, if any (else ``COGEN_WEB_CONFIG``'s).
    Returns:
        option name to converted value, for the options some source sets
        (the others keep their defaults, which the caller knows).
    Raises:
        ConfigError: naming the source and the option.
    """
    env = from_environ(os.environ if environ is None else environ)
    path = config_path if config_path is not None else env.get("config")
    from_file = read_config(path) if path else {}
    values: dict[str, Any] = {}
    for name, opt in SETTABLE.items():
        if name in cli:
            values[name] = cli[name]
        elif name in env:
            values[name] = _convert(opt, env[name], f"environment {opt.env}={env[name]!r}")
        elif name in from_file:
            values[name] = _convert(opt, from_file[name],
                                    f"config file {path!r}: option {name!r}")
    return values


def _convert(opt: Option, value: Any, where: str) -> Any:
    if isinstance(value, list) and opt.convert.__name__ not in ("as_list", "as_proxy_headers"):
        raise ConfigError(f"{where}: expected one value, got a list")
    try:
        return opt.convert(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
