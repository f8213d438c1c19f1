"""Options declared once: each field of a stage's options dataclass carries its default, its help text,
its CLI flag and whether it changes the output. The CLI builds its arguments from the fields, the KFP
components map their parameters with :func:`from_params`, checkpoint keys and cache fingerprints
come from :func:`output_settings`, and a parity test checks that every component and pipeline
parameter of the same name has the same default and description (KFP needs literal signatures, so
those stay written out, checked rather than generated).

    @dataclass(frozen=True)
    class ExportOptions:
        seed: int = option(42, "Seed of the grouped train/validation split.")

Options nest: :func:`group` holds another options object (``FilterOptions.judge: JudgeOptions | None``),
whose fields are flat parameters and flags named with the group's prefix (``judge_model``,
``--judge-model``), so KFP and the CLI stay flat while the code passes whole objects around. A new
option then costs the field, the component and pipeline parameter lines, and nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import OptionsError


def option(default: Any, help: str, *, flag: str | tuple[str, ...] | None = None, choices: Iterable[str] | None = None, changes_output: bool | str = True,
           cli: bool = True, kfp: bool = True, parse: Callable[[Any], Any] | None = None, metavar: str | None = None,
           repeat: bool = False, pipeline_default: Any = None) -> Any:
    """A dataclass field with its help text. ``flag`` defaults to ``--name-with-dashes`` (for a switch
    that is on by default, it names the switch that turns it off); ``changes_output`` False marks
    settings (concurrency, timeouts, paths) that do not change what a run writes, so checkpoint keys
    and caches ignore them, and ``"rows"`` marks settings that choose which inputs a run takes
    (``max_chunks``, the shard) without changing what any one of them gives; ``cli`` False keeps it off the command line, ``kfp`` False says it is no
    KFP parameter by design (the parity test then does not look for it); ``parse`` turns the text a
    CLI flag or KFP parameter gives into the field's value (JSON, a file path...); ``repeat`` makes a
    flag that may be given several times (its values are parsed as one list); ``pipeline_default`` is
    the default of the pipeline parameter when a cluster wants another one (None: the same)."""
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None, "changes_output": changes_output,
                "cli": cli, "kfp": kfp, "parse": parse, "metavar": metavar, "repeat": repeat,
                "pipeline_default": pipeline_default}
    return dataclasses.field(default=default, metadata=metadata)


def group(options_cls: type, help: str, *, prefix: str = "", switch: str | None = None, enabled: bool = True,
          implied_by: Iterable[str] = ()) -> Any:
    """A field holding a nested options object. Its fields are flat parameters named ``prefix + name``.
    With ``switch`` (the name of a boolean parameter) the group is optional: None when the switch is
    off, unless one of the fields named in ``implied_by`` is given (a judge endpoint switches the
    judge on); ``enabled`` is the switch's default."""
    metadata = {"group": options_cls, "help": help, "prefix": prefix, "switch": switch, "enabled": enabled,
                "implied_by": tuple(implied_by)}
    if switch and not enabled:
        return dataclasses.field(default=None, metadata=metadata)
    return dataclasses.field(default_factory=options_cls, metadata=metadata)


class Parameter(NamedTuple):
    """One flat parameter of an options class: a field, or the switch of an optional group."""

    name: str  # the flat name: prefix + field name
    default: Any
    help: str
    metadata: Mapping[str, Any]
    switch: bool = False


def parameters(options_cls: type, prefix: str = "") -> dict[str, Parameter]:
    """Every flat parameter of ``options_cls`` (nested groups included), by flat name."""
    out: dict[str, Parameter] = {}
    for f in dataclasses.fields(options_cls):
        meta = f.metadata
        if "group" in meta:
            if meta["switch"]:
                name = prefix + meta["switch"]
                switch_meta = {"help": meta["help"], "flag": None, "changes_output": True, "cli": True, "kfp": True}
                out[name] = Parameter(name, meta["enabled"], meta["help"], switch_meta, switch=True)
            for name, parameter in parameters(meta["group"], prefix + meta["prefix"]).items():
                if name in out:
                    raise TypeError(f"{options_cls.__name__}: parameter {name} is declared twice")
                out[name] = parameter
        elif "help" in meta:
            out[prefix + f.name] = Parameter(prefix + f.name, f.default, meta["help"], meta)
    return out


