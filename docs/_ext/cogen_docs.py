"""Sphinx directives that generate parts of the cogen docs from the code.

``.. cogen-options::``
    The server options table, built from :data:`cogen.web.options.OPTIONS`
    (and the command's, :data:`cogen.web.options.COMMAND_OPTIONS`) at build
    time, so the docs cannot drift from the code: one table per option group,
    with the keyword (also the PasteDeploy key), the ``cogen-web`` flag, the
    default and the help text.

``.. cogen-option-aliases::``
    The other spellings of :data:`cogen.web.options.ALIASES`.

``.. cogen-automodules::``
    One ``automodule`` section per module named in the content, skipping
    (with a log line, not a warning) any module that does not import: an
    optional dependency that is not installed, or a module not written yet.

It also joins the lines of a Google-style argument entry that names several
parameters and wraps before its colon (``a, b,`` / ``c: text``), which
napoleon would otherwise read as two entries and docutils reject.
"""
from __future__ import annotations

import importlib
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

log = logging.getLogger(__name__)

_GROUP_TITLES = {
    "server": "Server",
    "limits": "Limits and timeouts",
    "logging": "Logging",
    "tls": "TLS",
    "compat": "Compatibility with the original cogen",
    "command": "The cogen-web command (settings, not WSGIServer keywords)",
    "process": "Process management (cogen-web)",
}


def _literal(text: str) -> str:
    """``text`` as an rst inline literal (backquotes cannot occur in option values)."""
    return f"``{text}``" if text else ""


def _size(value: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor} {unit}"
    return f"{value} bytes"


def format_default(opt: Any) -> str:
    """The default of an option, as rst."""
    from cogen.web import options as mod
    value = opt.default
    if opt.shown is not None:
        return _literal(opt.shown)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return _literal("true" if value else "false")
    if value == [] or value == ():
        return "none"
    if opt.convert is mod.as_seconds:
        return f"{value:g} s"
    if opt.convert is mod.as_size and isinstance(value, int):
        return f"{_literal(str(value))} ({_size(value)})" if value >= 1024 else _literal(str(value))
    return _literal(str(value))


def _escape(text: str) -> str:
    """Help text as rst: keep quoted names literal, escape markup characters."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def options_rst() -> list[str]:
    """The rst of the option tables."""
    from cogen.web.options import COMMAND_OPTIONS, OPTIONS
    groups: dict[str, list[Any]] = {}
    for opt in OPTIONS + COMMAND_OPTIONS:
        groups.setdefault(opt.group, []).append(opt)
    lines: list[str] = []
    for group, opts in groups.items():
        lines += [f".. rubric:: {_GROUP_TITLES.get(group, group.capitalize())}", ""]
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 22 26 14 38", "",
                  "   * - Keyword / ini key", "     - ``cogen-web`` flag", "     - Default",
                  "     - Meaning"]
        for opt in opts:
            metavar = f" {opt.metavar}" if opt.metavar else ""
            flag = f"``{opt.cli}{metavar}``" if opt.cli else "no flag"
            if opt.name == "app":
                flag = "the argument"
            lines += [f"   * - ``{opt.name}``", f"     - {flag}",
                      f"     - {format_default(opt)}", f"     - {_escape(opt.help)}"]
        lines.append("")
    return lines


class OptionsDirective(SphinxDirective):
    """``.. cogen-options::``: the server option tables."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(_module_file("cogen.web.options"))
        container = nodes.container()
        self.state.nested_parse(StringList(options_rst(), "cogen.web.options"), 0, container)
        return list(container.children)


class AliasesDirective(SphinxDirective):
    """``.. cogen-option-aliases::``: the alternative option names."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from cogen.web.options import ALIASES
        self.env.note_dependency(_module_file("cogen.web.options"))
        lines = [".. list-table::", "   :header-rows: 1", "", "   * - Also accepted",
                 "     - Means"]
        for alias, name in sorted(ALIASES.items()):
            lines += [f"   * - ``{alias}``", f"     - ``{name}``"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, "cogen.web.options"), 0, container)
        return list(container.children)


class AutomodulesDirective(SphinxDirective):
    """``.. cogen-automodules::``: an automodule section per importable module.

    Each content line is a module name, optionally followed by automodule
    options separated by ``;``, e.g.
    ``cogen.core.sockets :exclude-members: AF_INET, AF_INET6``.
    """

    has_content = True

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for entry in self.content:
            entry = entry.strip()
            if not entry:
                continue
            name, _, extra = entry.partition(" ")
            try:
                importlib.import_module(name)
            except ImportError as exc:  # not written yet, or an optional dependency missing
                log.info("cogen-automodules: skipping %s (%s: %s)", name, type(exc).__name__, exc)
                continue
            title = f"``{name}``"
            lines += [title, "-" * len(title), "", f".. automodule:: {name}"]
            lines += [f"   {opt.strip()}" for opt in extra.split(";") if opt.strip()]
            lines.append("")
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, self.env.docname), container)
        return list(container.children)


_NAMES_ONLY = re.compile(r"\s*\*{0,2}\w+(?:, \*{0,2}\w+)*,\Z")


def join_wrapped_names(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                       lines: list[str]) -> None:
    """``autodoc-process-docstring``: join ``a, b,`` with the next line of the same indent."""
    i = 0
    while i < len(lines) - 1:
        line, following = lines[i], lines[i + 1]
        indent = len(line) - len(line.lstrip())
        if _NAMES_ONLY.match(line) and following.strip() \
                and len(following) - len(following.lstrip()) == indent:
            lines[i:i + 2] = [line + " " + following.strip()]
            continue
        i += 1


def _module_file(name: str) -> str:
    module = importlib.import_module(name)
    return str(getattr(module, "__file__", "") or "")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cogen-options", OptionsDirective)
    app.add_directive("cogen-option-aliases", AliasesDirective)
    app.add_directive("cogen-automodules", AutomodulesDirective)
    # before napoleon (priority 500) turns "Args:" into fields
    app.connect("autodoc-process-docstring", join_wrapped_names, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
