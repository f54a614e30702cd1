"""Speed, size and memory of run-file recording, against a plain h5py reference.

Every row records step records of the 32-edge Gen-2 lattice (4 sources, 2 targets) in its
own process, so that its peak resident memory is its own:

- ``twinrig``: ``RunWriter.step`` with the default settings (flush every 4,096 records or
  every second, whichever comes first), flushes and the final close included;
- ``twinrig-flush-N``: the same, flushed every N records, the cadence of a run of N steps a
  second (``flush_s`` = 1 s): what it costs, and the space that SWMR mode cannot reuse
  when the partly filled last chunk is rewritten (see docs/run-file.md, "Size on disk");
- ``lzf``, ``uncompressed``: the default row with another filter in place of gzip level 1
  with shuffle (the choice this measures);
- ``reference``: plain h5py, one ``resize`` and one write per dataset and record, the same
  datasets, SWMR, a flush every second (the simplest append-only writer).

Columns: records per second (close included), microseconds per record, the ratio to the
reference, bytes of file per record, and the peak resident memory after 100,000 records and
at the end (flat: the writer's memory does not grow with the records).

    python benchmarks/bench_runfile.py           # 1,000,000 records a row (reference: 20,000)
    python benchmarks/bench_runfile.py --quick   # 200,000 records a row
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hostctl.runfile as runfile  # noqa: E402
import hostctl.runschema as runschema  # noqa: E402  (where the datasets' filter is read)

S, T, E = 4, 2, 32
ROWS = {
    # name: (writer, compression, records per flush or None for the defaults)
    "twinrig": ("twinrig", "gzip", None),
    "twinrig-flush-1000": ("twinrig", "gzip", 1000),
    "twinrig-flush-100": ("twinrig", "gzip", 100),
    "lzf": ("twinrig", "lzf", None),
    "uncompressed": ("twinrig", "none", None),
    "reference": ("reference", "gzip", None),
}
FILTERS = {
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "lzf": {"compression": "lzf"},
    "none": {},
}
TARGET_PER_S = 50_000


def data(n_samples: int = 150, seed: int = 0):
    """A training set's worth of realistic rows: inputs repeat, outputs carry noise."""
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0.0, 0.5, (n_samples, S))
    desired = rng.uniform(0.1, 0.4, (n_samples, T))
    free = desired + rng.normal(0.0, 0.01, (n_samples, T))
    return inputs, free, free + 0.1 * (desired - free), desired


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_twinrig(path: Path, n: int, per_flush: int | None) -> dict:
    inputs, free, clamps, desired = data()
    kw = {} if per_flush is None else {"buffer_rows": per_flush, "flush_s": float("inf")}
    w = runfile.RunWriter(path, n_sources=S, n_targets=T, n_edges=E, metadata={}, provenance={}, **kw)
    k = len(inputs)
    mark = None
    t0 = time.perf_counter()
    for i in range(n):
        j = i % k
        w.step(i, i // k, j, inputs[j], free[j], clamps[j], desired[j], 1e-3, True)
        if i + 1 == 100_000:
            mark = peak_mib()
    w.close()
    return {"seconds": time.perf_counter() - t0, "peak_100k": mark}


def run_reference(path: Path, n: int) -> dict:
    """Plain h5py: every record resizes every dataset by one row and writes it."""
    import h5py

    inputs, free, clamps, desired = data()
    f = h5py.File(path, "w", libver="latest")
    cols = {"step": ((), "i8"), "epoch": ((), "i8"), "sample": ((), "i8"), "error": ((), "f8"),
            "learned": ((), "u1"), "t_s": ((), "f8"), "inputs": ((S,), "f8"), "free_outputs": ((T,), "f8"),
            "clamps": ((T,), "f8"), "targets": ((T,), "f8")}
    ds = []
    for name, (shape, dtype) in cols.items():
        rows = max(1, runfile.CHUNK_BYTES // (8 * int(np.prod(shape, dtype=int))))
        ds.append(f.create_dataset(name, (0,) + shape, maxshape=(None,) + shape, chunks=(rows,) + shape,
                                   dtype=dtype, shuffle=True, **FILTERS["gzip"]))
    f.swmr_mode = True
    k = len(inputs)
    t0 = last = time.perf_counter()
    for i in range(n):
        j = i % k
        row = (i, i // k, j, 1e-3, 1, time.perf_counter() - t0, inputs[j], free[j], clamps[j], desired[j])
        for d, v in zip(ds, row):
            d.resize(i + 1, axis=0)
            d[i] = v
        if time.perf_counter() - last >= 1.0:
            f.flush()
            last = time.perf_counter()
    f.close()
    return {"seconds": time.perf_counter() - t0, "peak_100k": None}


def child(name: str, n: int) -> dict:
    kind, compression, per_flush = ROWS[name]
    runschema._COMPRESSION = FILTERS[compression]  # the filter under test, for this process only
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        out = run_reference(path, n) if kind == "reference" else run_twinrig(path, n, per_flush)
        out["bytes"] = path.stat().st_size
    out.update(n=n, peak_end=peak_mib())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200,000 records a row")
    ap.add_argument("--rows", nargs="*", choices=list(ROWS), default=list(ROWS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("-n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    n_rows = 200_000 if args.quick else 1_000_000
    results = {}
    for name in args.rows:
        n = min(n_rows, 20_000) if name == "reference" else n_rows
        done = subprocess.run([sys.executable, __file__, "--child", name, "-n", str(n)], capture_output=True,
                              text=True, check=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        results[name] = json.loads(done.stdout)
    ref = results.get("reference")
    ref_rate = ref["n"] / ref["seconds"] if ref else float("nan")
    head = (f"{'row':<20}{'records':>10}{'records/s':>12}{'us/rec':>8}{'ratio':>8}{'B/rec':>8}"
            f"{'MiB@100k':>10}{'MiB end':>9}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        rate = r["n"] / r["seconds"]
        at_100k = "" if r["peak_100k"] is None else f"{r['peak_100k']:.0f}"
        print(f"{name:<20}{r['n']:>10,}{rate:>12,.0f}{1e6 / rate:>8.1f}{rate / ref_rate:>7.1f}x"
              f"{r['bytes'] / r['n']:>8.1f}{at_100k:>10}{r['peak_end']:>9.0f}")
    if "twinrig" in results:
        r = results["twinrig"]
        rate = r["n"] / r["seconds"]
        verdict = "met" if rate >= TARGET_PER_S else "NOT met"
        print(f"\ntarget >= {TARGET_PER_S:,} records/s with flushes: {rate:,.0f} ({verdict})")


if __name__ == "__main__":
    main()
