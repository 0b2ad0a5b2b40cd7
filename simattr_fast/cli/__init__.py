"""The `simattr` command line: one module per subcommand, `main` the entry point."""

from .main import main

__all__ = ["main"]
