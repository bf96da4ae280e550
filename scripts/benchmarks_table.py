#!/usr/bin/env python3
"""Prints the Markdown table of BENCHMARKS.md from criterion's results.

Run after `cargo bench --bench kernels`. Reads target/criterion/<group>/<id>/new/ (the median
time and the throughput each benchmark declares: FLOPs for compute kernels, bytes for pooling)
and prints one row per benchmark.
"""
import json
import pathlib
import sys

# Benchmarks whose throughput counts bytes rather than floating-point operations.
BYTE_GROUPS = {"max_pool2d_forward"}

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = []
for bench in sorted(root.glob("*/*/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    estimates = json.loads((bench.parent / "estimates.json").read_text())
    median_ns = estimates["median"]["point_estimate"]
    low = estimates["median"]["confidence_interval"]["lower_bound"]
    high = estimates["median"]["confidence_interval"]["upper_bound"]
    work = (meta.get("throughput") or {}).get("Elements")
    group, ident = meta["group_id"], meta["function_id"]
    if work is None:
        rate = "n/a"
    elif group in BYTE_GROUPS:
        rate = f"{work / median_ns:.2f} GB/s"
    else:
        rate = f"{work / median_ns:.2f} GFLOP/s"
    rows.append((f"{group}/{ident}", f"{median_ns / 1e6:.2f} ms", f"{low / 1e6:.2f} to {high / 1e6:.2f} ms", rate))

print("| benchmark | median time | 95% interval of the median | throughput |")
print("| --- | --- | --- | --- |")
for row in rows:
    print("| " + " | ".join(row) + " |")