def _walk(options: Any, prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    for f in dataclasses.fields(options):
        meta, value = f.metadata, getattr(options, f.name)
        if "group" in meta:
            if meta["switch"]:
                yield prefix + meta["switch"], {"changes_output": True}, value is not None
            if value is not None:
                yield from _walk(value, prefix + meta["prefix"])
        elif "help" in meta:
            yield prefix + f.name, meta, value


def output_settings(options: Any, *, rows: bool = True) -> dict[str, Any]:
    """The values of the settings that change the output, flat (for checkpoint keys and cache
    fingerprints); ``rows`` False leaves out those that only choose which inputs a run takes (a
    resumed run may take more of them)."""
    return {name: value for name, meta, value in _walk(options) if meta["changes_output"] and (rows or meta["changes_output"] != "rows")}


def _flags(name: str, meta: Mapping[str, Any]) -> tuple[str, ...]:
    flag = meta.get("flag") or "--" + name.replace("_", "-")
    return (flag,) if isinstance(flag, str) else tuple(flag)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, options_cls: type, prefix: str = "",
                  skip: Iterable[str] = (), defaults: Mapping[str, Any] | None = None) -> None:
    """One argument per flat parameter: booleans that default to False are switches, those that
    default to True get a ``--no-`` switch; an empty-able text (default None) is an optional string.
    A nested group gets an argument group of its own (titled with its help) on a parser. ``skip``
    leaves parameters out; ``defaults`` gives other defaults for this command (by flat name)."""
    skip, defaults = set(skip), dict(defaults or {})
    for f in dataclasses.fields(options_cls):
        meta = f.metadata
        if "group" in meta:
            target = parser
            if isinstance(parser, argparse.ArgumentParser):
                target = parser.add_argument_group(meta["help"].rstrip("."))
            if meta["switch"] and prefix + meta["switch"] not in skip:
                _add_bool(target, prefix + meta["switch"], defaults.get(prefix + meta["switch"], meta["enabled"]), meta["help"], {"flag": None})
            add_arguments(target, meta["group"], prefix + meta["prefix"], skip, defaults)
            continue
        name = prefix + f.name
        if "help" not in meta or not meta["cli"] or name in skip:
            continue
        default, text = defaults.get(name, f.default), meta["help"]
        if isinstance(default, bool):
            _add_bool(parser, name, default, text, meta)
            continue
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": f"{text} (default {default})" if default not in (None, "") else text}
        if meta["repeat"]:
            kwargs.update(action="append", default=None)
        elif default is not None and not meta["parse"]:
            kwargs["type"] = type(default)
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*_flags(name, meta), **kwargs)


def _add_bool(parser, name: str, default: bool, text: str, meta: Mapping[str, Any]) -> None:
    if default:
        flags = _flags(name, meta) if meta.get("flag") else ("--no-" + name.replace("_", "-"),)
        parser.add_argument(*flags, dest=name, action="store_false", default=True, help=f"{text} On by default: this flag turns it off.")
    else:
        parser.add_argument(*_flags(name, meta), dest=name, action="store_true", default=False, help=text)


def _build(options_cls: type, values: Mapping[str, Any], prefix: str, kfp: bool) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(options_cls):
        meta = f.metadata
        if "group" in meta:
            sub = prefix + meta["prefix"]
            if meta["switch"]:
                switch = prefix + meta["switch"]
                implied = any(values.get(sub + name) not in (None, "", [], ()) for name in meta["implied_by"])
                if not (values.get(switch, meta["enabled"]) or implied):
                    kwargs[f.name] = None
                    continue
            kwargs[f.name] = _build(meta["group"], values, sub, kfp)
            continue
        name = prefix + f.name
        if "help" not in meta or name not in values:
            continue
        value = values[name]
        if kfp and value == "" and f.default is None:
            value = None  # KFP has no None: an empty string stands for it
        if value is not None and meta["parse"] and (isinstance(value, str) or meta["repeat"]):
            value = meta["parse"](value)
        kwargs[f.name] = value
    return options_cls(**kwargs)


def from_args(options_cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The options object from parsed arguments (parameters without a CLI flag keep their defaults).
    ``overrides`` are flat parameter values that win over the arguments."""
    return _build(options_cls, {**vars(args), **overrides}, "", kfp=False)


def from_params(options_cls: type, params: Mapping[str, Any], **overrides: Any) -> Any:
    """The options object from KFP component parameters of the same (flat) names; names that are no
    parameter of ``options_cls`` are ignored, so a component can pass ``locals()``."""
    return _build(options_cls, {**params, **overrides}, "", kfp=True)


@dataclass(frozen=True)
class Shard:
    """One of ``num_shards`` tasks a stage is fanned out to: it takes the inputs at positions
    ``shard_index``, ``shard_index + num_shards``, ..."""

    shard_index: int = option(0, "This task's shard: the inputs at positions shard_index, shard_index + num_shards, ... (0-based).", changes_output="rows")
    num_shards: int = option(
        1, "Tasks the stage is fanned out to, each on every num_shards-th input, merged back in input order; run-wide budgets are split among them.",
        changes_output="rows")

    def __post_init__(self) -> None:
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise OptionsError(f"shard_index must be in 0..num_shards-1, got shard {self.shard_index} of {self.num_shards}")

    def takes(self, position: int) -> bool:
        return position % self.num_shards == self.shard_index


__all__ = ["Parameter", "Shard", "add_arguments", "from_args", "from_params", "group", "option", "output_settings", "parameters"]
