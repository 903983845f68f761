#!/usr/bin/env bash
# A clip stylised by neural-style as a video against the same frames stylised one by
# one by the image CLI, the loop peers' users write (docs/BENCHMARKS.md, "Video"):
# the same frames, size and iterations per frame; wall time of each, and the video
# run's per-frame flow wait, set-up and optimisation times from its --log-json.
#
#   bench/video_speed.sh CLIP [SIZE] [FRAMES] [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
clip=${1:?usage: bench/video_speed.sh CLIP [SIZE] [FRAMES] [ITERATIONS]}
size=${2:-128}
frames=${3:-12}
iterations=${4:-100}
nst=build/apps/neural-style
common=(--style ../shared/assets/images/starry_night.jpg --weights ../shared/assets/vgg19/vgg19-conv-hybrid.h5
        --size "$size" --iterations "$iterations" --quiet)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The frames as the image CLI takes them (PNG, decoded by ffmpeg).
ffmpeg -v error -i "$clip" -frames:v "$frames" "$work/in_%03d.png"

start=$(date +%s.%N)
for f in "$work"/in_*.png; do
  "$nst" --content "$f" --output "$work/still_$(basename "$f")" --log-json "$work/still_$(basename "$f").jsonl" "${common[@]}"
done
loop_end=$(date +%s.%N); loop="$start $loop_end"

start=$(date +%s.%N)
"$nst" --content "$clip" --frames "0:$frames" --output "$work/video_%03d.png" --frame-iterations "$iterations" \
  --log-json "$work/log.jsonl" "${common[@]}"
video_end=$(date +%s.%N); video="$start $video_end"

/usr/bin/python3 - "$work/log.jsonl" "$loop" "$video" "$frames" "$work" <<'PY'
import glob, json, statistics, sys
span = lambda text: float(text.split()[1]) - float(text.split()[0])
log, loop, video, frames = sys.argv[1], span(sys.argv[2]), span(sys.argv[3]), int(sys.argv[4])
lines = list(map(json.loads, open(log)))
rows = [r for r in lines if r.get("event") == "frame"]
# Iterations done: L-BFGS stops early when it converges (a frame started from its warped
# neighbour often does), so the time per iteration is reported too.
video_iterations = sum(1 for r in lines if "iteration" in r and r["iteration"] > 0)
still_iterations = sum(1 for f in glob.glob(sys.argv[5] + "/still_*.jsonl") for r in map(json.loads, open(f))
                       if r["iteration"] > 0)
later = rows[1:]
median = lambda key: statistics.median(r[key] for r in later)
print(json.dumps({"frames": frames, "image_cli_loop_seconds": round(loop, 2), "video_seconds": round(video, 2),
                  "speedup": round(loop / video, 3),
                  "image_cli_iterations": still_iterations, "video_iterations": video_iterations,
                  "image_cli_seconds_per_iteration": round(loop / still_iterations, 4),
                  "video_seconds_per_iteration": round(video / video_iterations, 4),
                  "first_frame_seconds": round(rows[0]["optimize_seconds"], 3),
                  "median_flow_wait_seconds": round(median("flow_seconds"), 4),
                  "median_setup_seconds": round(median("setup_seconds"), 4),
                  "median_optimize_seconds": round(median("optimize_seconds"), 3)}))
PY
