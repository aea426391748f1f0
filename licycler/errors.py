"""Errors a user can cause (bad input, bad files) as distinct from bugs.

The CLI prints a :class:`UserError` as one or two lines and exits with its ``exit_status``; any
other exception is a bug and is reported with a traceback only under ``--verbose``.
"""

from __future__ import annotations

__all__ = ["EXIT_USAGE", "UserError"]

EXIT_USAGE = 2
"""Exit status for a user mistake on the command line or in an input file."""


class UserError(Exception):
    """A mistake in what the user gave: says what and where, in one or two lines."""

    exit_status: int = EXIT_USAGE
