"""`simattr compare`: head-to-head support counts of two methods in a results store."""

from __future__ import annotations

from ..evaluation.store import SEARCH_CRITERIA
from .common import CliError, require_file


def add(sub):
    p = sub.add_parser("compare", help="head-to-head support counts of two methods in a results store")
    p.add_argument("--store", required=True)
    p.add_argument("--criterion", choices=SEARCH_CRITERIA, default="removal")
    p.add_argument("a", help="method name")
    p.add_argument("b", help="method name")
    p.set_defaults(func=compare_cmd)


def compare_cmd(args) -> int:
    from ..evaluation import ResultsStore, head_to_head, summarize

    with ResultsStore(require_file("--store", args.store), readonly=True) as st:
        sup, k = st.supports(args.criterion), st.max_k(args.criterion)
    for m in (args.a, args.b):
        if m not in sup:
            raise CliError(
                f"{m}: no finished {args.criterion} searches for this method in the store "
                f"(methods: {', '.join(sorted(sup)) or 'none'})"
            )
    h = head_to_head(sup[args.a], sup[args.b])
    print(
        f"{args.criterion} support on {h['n']} common test images: {args.a} smaller {h['a_smaller']}, "
        f"{args.b} smaller {h['b_smaller']}, ties {h['tie']}"
    )
    for m in (args.a, args.b):
        s = summarize(sup[m], k)
        print(f"  {m}: flipped {s['flipped']}/{s['n']}, median {s['median']}")
    return 0
