"""Typed frozen specs read from a run's ConfigDict: each field read once, by its own name.

A spec's fields are config fields of the same names, so `--config.NAME=VALUE` and an error that
names NAME point at the same thing. Its defaults are the defaults of every run
(`bertjax.config.defaults` collects them); its constructor checks its own fields and raises a
one-line UserError naming the field and the fix, so code that takes a spec trusts it.
"""

import dataclasses
import difflib
import math
import numbers
import typing
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


# A config value's type against its field's (bool, int, float, str; others are checked by their
# spec): a config read from YAML, JSON or the environment gave "False" for packing (a str, true:
# packing trained) and "8" for batch_size (a TypeError traceback deep in a check).
_KINDS = {
    bool: ("True or False", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)),
    float: (  # inf or nan: a learning rate of inf trained NaN parameters and ended "Done."
        "a finite number",
        lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v),
    ),
    str: ("a string", lambda v: isinstance(v, str)),
}


def config_fields(cls, config: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """`config`'s values of dataclass `cls`'s fields (but `skip`), each of its field's type when
    that is bool, int, float or str: UserError naming the field otherwise."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in skip or field.name not in config:
            continue
        value = config[field.name]
        kind = _KINDS.get(hints.get(field.name))
        if kind and not kind[1](value):
            raise UserError(
                f"{field.name}={value!r} is not {kind[0]} (a {type(value).__name__}); set "
                f"--config.{field.name} to one"
            )
        values[field.name] = value
    return values


class ConfigSpec:
    """Mixin for frozen dataclasses whose fields are config fields of the same names."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> Self:
        """The spec of `config`'s fields of these names (absent ones keep their defaults), each
        of its field's type (`config_fields`)."""
        return cls(**{**config_fields(cls, config), **overrides})
