"""Tables, paired tests and plots of bench_quality.py's results (``quality.{md,json}``, PNGs).

Paired tests, every pair of methods on the same test images:
- LDS: Wilcoxon signed-rank test on the per-image LDS (two-sided).
- Supports: a sign test (two-sided binomial on wins against losses). A support is the number
  of top images that must be removed (relabelled) to flip the prediction, smaller is better; a
  search that does not flip within k is censored, i.e. worse than any flip, and two censored
  searches tie. Censoring is why we do not use a signed-rank test there.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from simattr_fast._io import write_text
from simattr_fast.evaluation import plot_cdf, summarize

CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


def models_per_method(store) -> dict:
    """``{method: {criterion: models}}`` and their summed training seconds, from the store."""
    out: dict = {}
    for _, method, criterion, _, _, _, _, wall in store.rows():
        d = out.setdefault(method, {"seconds": 0.0})
        d[criterion] = d.get(criterion, 0) + 1
        d["seconds"] += wall
    return out


def _value(s: int, k: int) -> int:
    return k + 1 if s < 0 else s  # censored: worse than every flip within k


def sign_test(a: dict, b: dict, k: int) -> dict:
    """Wins of a (smaller support), losses, ties and the two-sided p-value, on common images."""
    common = sorted(set(a) & set(b))
    va, vb = (np.array([_value(d[t], k) for t in common]) for d in (a, b))
    w, lo = int((va < vb).sum()), int((va > vb).sum())
    p = stats.binomtest(w, w + lo).pvalue if w + lo else 1.0
    return {"n": len(common), "wins": w, "losses": lo, "ties": len(common) - w - lo, "p": float(p)}


def wilcoxon(a, b) -> dict:
    """Two-sided Wilcoxon signed-rank test of per-image values a - b."""
    d = np.asarray(a) - np.asarray(b)
    if not np.any(d):
        return {"n": len(d), "mean_difference": 0.0, "p": 1.0}
    return {"n": len(d), "mean_difference": float(d.mean()), "p": float(stats.wilcoxon(a, b).pvalue)}


def paired(payload: dict, k: int) -> dict:
    names = list(payload["lds"])
    out: dict = {"lds": {}, "lds_centred": {}}
    for x, y in itertools.combinations(names, 2):
        for key in ("lds", "lds_centred"):
            out[key][f"{x} vs {y}"] = wilcoxon(payload[key][x]["per_test"], payload[key][y]["per_test"])
    for crit, sup in payload["supports"].items():
        out[crit] = {
            f"{x} vs {y}": sign_test(sup[x], sup[y], k)
            for x, y in itertools.combinations(names, 2)
            if x in sup and y in sup
        }
    return out


def per_class(payload: dict, k: int) -> dict:
    """Mean LDS and the fraction flipped within k, per class and method."""
    labels = payload["test_labels"]
    reported = list(labels)
    out: dict = {}
    for m, r in payload["lds"].items():
        per = dict(zip(reported, r["per_test"]))
        for c in range(10):
            ts = [t for t in reported if labels[t] == c]
            row = out.setdefault(m, {}).setdefault(CLASSES[c], {"lds": float(np.mean([per[t] for t in ts]))})
            for crit, sup in payload["supports"].items():
                have = [sup[m][t] for t in ts if t in sup.get(m, {})]
                row[crit] = float(np.mean([s >= 0 for s in have])) if have else None
    return out


def _fmt_p(p: float) -> str:
    return f"{p:.0e}" if p < 1e-3 else f"{p:.3f}"


def write(payload: dict, result: str, k: int) -> None:
    names = list(payload["lds"])
    payload["paired"], payload["per_class"] = paired(payload, k), per_class(payload, k)
    sums = {
        c: {m: summarize({int(t): s for t, s in sup[m].items()}, k) for m in sup}
        for c, sup in payload["supports"].items()
    }
    payload["support_summaries"] = sums
    md = [_model_table(payload), "", _main_table(payload, sums, k), "", _trak_table(payload)]
    for measure in ["lds", "lds_centred", *payload["supports"]]:
        md += ["", _pair_matrix(payload["paired"][measure], names, measure)]
    md += ["", _class_table(payload)]
    write_text(result + ".md", "\n".join(md) + "\n")
    for c, sup in payload["supports"].items():
        per = {m: {int(t): s for t, s in v.items()} for m, v in sup.items()}
        plot_cdf(per, k, f"{result}_{c}.png", title=f"{c} support, {len(next(iter(per.values())))} test images")
    _plot_lds(payload, result + "_lds.png")
    from simattr_fast._io import write_json

    write_json(result + ".json", payload)


def _model_table(p) -> str:
    m = p["model"]
    return (
        f"Evaluation model: PatchNet, {m['parameters']:,} trained parameters, test accuracy "
        f"{m['accuracy']:.4f} (sd {m['accuracy_sd']:.4f} over 5 seeds), {m['seconds_per_model']:.2f} s per model."
    )


def _main_table(p, sums, k) -> str:
    crits = list(p["supports"])
    head = "| method | LDS (95% CI) | LDS centred |" + "".join(
        f" {c}: flipped within {k} | median | CDF area |" for c in crits
    )
    head += " ranking cost: s (models) | support models |"
    rows = [head, "|" + "---|" * (5 + 3 * len(crits))]
    for m, r in p["lds"].items():
        c = p["lds_centred"][m]
        line = f"| {m} | {r['lds']:.3f} ({r['ci95'][0]:.3f} .. {r['ci95'][1]:.3f}) |"
        line += f" {c['lds']:.3f} ({c['ci95'][0]:.3f} .. {c['ci95'][1]:.3f}) |"
        for c in crits:
            s = sums[c].get(m)
            line += f" {s['flipped']}/{s['n']} | {s['median']} | {s['cdf_area']:.3f} |" if s else " - | - | - |"
        sec, trained = ranking_cost(p, m)
        mod = p["models"].get(m, {})
        line += f" {sec:.1f} ({trained}) |"
        line += f" {sum(v for key, v in mod.items() if key != 'seconds')} |"
        rows.append(line)
    return "\n".join(rows)


def ranking_cost(p, m) -> tuple[float, int]:
    """Seconds and models trained to produce ranking ``m``, the evaluation excluded: ours embed
    the images (the SimCLR backbone is a one-off per dataset, reported apart); the gradient
    methods train their checkpoint(s) and take gradients; TRAK xC trains and featurises C
    checkpoints (its grid search on the validation images is reported apart)."""
    s, per_model = p["seconds"], p["model"]["seconds_per_model"]
    if m in ("esvm", "cosine", "l2"):
        return s.get("embed_train", 0) + s.get("embed_targets", 0) + s.get(m, 0), 0
    if m in ("grad_dot", "grad_cos", "tracin"):
        return s.get(m, 0) + per_model, 1
    if m.startswith("trak_x"):
        c = int(m[len("trak_x") :])
        return sum(s.get(f"trak_features_{i}", 0) for i in range(c)) + c * per_model, c
    return 0.0, 0


def _trak_table(p) -> str:
    rows = [
        "TRAK settings chosen by validation LDS (20 images disjoint from the reported ones):",
        "",
        "| ranking | checkpoints | proj_dim | ridge (x trace/p) | validation LDS |",
        "|---|---|---|---|---|",
    ]
    for name, c in p["trak"]["chosen"].items():
        rows.append(f"| {name} | {c['checkpoints']} | {c['proj_dim']} | {c['ridge']:g} | {c['validation_lds']:.3f} |")
    return "\n".join(rows)


def _pair_matrix(pairs, names, measure) -> str:
    is_lds = measure.startswith("lds")
    what = "mean LDS difference (row - column), Wilcoxon p" if is_lds else "row wins-losses, sign-test p"
    rows = [f"Paired, {measure}: {what}.", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for x in names:
        cells = []
        for y in names:
            r, flip = pairs.get(f"{x} vs {y}"), False
            if r is None:
                r, flip = pairs.get(f"{y} vs {x}"), True
            if r is None:
                cells.append("")
            elif is_lds:
                d = -r["mean_difference"] if flip else r["mean_difference"]
                cells.append(f"{d:+.3f} ({_fmt_p(r['p'])})")
            else:
                w, lo = (r["losses"], r["wins"]) if flip else (r["wins"], r["losses"])
                cells.append(f"{w}-{lo} ({_fmt_p(r['p'])})")
        rows.append(f"| {x} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _class_table(p) -> str:
    names, crits = list(p["per_class"]), list(p["supports"])
    rows = [
        "Per class: mean LDS" + "".join(f" / {c} fraction flipped" for c in crits) + ".",
        "",
        "| class | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for c in CLASSES:
        cells = []
        for m in names:
            r = p["per_class"][m][c]
            cells.append(" / ".join([f"{r['lds']:.2f}"] + ["-" if r[x] is None else f"{r[x]:.1f}" for x in crits]))
        rows.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _plot_lds(p, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simattr_fast._io import atomic_write

    names = list(p["lds"])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.boxplot([p["lds"][m]["per_test"] for m in names], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("LDS per test image (Spearman)")
    ax.set_title(f"LDS, {len(p['test_labels'])} test images, {p['lds'][names[0]]['n_subsets']} subsets")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
