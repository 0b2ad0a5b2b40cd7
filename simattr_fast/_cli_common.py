"""Shared by the `simattr` subcommands."""
import os


from ._backend import DEVICES  # noqa: F401 (the CLI offers what the API accepts)


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def require_file(option: str, path: str) -> str:
    """``path`` when it exists, else the one-line error naming the option."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{option}: no such file or folder {path!r}")
    return path
