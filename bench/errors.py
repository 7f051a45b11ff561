"""Errors a user can cause. They end a run with one clear line and exit code 2."""


class UserError(Exception):
    """A mistake in the user's input or environment, with the fix in the message."""

    exit_code = 2
