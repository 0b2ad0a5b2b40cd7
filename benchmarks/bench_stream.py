"""Streaming topk over an ImageNet-sized float16 memmap: time and peak RSS, against the same
work on keys already in RAM.

    python benchmarks/bench_stream.py                       # 1,281,167 x 2048 keys (5.2 GB file)
    python benchmarks/bench_stream.py --nk 200000           # smaller
    python benchmarks/bench_stream.py --no-in-ram           # skip the in-RAM reference

Writes the key file once (reused on later runs when the size matches), then runs topk in a
fresh subprocess so that its peak RSS (ru_maxrss) measures the search alone. The target is
an RSS under 2 GB beyond the output (nq x k x 12 bytes). The reference, in a second fresh
subprocess, first loads the keys as float32 rows already normalised (4 x nk x d bytes of
RAM: 10.5 GB at full size) and then times the same search with metric="ip"; the target is
streaming within 1.5x of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def make_keys(path, nk, d, seed=0, chunk=65536):
    if os.path.exists(path):
        mm = np.load(path, mmap_mode="r")
        if mm.shape == (nk, d) and mm.dtype == np.float16:
            return
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path + ".part", mode="w+", dtype=np.float16, shape=(nk, d))
    for s in range(0, nk, chunk):
        e = min(nk, s + chunk)
        out[s:e] = np.abs(rng.standard_normal((e - s, d), dtype=np.float32))
    out.flush()
    del out
    os.replace(path + ".part", path)  # a half-written file never looks finished


def vm_hwm() -> int:
    """Peak RSS of this process in bytes (VmHWM: reset by exec, unlike ru_maxrss, which a
    child inherits from the parent that forked it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_normalised(keys, chunk=65536):
    """The memmapped keys as float32 rows of unit norm, in RAM, normalised as the streamed
    cosine search normalises each block."""
    from simattr_fast._kernels.stream import normalize_rows

    out = np.empty(keys.shape, np.float32)
    for s in range(0, len(keys), chunk):
        block = out[s : s + chunk]
        np.copyto(block, keys[s : s + chunk])
        normalize_rows(block, out=block)
    return out


def child(path, nq, k, block_mb, in_ram=False):
    import simattr_fast as sa

    keys = np.load(path, mmap_mode="r")
    metric = "cosine"
    if in_ram:
        keys, metric = load_normalised(keys), "ip"
    rng = np.random.default_rng(1)
    q = np.abs(rng.standard_normal((nq, keys.shape[1]), dtype=np.float32))
    if in_ram:
        from simattr_fast._kernels.stream import normalize_rows

        normalize_rows(q, out=q)
    base = vm_hwm()
    t = time.perf_counter()
    s, i = sa.topk(
        q,
        keys,
        k,
        metric=metric,
        device="cpu",
        progress=False,
        block_rows=int(block_mb * (1 << 20)) // (4 * keys.shape[1]),
    )
    dt = time.perf_counter() - t
    peak = vm_hwm()
    print(
        json.dumps(
            {
                "seconds": dt,
                "peak_rss": peak,
                "rss_before": base,
                "output_bytes": s.nbytes + i.nbytes,
                "first": int(i[0, 0]),
            }
        )
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nk", type=int, default=1_281_167)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--k", type=int, default=1280)
    ap.add_argument("--block-mb", type=float, default=64)
    ap.add_argument("--path", default="benchmarks/out/stream_keys.npy")
    ap.add_argument("--out", default="benchmarks/results/stream.json")
    ap.add_argument("--no-in-ram", dest="in_ram", action="store_false", help="skip the in-RAM reference")
    ap.add_argument("--child", choices=("stream", "in-ram"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a.path, a.nq, a.k, a.block_mb, in_ram=a.child == "in-ram")
    os.makedirs(os.path.dirname(a.path), exist_ok=True)
    t = time.perf_counter()
    make_keys(a.path, a.nk, a.d)
    print(
        f"keys ready: {a.nk} x {a.d} float16 ({os.path.getsize(a.path) / 1e9:.1f} GB) in {time.perf_counter() - t:.0f}s"
    )

    def run(mode):
        cmd = [sys.executable, __file__, "--child", mode, "--path", a.path, "--nq", str(a.nq), "--k", str(a.k)]
        r = subprocess.run(cmd + ["--block-mb", str(a.block_mb)], capture_output=True, text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])

    res = run("stream")
    beyond = (res["peak_rss"] - res["output_bytes"]) / 1e9
    print(
        f"streamed topk: {a.nq} queries x {a.nk} keys x d={a.d}, k={a.k}: {res['seconds']:.1f}s, "
        f"peak RSS {res['peak_rss'] / 1e9:.2f} GB (output {res['output_bytes'] / 1e6:.0f} MB; "
        f"{beyond:.2f} GB beyond it, incl. {res['rss_before'] / 1e9:.2f} GB of interpreter and libraries)"
    )
    if a.in_ram:
        ref = run("in-ram")
        res["in_ram_seconds"] = ref["seconds"]
        res["stream_over_in_ram"] = res["seconds"] / ref["seconds"]
        agree = ref["first"] == res["first"]
        print(
            f"same search on normalised float32 keys in RAM: {ref['seconds']:.1f}s; streaming costs "
            f"{res['stream_over_in_ram']:.2f}x (target: within 1.5x); first result agrees: {agree}"
        )
    from _common import machine, write_json

    write_json(a.out, {"args": {k: v for k, v in vars(a).items() if k != "child"}, "machine": machine(), **res})


if __name__ == "__main__":
    sys.exit(main())
