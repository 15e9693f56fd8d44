#!/usr/bin/env python3
"""Summarises `cargo bench --bench format` from target/criterion as a table.

Prints GiB/s for the raw AEAD and for full-format seal/open per object size,
and the format's throughput as a fraction of the raw AEAD (1.00 = no
overhead). Usage: python3 benches/format_report.py [CRITERION_DIR]
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


def gibps(group, *parts):
    d = os.path.join(root, group, *parts, "new")
    try:
        est = json.load(open(os.path.join(d, "estimates.json")))
        bench = json.load(open(os.path.join(d, "benchmark.json")))
    except FileNotFoundError:
        return None
    nbytes = bench["throughput"]["Bytes"]
    return nbytes / est["mean"]["point_estimate"] * 1e9 / 2**30


rows = []
for alg in ["AES-256-GCM", "ChaCha20-Poly1305"]:
    peak = gibps("raw_aead", "in_place", alg)
    for size in ["64KiB", "256KiB", "1MiB", "16MiB"]:
        vals = [gibps(f"raw_seal_{alg}", size), gibps("seal", alg, size), gibps(f"raw_open_{alg}", size), gibps("open", alg, size)]
        if None in vals:
            continue
        rs, fs, ro, fo = vals
        rows.append((alg, size, rs, fs, fs / rs, ro, fo, fo / ro, peak))

if not rows:
    sys.exit(f"no criterion results under {root}; run: cargo bench --bench format")
print("| algorithm | object | raw seal | format seal | seal ratio | raw open | format open | open ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.2f} |")
print()
for alg in ["AES-256-GCM", "ChaCha20-Poly1305"]:
    peak = gibps("raw_aead", "in_place", alg)
    if peak:
        print(f"Peak {alg}, in place on one cache-hot 64 KiB buffer: {peak:.2f} GiB/s.")
print("Throughput in GiB/s on one core; ratio = format / raw on the same bytes, same run (1.00 = no overhead).")
