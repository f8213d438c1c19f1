"""A pipeline's run form (the parameters the OpenShift AI dashboard shows), declared as data.

Stage settings come from the stages' options fields (default and description, or the field's
``pipeline_default`` where a cluster wants another default), so the form cannot drift from the
library; the few parameters that are no stage option (the PVC, the Secret, paths on the PVC...) are
written here. :func:`pipeline_of_form` gives a pipeline body the signature and docstring KFP reads
(the compiled YAML is the form, in order), and :func:`given` passes a task the form's values for its
inputs by name, so a new option reaches a task without a line in the pipeline.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from socratic_sdg.options import parameters


@dataclass(frozen=True)
class FormField:
    name: str
    default: Any
    description: str


def parameter(name: str, default: Any, description: str) -> FormField:
    """A parameter that is no stage option."""
    return FormField(name, default, description)


def options(prefix: str, options_cls: type, *names: str) -> list[FormField]:
    """Stage options on the form as ``prefix + name``, with the field's default and help text."""
    fields = parameters(options_cls)
    out = []
    for name in names:
        field = fields[name]
        default = field.metadata.get("pipeline_default")
        default = field.default if default is None else default
        out.append(FormField(prefix + name, "" if default is None else default, field.help))  # KFP has no None
    return out


def pipeline_of_form(form: Iterable[FormField], summary: str, returns: Any) -> Callable:
    """Decorator: ``body(p)`` reads the form's values as ``p.<name>``; the pipeline function KFP sees
    takes them as parameters, in the form's order, documented with their descriptions."""
    form = list(form)

    def wrap(body: Callable) -> Callable:
        def pipeline(*values):
            return body(SimpleNamespace(**dict(zip((f.name for f in form), values))))

        pipeline.__name__ = pipeline.__qualname__ = body.__name__
        pipeline.__module__ = body.__module__
        pipeline.__signature__ = inspect.Signature(
            [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default, annotation=type(f.default)) for f in form],
            return_annotation=returns,
        )
        pipeline.__doc__ = summary + "\n\nArgs:\n" + "".join(f"    {f.name}: {f.description}\n" for f in form)
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
