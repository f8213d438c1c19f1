"""Options declared once: each field of a stage's options dataclass carries its default, its help text,
its CLI flag and whether it changes the output. The CLI builds its arguments from the fields, the KFP
components map their parameters with :func:`from_params`, and a parity test checks that every
component and pipeline parameter of the same name has the same default and description (KFP needs
literal signatures, so those stay written out, checked rather than generated).

    @dataclass(frozen=True)
    class ExportOptions:
        seed: int = option(42, "Seed of the grouped train/validation split.")

A new option then costs the field, the component and pipeline parameter lines, and nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any


def option(default: Any, help: str, *, flag: str | None = None, choices: Iterable[str] | None = None,
           changes_output: bool = True, cli: bool = True) -> Any:
    """A dataclass field with its help text. ``flag`` defaults to ``--name-with-dashes``;
    ``changes_output`` False marks settings (concurrency, timeouts, paths) that do not change what a
    run writes, so checkpoint keys and caches ignore them; ``cli`` False keeps it off the command line."""
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None,
                "changes_output": changes_output, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def described(options_cls: type) -> dict[str, dataclasses.Field]:
    """The fields of ``options_cls`` declared with :func:`option`, by name."""
    return {f.name: f for f in dataclasses.fields(options_cls) if "help" in f.metadata}


def output_settings(options: Any) -> dict[str, Any]:
    """The values of the settings that change the output (for checkpoint keys and cache fingerprints)."""
    return {name: getattr(options, name) for name, f in described(type(options)).items() if f.metadata["changes_output"]}


def _flag(field: dataclasses.Field) -> str:
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, options_cls: type) -> None:
    """One argument per described field: booleans that default to False are switches, those that
    default to True get a ``--no-`` switch; an empty-able text (default None) is an optional string."""
    for name, field in described(options_cls).items():
        if not field.metadata["cli"]:
            continue
        default, text = field.default, field.metadata["help"]
        if isinstance(default, bool):
            if default:
                flag = field.metadata["flag"] or "--no-" + name.replace("_", "-")
                parser.add_argument(flag, dest=name, action="store_false", help=f"{text} On by default: this flag turns it off.")
            else:
                parser.add_argument(_flag(field), dest=name, action="store_true", help=text)
            continue
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": f"{text} (default {default})" if default not in (None, "") else text}
        if default is not None:
            kwargs["type"] = type(default)
        if field.metadata["choices"]:
            kwargs["choices"] = field.metadata["choices"]
        parser.add_argument(_flag(field), **kwargs)


def from_args(options_cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The options object from parsed arguments (fields without a CLI flag keep their defaults)."""
    values = {name: getattr(args, name) for name in described(options_cls) if hasattr(args, name)}
    return options_cls(**{**values, **overrides})


def from_params(options_cls: type, params: Mapping[str, Any]) -> Any:
    """The options object from KFP component parameters of the same names. KFP has no None: an empty
    string stands for it where the field's default is None."""
    fields = described(options_cls)
    values = {}
    for name, value in params.items():
        if name not in fields:
            continue
        if value == "" and fields[name].default is None:
            value = None
        values[name] = value
    return options_cls(**values)


__all__ = ["add_arguments", "described", "from_args", "from_params", "option", "output_settings"]
