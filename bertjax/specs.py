"""Typed frozen specs read from a run's ConfigDict: each field read once, by its own name.

A spec's fields are config fields of the same names, so `--config.NAME=VALUE` and an error that
names NAME point at the same thing. Its defaults are the defaults of every run
(`bertjax.config.defaults` collects them); its constructor checks its own fields and raises a
one-line UserError naming the field and the fix, so code that takes a spec trusts it.
"""

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, Self

from bertjax.errors import UserError


def require(condition: bool, message: str) -> None:
    """Raises UserError(message) unless `condition`."""
    if not condition:
        raise UserError(message)


def require_known_fields(config: Mapping[str, Any], known, what: str) -> None:
    """UserError for the first field of `config` not in `known` (with the nearest known name):
    a typo in a config file would else be ignored and the run use the field's default. `what`
    names the config ("config", "fine-tuning config")."""
    unknown = sorted(name for name in config.keys() if name not in known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"the {what} has a field bertjax does not know, {unknown[0]!r}{hint}; fix or remove "
            "it in the --config file"
        )


class ConfigSpec:
    """Mixin for frozen dataclasses whose fields are config fields of the same names."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> Self:
        """The spec of `config`'s fields of these names (absent ones keep their defaults)."""
        names = [field.name for field in dataclasses.fields(cls)]
        kwargs = {name: config[name] for name in names if name in config}
        return cls(**{**kwargs, **overrides})
