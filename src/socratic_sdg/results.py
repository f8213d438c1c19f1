"""The one shape of what a stage's ``run`` returns.

Every stage is ``run(input, output_dir, options, *, progress) -> StageResult``. The result knows its
figures (:meth:`StageResult.metrics`, also written as the stage's ``*_metrics.json``) and says them in
words (:meth:`StageResult.summary_lines`), so the CLI prints and the KFP components log what the
result says instead of formatting figures of their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable

# The two argument types of every stage's run: where things are, and a callback for progress lines.
PathLike = str | os.PathLike[str]
Progress = Callable[[str], None]


class StageResult:
    """Base of the stages' result dataclasses."""

    def metrics(self) -> dict:
        raise NotImplementedError

    def summary_lines(self) -> list[str]:
        raise NotImplementedError

    def kfp_metrics(self) -> dict[str, float]:
        """The numeric metrics, flat (``metrics.log_metric(name, value)`` for each in a KFP component):
        a nested dict of numbers becomes ``key_subkey``; booleans are left out."""
        flat: dict[str, float] = {}
        for key, value in self.metrics().items():
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                flat[key] = value
            elif isinstance(value, dict):
                flat.update({f"{key}_{k}": v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return flat

    def log(self, metrics=None, say=print) -> None:
        """What a KFP component shows of the result: the summary in its log, the numbers on its
        ``Output[Metrics]`` artifact (anything with ``log_metric(name, value)``) when given."""
        if metrics is not None:
            for name, value in self.kfp_metrics().items():
                metrics.log_metric(name, value)
        for line in self.summary_lines():
            say(line)
