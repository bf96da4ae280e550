#!/usr/bin/env python3
"""Prints the Markdown table of BENCHMARKS.md from criterion's results.

Run after `cargo bench --bench kernels`:

    python3 scripts/benchmarks_table.py [CRITERION_DIR] [--card h100|h200|lavapipe-epyc]

Reads CRITERION_DIR/<group>/<id>/new/ (default target/criterion): the median time and the
throughput each benchmark declares (FLOPs for compute kernels, bytes for pooling), and prints one
row per benchmark. With --card, a last column gives the fraction of that card's peak: f32
FLOP/s without tensor cores, or memory bandwidth for the byte-counted benchmarks.
"""
import json
import pathlib
import sys

# Benchmarks whose throughput counts bytes rather than floating-point operations.
BYTE_GROUPS = {"max_pool2d_forward"}

# (f32 GFLOP/s, GB/s) of the cards measured. H100 SXM and H200: NVIDIA's data sheets, f32
# without tensor cores. lavapipe on 2 cores of an AMD EPYC (Zen 3) at 2.45 GHz: 2 FMA units x 8
# lanes x 2 FLOPs per core and cycle; its memory bandwidth is not known here.
PEAKS = {
    "h100": (66900.0, 3350.0),
    "h200": (66900.0, 4800.0),
    "lavapipe-epyc": (157.0, None),
}

args = [a for a in sys.argv[1:]]
card = None
if "--card" in args:
    at = args.index("--card")
    card = args[at + 1].lower()
    del args[at : at + 2]
    if card not in PEAKS:
        sys.exit(f"--card {card}: the known cards are {', '.join(PEAKS)}")
root = pathlib.Path(args[0] if args else "target/criterion")
rows = []
for bench in sorted(root.glob("*/*/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    estimates = json.loads((bench.parent / "estimates.json").read_text())
    median_ns = estimates["median"]["point_estimate"]
    low = estimates["median"]["confidence_interval"]["lower_bound"]
    high = estimates["median"]["confidence_interval"]["upper_bound"]
    work = (meta.get("throughput") or {}).get("Elements")
    group, ident = meta["group_id"], meta["function_id"]
    fraction = "n/a"
    if work is None:
        rate = "n/a"
    else:
        per_s = work / median_ns  # G per second
        bytes_counted = group in BYTE_GROUPS
        rate = f"{per_s:.2f} GB/s" if bytes_counted else f"{per_s:.2f} GFLOP/s"
        if card:
            peak = PEAKS[card][1 if bytes_counted else 0]
            if peak:
                fraction = f"{100 * per_s / peak:.1f} %"
    row = [f"{group}/{ident}", f"{median_ns / 1e6:.2f} ms", f"{low / 1e6:.2f} to {high / 1e6:.2f} ms", rate]
    if card:
        row.append(fraction)
    rows.append(row)

header = ["benchmark", "median time", "95% interval of the median", "throughput"]
if card:
    header.append(f"fraction of {card}'s peak")
print("| " + " | ".join(header) + " |")
print("|" + " --- |" * len(header))
for row in rows:
    print("| " + " | ".join(row) + " |")
