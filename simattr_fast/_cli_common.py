"""Shared by the `simattr` subcommands."""

DEVICES = ("auto", "cpu", "cuda")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
