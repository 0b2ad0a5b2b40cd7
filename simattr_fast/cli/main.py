"""The `simattr` command line.

    simattr demo [--out DIR]                                  the whole pipeline on digits
    simattr train-ssl --dataset NAME|PATH --out DIR ...       SimCLR backbone for small images
    simattr embed --dataset NAME|PATH --checkpoint FILE --out DIR ...
    simattr attribute --train DIR --test DIR --out FILE ...   rankings -> attribution file
    simattr report --attribution FILE --out FILE.html ...     self-contained HTML report
    simattr evaluate removal|mislabel|lds --attribution FILE... --store DB --out DIR ...
    simattr compare --store DB A B                            head-to-head support counts
    simattr duplicates --train DIR [--test DIR] --out DIR     near-duplicates and leakage
    simattr label-errors --train DIR --out FILE.csv           suspected label errors

Errors are one line on stderr and a non-zero exit status (2), never a traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import zipfile

from .._io import InputTypeError
from . import attribute, compare, demo, duplicates, embed, evaluate, label_errors, report, train_ssl
from .common import CliError

# What a user can cause: printed as one line, exit status 2. A TypeError or KeyError from our
# own code is a bug and is not caught here, so that it surfaces with its traceback.
USER_ERRORS = (
    CliError,
    ValueError,  # includes FileFormatError, StoreError
    InputTypeError,
    RuntimeError,
    OSError,  # includes DiskFullError, FileNotFoundError
    sqlite3.DatabaseError,
    zipfile.BadZipFile,
    MemoryError,
)

# One module per subcommand, in the order `simattr --help` lists them.
SUBCOMMANDS = (demo, train_ssl, embed, attribute, report, evaluate, compare, duplicates, label_errors)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simattr", description="Similarity-based data attribution for image classifiers.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, MemoryError):
            msg = f"out of memory ({msg}); use smaller inputs, a smaller k, or more memory"
        print(f"simattr {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"simattr {args.command}: interrupted", file=sys.stderr)
        return 130
