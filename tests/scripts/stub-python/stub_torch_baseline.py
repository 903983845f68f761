#!/usr/bin/env python3
"""Stands in for bench/torch_baseline.py where PyTorch is a stub (the CPU-as-device
run of scripts/rehearse-device-check.sh, tests/scripts/test_device_check.sh:
scripts/device-check.sh runs it when BENCH_BASELINE names it). Takes the
baseline's options and prints a report in its JSON shape, every time 1 ms and
the loss 1, so bench/compare.sh can make its table. Its version says stub: no
ratio in that table means anything."""

import argparse
import json

parser = argparse.ArgumentParser()
for option in ("--device", "--size", "--threads", "--precision", "--repeats", "--warmup",
               "--iterations-lbfgs", "--lbfgs-repeats", "--weights"):
    parser.add_argument(option)
args, _ = parser.parse_known_args()
sizes = [int(s) for s in (args.size or "256").split(",") if s]
samples = [1.0] * max(1, int(args.repeats or 1))
summary = {"median": 1.0, "min": 1.0, "max": 1.0, "samples": samples}
print(json.dumps({
    "tool": "stub_torch_baseline",
    "version": "0.0+stub (no PyTorch: times and loss are placeholders)",
    "device": args.device,
    "precision": args.precision,
    "threads": int(args.threads or 1),
    "weights": args.weights or "generated",
    "results": [{"size": s, "width": s, "height": s, "backend": "stub", "loss": 1.0,
                 "evaluation_ms": summary, "lbfgs_iteration_ms": summary, "max_rss_bytes": 0}
                for s in sizes],
}, indent=2))
