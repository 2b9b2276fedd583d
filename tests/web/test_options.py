"""cogen/web/options.py: the typed, frozen server options and the table they come from."""
from __future__ import annotations

import dataclasses

import pytest

from cogen.web.options import OPTIONS, ServerOptions, resolve_options, resolve_server_options

pytestmark = pytest.mark.timeout(30)


def test_server_options_has_one_field_per_option_in_table_order() -> None:
    assert [f.name for f in dataclasses.fields(ServerOptions)] == [opt.name for opt in OPTIONS]


def test_resolved_server_options_are_the_table_defaults_by_attribute() -> None:
    opts = resolve_server_options({})
    for opt in OPTIONS:
        assert getattr(opts, opt.name) == opt.default, opt.name


def test_resolved_server_options_convert_strings_and_aliases_as_resolve_options() -> None:
    given = {"max_body": "10MB", "channel_timeout": "5", "trusted_proxy": "10.0.0.1, 10.0.0.2",
             "ident": "none"}
    opts = resolve_server_options(given)
    assert dataclasses.asdict(opts) == resolve_options(given)
    assert opts.max_body == 10 * 1024**2
    assert opts.keepalive_timeout == 5.0
    assert opts.trusted_proxy == ["10.0.0.1", "10.0.0.2"]
    assert opts.ident is None


def test_server_options_are_frozen() -> None:
    opts = resolve_server_options({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.max_body = 1  # type: ignore[misc]
    assert dataclasses.replace(opts, server_name="x").server_name == "x"


def test_a_bad_server_option_names_itself() -> None:
    with pytest.raises(TypeError, match="'nope'"):
        resolve_server_options({"nope": 1})
    with pytest.raises(ValueError, match="'max_body'"):
        resolve_server_options({"max_body": "lots"})
