#!/usr/bin/env bash
# Runs nst-bench and the PyTorch baseline one after the other on this machine,
# with the same sizes, threads (default: nproc), device and inputs, and prints
# a table of their median times with the ratio torch / nst (above 1: nst is
# faster). Builds nothing: give it a build folder where nst-bench is built.
#
#   bench/compare.sh BUILD_DIR [--device cpu|cuda] [--sizes 256,512] [--threads N]
#                    [--precision fp32|tf32] [--repeats R] [--warmup W]
#                    [--iterations-lbfgs K] [--lbfgs-repeats L] [--weights FILE]
#                    [--rounds N] [--out DIR]
#
# --rounds N alternates the two programs N times (nst, torch, nst, torch, ...)
# and pools their samples, so a machine whose load changes during the run
# weighs on both alike. The JSON reports are kept in --out (default: a new
# temporary folder) as nst.K.json and torch.K.json.
# PYTHON selects the interpreter for the baseline (default /usr/bin/python3).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 1 && $1 != -* ]] || usage
build_dir=$1; shift
device=cpu sizes=256 threads=$(nproc) precision=tf32 repeats=10 warmup=2 lbfgs_iterations=10
lbfgs_repeats=3 weights="" out="" rounds=1
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case $1 in
        --device) device=$2 ;;
        --sizes|--size) sizes=$2 ;;
        --threads) threads=$2 ;;
        --precision) precision=$2 ;;
        --repeats) repeats=$2 ;;
        --warmup) warmup=$2 ;;
        --iterations-lbfgs) lbfgs_iterations=$2 ;;
        --lbfgs-repeats) lbfgs_repeats=$2 ;;
        --weights) weights=$2 ;;
        --out) out=$2 ;;
        --rounds) rounds=$2 ;;
        *) usage ;;
    esac
    shift 2
done

bench="$build_dir/apps/nst-bench"
[[ -x $bench ]] || { echo "compare.sh: $bench not found: build the nst-bench target first" >&2; exit 2; }
python=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z $out ]]; then out=$(mktemp -d "${TMPDIR:-/tmp}/nst-compare.XXXXXX"); fi
mkdir -p "$out"

common=(--device "$device" --size "$sizes" --threads "$threads" --precision "$precision"
        --repeats "$repeats" --warmup "$warmup" --iterations-lbfgs "$lbfgs_iterations"
        --lbfgs-repeats "$lbfgs_repeats")
[[ -n $weights ]] && common+=(--weights "$weights")

[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= rounds; ++round)); do
    echo "compare.sh: round $round/$rounds: nst-bench ${common[*]}" >&2
    "$bench" "${common[@]}" > "$out/nst.$round.json"
    echo "compare.sh: round $round/$rounds: torch_baseline ${common[*]}" >&2
    "$python" "$here/torch_baseline.py" "${common[@]}" > "$out/torch.$round.json"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$python" - "$out" "$rounds" "$load_before" "$load_after" <<'EOF'
import json, statistics, sys

out, rounds, load_before, load_after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def pooled(tool):
    """The first round's report, with every round's samples pooled into its medians."""
    reports = [json.load(open(f"{out}/{tool}.{k}.json")) for k in range(1, rounds + 1)]
    first = reports[0]
    for i, result in enumerate(first["results"]):
        for field in ("evaluation_ms", "lbfgs_iteration_ms"):
            if field not in result:
                continue
            samples = [s for r in reports for s in r["results"][i][field]["samples"]]
            result[field] = {"median": statistics.median(samples), "min": min(samples),
                             "max": max(samples), "samples": samples}
        for field in ("peak_bytes", "max_rss_bytes"):
            values = [r["results"][i].get(field) for r in reports]
            if None not in values:
                result[field] = max(values)
    return first


nst, torch = pooled("nst"), pooled("torch")
mib = lambda b: f"{b / 2**20:.0f}" if b is not None else "-"

print(f"machine: {nst['machine']['cpu']}, {nst['machine']['hardware_threads']} hardware threads")
print(f"nst {nst['version']} ({nst['results'][0]['backend']}, {nst['threads']} threads) vs "
      f"torch {torch['version']} ({torch['results'][0]['backend']}, {torch['threads']} threads); "
      f"precision {nst['precision']}; weights {nst['weights']}")
print(f"environment: " + ", ".join(f"{k}={v}" for k, v in nst['machine']['environment'].items() if v))
print(f"rounds: {rounds}; load average before / after: {load_before} / {load_after}")
print()
header = ("size", "nst eval ms", "torch eval ms", "ratio", "nst L-BFGS ms", "torch L-BFGS ms",
          "ratio", "nst peak MiB", "nst RSS MiB", "torch RSS MiB", "loss rel. diff")
rows = []
for a, b in zip(nst["results"], torch["results"]):
    assert a["size"] == b["size"]
    ea, eb = a["evaluation_ms"]["median"], b["evaluation_ms"]["median"]
    la = a.get("lbfgs_iteration_ms", {}).get("median")
    lb = b.get("lbfgs_iteration_ms", {}).get("median")
    rel = abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-30)
    rows.append((f"{a['size']}x{a['size']}", f"{ea:.1f}", f"{eb:.1f}", f"{eb / ea:.2f}",
                 f"{la:.1f}" if la else "-", f"{lb:.1f}" if lb else "-",
                 f"{lb / la:.2f}" if la and lb else "-",
                 mib(a.get("peak_bytes")), mib(a.get("max_rss_bytes")), mib(b.get("max_rss_bytes")),
                 f"{rel:.1e}"))
widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
print(line(header))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
print()
print("ratio = torch / nst (above 1: nst is faster); medians; loss rel. diff compares the two "
      "programs' objective values on the same input")
for a in nst["results"]:
    ops = a["breakdown"]["ops"][:8]
    print(f"\nnst top ops at {a['size']}x{a['size']} (median ms per evaluation, "
          f"phases: " + ", ".join(f"{k} {v:.1f}" for k, v in a["breakdown"]["phase_ms"].items()) + ")")
    for op in ops:
        print(f"  {op['median_ms']:8.1f} ms {100 * op['share']:5.1f}%  {op['op']:<22} "
              f"{op['shape']:<16} x{op['calls_per_evaluation']} {','.join(op['layers'])}")
EOF
echo "compare.sh: reports in $out" >&2
