"""A pipeline's run form (the parameters the OpenShift AI dashboard shows), declared as data.

Stage settings come from the stages' options fields (default and description, or the field's
``pipeline_default`` where a cluster wants another default), so the form cannot drift from the
library; the few parameters that are no stage option (the PVC, the Secret, paths on the PVC...) are
written here. :func:`pipeline_of_form` gives a pipeline body the signature and docstring KFP reads
(the compiled YAML is the form), and :func:`given` passes a task the form's values for its inputs by
name, so a new option reaches a task without a line in the pipeline.

Names: the code, the command line and ``submit`` use short names (``pvc_name``, ``generate_model``);
the compiled pipeline's root parameters are dashboard names (``phase_00_cluster_man_pvc_name``,
``phase_03_generate_opt_model``). KFP stores root parameters in a map, so the dashboard lists them
sorted by name: ``phase_NN_<stage>_<man|opt>_<setting>`` sorts into pipeline order, the settings a
user must set or check ("man") before the options ("opt") of each stage. The scheme of
opendatahub-io/pipelines-components, which OpenShift AI's own training pipelines follow.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from socratic_sdg.options import parameters


# The form's sections in pipeline order: what every task mounts or reads, then the stages.
PHASES = ("cluster", "convert", "chunk", "generate", "filter", "export")
_DASHBOARD_NAME = re.compile(r"phase_(\d{2})_([a-z]+)_(man|opt)_(\w+)")


@dataclass(frozen=True)
class FormField:
    name: str  # the short name: <stage>_<setting> (generate_model), or a cluster setting (pvc_name)
    default: Any
    description: str
    must_set: bool = False  # set or checked before the stage's options: "man" in the dashboard name

    @property
    def phase(self) -> str:
        stage = self.name.split("_", 1)[0]
        return stage if stage in PHASES else "cluster"

    @property
    def dashboard_name(self) -> str:
        """The root parameter's name: phase_NN_<stage>_<man|opt>_<setting> (see the module docstring)."""
        setting = self.name if self.phase == "cluster" else self.name.removeprefix(self.phase + "_")
        return f"{phase_prefix(self.phase)}{'man' if self.must_set else 'opt'}_{setting}"


def phase_prefix(phase: str) -> str:
    """What every dashboard name of a form section starts with: phase_03_generate_ for generate."""
    return f"phase_{PHASES.index(phase):02d}_{phase}_"


def short_name(name: str) -> str:
    """The short name of a dashboard name (phase_03_generate_opt_model -> generate_model); any other name
    as it is, so a pipeline compiled before the scheme still resolves."""
    match = _DASHBOARD_NAME.fullmatch(name)
    if match is None:
        return name
    _, phase, _, setting = match.groups()
    return setting if phase == "cluster" else f"{phase}_{setting}"


def parameter(name: str, default: Any, description: str, must_set: bool = False) -> FormField:
    """A parameter that is no stage option."""
    return FormField(name, default, description, must_set)


def options(prefix: str, options_cls: type, *names: str, must_set: bool = False) -> list[FormField]:
    """Stage options on the form as ``prefix + name``, with the field's default and help text."""
    fields = parameters(options_cls)
    out = []
    for name in names:
        field = fields[name]
        default = field.metadata.get("pipeline_default")
        default = field.default if default is None else default
        out.append(FormField(prefix + name, "" if default is None else default, field.help, must_set))  # KFP has no None
    return out


def check_order(form: list[FormField]) -> None:
    """The dashboard sorts the form by name: a field declared out of that order would show elsewhere."""
    names = [f.dashboard_name for f in form]
    for before, after in zip(names, names[1:]):
        if before >= after:
            raise ValueError(f"the form is out of dashboard order: {before} is declared before {after}; "
                             "declare the fields sorted by dashboard name")


def arguments(form: Iterable[FormField], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` by short name, keyed by dashboard name: to call a pipeline of the form from code."""
    names = {f.name: f.dashboard_name for f in form}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise TypeError(f"no parameter {', '.join(unknown)} on the form")
    return {names[name]: value for name, value in values.items()}


def pipeline_of_form(form: Iterable[FormField], summary: str, returns: Any) -> Callable:
    """Decorator: ``body(p)`` reads the form's values as ``p.<short name>``; the pipeline function KFP
    sees takes them as parameters named by their dashboard names, in the form's order (which must be
    theirs sorted), documented with their descriptions."""
    form = list(form)
    check_order(form)

    def wrap(body: Callable) -> Callable:
        def pipeline(*values):
            return body(SimpleNamespace(**dict(zip((f.name for f in form), values))))

        pipeline.__name__ = pipeline.__qualname__ = body.__name__
        pipeline.__module__ = body.__module__
        pipeline.__signature__ = inspect.Signature(
            [inspect.Parameter(f.dashboard_name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default, annotation=type(f.default))
             for f in form],
            return_annotation=returns,
        )
        pipeline.__doc__ = summary + "\n\nArgs:\n" + "".join(f"    {f.dashboard_name}: {f.description}\n" for f in form)
        return pipeline

    return wrap


def given(p: SimpleNamespace, component, *prefixes: str) -> dict[str, Any]:
    """The form's values for ``component``'s inputs: input ``x`` gets ``<prefix>x`` (the first prefix the
    form has it under)."""
    values = vars(p)
    out = {}
    for name in component.component_spec.inputs:
        for prefix in prefixes:
            if prefix + name in values:
                out[name] = values[prefix + name]
                break
    return out
