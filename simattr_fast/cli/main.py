"""The `simattr` command line.

    simattr demo [--out DIR]                                  the whole pipeline on digits
    simattr train-ssl --dataset NAME|PATH --out DIR ...       SimCLR backbone for small images
    simattr embed --dataset NAME|PATH --checkpoint FILE --out DIR ...
    simattr attribute --train DIR --test DIR --out FILE ...   rankings -> attribution file
    simattr report --attribution FILE --out FILE.html ...     self-contained HTML report
    simattr evaluate removal|mislabel|lds --attribution FILE... --store DB --out DIR ...
    simattr compare --store DB A B                            head-to-head support counts

Errors are one line on stderr and a non-zero exit status (2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import attribute, compare, demo, embed, evaluate, report, train_ssl
from .common import CliError

# One module per subcommand, in the order `simattr --help` lists them.
SUBCOMMANDS = (demo, train_ssl, embed, attribute, report, evaluate, compare)


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
    except (CliError, ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"simattr {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"simattr {args.command}: interrupted", file=sys.stderr)
        return 130
