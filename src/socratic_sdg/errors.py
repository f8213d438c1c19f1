"""The one base of every error a user causes and can fix.

Each stage raises its own subclass (ConvertError, GenerateError, ...) with one sentence that names the
input and the fix; the CLI prints any :class:`SocraticSdgError` as that one line and exits 2, and a
KFP component lets it fail the task with the same sentence. Code errors stay ordinary exceptions with
their tracebacks.
"""


class SocraticSdgError(Exception):
    """A problem with the user's input, configuration or environment, described in one sentence."""


class OptionsError(SocraticSdgError, ValueError):
    """An option with a value outside its range (the message names the option and what it accepts)."""
