"""User-facing errors.

Everything a user can get wrong (paths, columns, numbers out of range) raises a
subclass of :class:`UserInputError`. The CLI prints its message as one line and exits
with status 2. Messages state the rule, the value received and the fix, and never
contain report text.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user: a one-line message naming the problem and the fix."""


class DataError(UserInputError):
    """A data set on disk is missing, malformed or inconsistent."""


class ConfigError(UserInputError):
    """A trial or sweep configuration value breaks a rule."""


class ModelError(UserInputError):
    """A model folder is missing or cannot be loaded as a classifier."""


class PrivacyGuardError(RuntimeError):
    """A privacy invariant broke (q, σ or steps differ from what the ε was computed for).

    A bug, not bad input: raised instead of `assert`, which `python -O` removes.
    """
