#!/usr/bin/env bash
# A batch as a Slurm job array on a real one-node cluster
# (scripts/slurm-test-cluster.sh), started here and stopped on the way out:
#   1. the cluster itself: srun, and an sbatch array with a throttle (%N) that
#      really holds (no two tasks of a %1 array overlap);
#   2. the [.cluster] cases of test_slurm: sbatch_script and submit_sbatch
#      against the real sbatch, shard_from_slurm in each real task;
#   3. `neural-style batch MANIFEST --slurm --throttle 2`: six small jobs as an
#      array, each output byte-identical to the same job run alone; one task
#      cancelled with scancel while it runs, then the batch resubmitted runs only
#      what is missing; a truncated JPEG fails its job alone, with its message
#      in --status.
#
#   test_slurm_cluster.sh SOURCE_DIR NEURAL_STYLE TEST_SLURM ASSETS_DIR
#
# Needs root (the daemons run as root); exits 77 (skipped) without it. Where
# the cluster cannot start it fails, with the daemons' logs.
set -euo pipefail

(($# == 4)) || { echo "usage: $0 SOURCE_DIR NEURAL_STYLE TEST_SLURM ASSETS_DIR" >&2; exit 2; }
source_dir=$1 neural_style=$2 test_slurm=$3 assets=$4
cluster_script="$source_dir/scripts/slurm-test-cluster.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: the test cluster's daemons run as root"
  exit 77
fi

started=$SECONDS
# /tmp, not the build tree: the munge socket's path must stay under 108 bytes.
# munged wants every folder above its socket open to all (mktemp makes 0700).
work=$(mktemp -d /tmp/nst-slurm-XXXXXX)
chmod 0755 "$work"
cluster="$work/cluster"
finish() {
  local status=$?
  bash "$cluster_script" stop "$cluster" || status=1
  if ((status == 0)); then
    rm -rf "$work"
  else
    echo "the cluster's folder and the test's files are kept in $work" >&2
  fi
  exit "$status"
}
trap finish EXIT

fail() {
  echo "FAILED: $*" >&2
  exit 1
}
step() { echo "---- [$((SECONDS - started)) s] $*"; }

# Polls `squeue -j ID` until the job (every task of an array) has left the queue.
wait_for_job() {
  local id=$1 limit=${2:-120} deadline=$((SECONDS + ${2:-120}))
  while [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do
    ((SECONDS < deadline)) || { squeue -j "$id" >&2; fail "job $id still queued after $limit s"; }
    sleep 0.5
  done
}

step "starting the cluster"
bash "$cluster_script" start "$cluster"
export SLURM_CONF="$cluster/slurm.conf"

# ---- 1. the cluster runs jobs -------------------------------------------------------------
step "srun -N1 hostname"
[ "$(timeout 30 srun -N1 hostname)" = "$(hostname)" ] || fail "srun -N1 hostname did not print the host name"

step "sbatch --array=0-3%2, then --array=0-3%1"
mkdir -p "$work/plain"
cat >"$work/plain/array.sh" <<EOF
#!/bin/bash
#SBATCH --output=$work/plain/task-%A_%a.out
echo "\$SLURM_ARRAY_TASK_ID \$(date +%s.%N) start"
sleep 1
echo "\$SLURM_ARRAY_TASK_ID \$(date +%s.%N) end"
EOF
for throttle in 2 1; do
  id=$(sbatch --parsable --array="0-3%$throttle" "$work/plain/array.sh")
  wait_for_job "$id" 60
  for task in 0 1 2 3; do
    grep -q "^$task .* end$" "$work/plain/task-${id}_$task.out" ||
      fail "array $id (%$throttle): task $task did not run to its end"
  done
  # The most tasks running at once, from their start and end times.
  most=$(cat "$work/plain/task-${id}"_*.out |
         awk '{ print $2, ($3 == "start" ? 1 : -1) }' | sort -n -k1,1 -k2,2n |
         awk '{ now += $2; if (now > most) most = now } END { print most }')
  ((most <= throttle)) || fail "array $id with %$throttle ran $most tasks at once"
  echo "array $id: 4 tasks, at most $most at once (%$throttle)"
done

# ---- 2. the C++ side against the real sbatch ------------------------------------------------
step "test_slurm [.cluster]"
"$test_slurm" "[.cluster]"

# ---- 3. neural-style batch --slurm ------------------------------------------------------------
step "neural-style batch --slurm: six jobs, throttle 2"
jobs="$work/jobs"
mkdir -p "$jobs/out"
weights="$assets/vgg19/vgg19-conv-hybrid.h5"
images="$assets/images"
# A damaged photo: the first 2000 bytes of a JPEG.
head -c 2000 "$images/tubingen.jpg" >"$jobs/truncated.jpg"
# Job 2 runs long enough to be cancelled while it runs; job 4's photo is damaged.
# Job 2's JSON log shows when its iterations have begun (--log-json changes no
# output, and is no part of a job's fingerprint).
cat >"$jobs/jobs.csv" <<EOF
content,style,output,size,iterations,log-json
$images/tubingen.jpg,$images/starry_night.jpg,$jobs/out/job0.png,64,4,
$images/shipwreck.jpg,$images/kandinsky_composition_vii.jpg,$jobs/out/job1.png,48,4,
$images/tubingen.jpg,$images/woman-with-hat-matisse.jpg,$jobs/out/job2.png,64,100,$jobs/job2.jsonl
$images/starry_night.jpg,$images/shipwreck.jpg,$jobs/out/job3.png,32,5,
$jobs/truncated.jpg,$images/starry_night.jpg,$jobs/out/job4.png,64,4,
$images/woman-with-hat-matisse.jpg,$images/tubingen.jpg,$jobs/out/job5.png,64,3,
EOF
common=(--threads 1 --device cpu --weights "$weights")
batch() { (cd "$jobs" && "$neural_style" batch jobs.csv "${common[@]}" "$@"); }
# The status in job K's record (the manifest's row K + 2), or "none".
record_status() {
  python3 - "$jobs/jobs.csv.nst-batch" "$jobs/jobs.csv:$(($1 + 2))" <<'PY'
import json, pathlib, sys
found = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*.json")]
print(next((r["status"] for r in found if r.get("where") == sys.argv[2]), "none"))
PY
}

submitted=$(batch --slurm --throttle 2)
echo "$submitted"
id=$(grep -oE '[0-9]+' <<<"$submitted" | head -n 1)
[ -n "$id" ] || fail "neural-style batch --slurm printed no job id"
scontrol show job "$id" | grep -q "ArrayTaskThrottle=2" || fail "array $id has no throttle of 2"

# Cancel task 2 in the middle of its job's iterations (it is the long one).
deadline=$((SECONDS + 90))
until [ -s "$jobs/job2.jsonl" ]; do
  ((SECONDS < deadline)) || fail "task ${id}_2's job did not begin its iterations within 90 s"
  sleep 0.2
done
[ "$(squeue -h -j "${id}_2" -o %T)" = "RUNNING" ] || fail "task ${id}_2 is not running"
scancel "${id}_2"
wait_for_job "$id" 120

step "--status after the first array"
status=$(batch --status 2>&1 || true)
echo "$status"
for k in 0 1 3 5; do
  [ -s "$jobs/out/job$k.png" ] || fail "job $k has no output"
done
# A job stopped by a signal writes the image it has reached (as one run does),
# but its record says it must run again.
[ "$(record_status 2)" = "interrupted" ] || fail "job 2's record says '$(record_status 2)', not interrupted"
[ "$(record_status 4)" = "failed" ] || fail "job 4's record says '$(record_status 4)', not failed"
[ ! -e "$jobs/out/job4.png" ] || fail "job 4 (truncated JPEG) has an output"
grep -q "6 jobs: 4 done, 1 failed, 1 pending" <<<"$status" ||
  fail "--status should count 4 done, 1 failed (job 4) and 1 pending (job 2, cancelled)"
grep -q "truncated.jpg.*truncated JPEG" <<<"$status" || fail "--status does not give job 4's error"
logs="$jobs/jobs.csv.nst-batch"
echo "task 2's log:"; cat "$logs/slurm-${id}_2.out"
grep -q "CANCELLED" "$logs/slurm-${id}_2.out" || fail "task 2 was not cancelled"
grep -q "interrupted" "$logs/slurm-${id}_2.out" || fail "task 2's job was not interrupted while it ran"

# Each output is the same bytes as the job run alone.
solo() {  # solo K CONTENT STYLE SIZE ITERATIONS
  "$neural_style" --content "$2" --style "$3" --output "$work/solo$1.png" --size "$4" \
    --iterations "$5" "${common[@]}" --quiet
  cmp "$work/solo$1.png" "$jobs/out/job$1.png" || fail "job $1's output differs from the job run alone"
}
step "the same jobs run alone"
solo 0 "$images/tubingen.jpg" "$images/starry_night.jpg" 64 4
solo 1 "$images/shipwreck.jpg" "$images/kandinsky_composition_vii.jpg" 48 4
solo 3 "$images/starry_night.jpg" "$images/shipwreck.jpg" 32 5
solo 5 "$images/woman-with-hat-matisse.jpg" "$images/tubingen.jpg" 64 3

step "resubmitted: only what is missing runs again"
before=$(stat -c '%n %Y %i' "$jobs"/out/job{0,1,3,5}.png)
submitted=$(batch --slurm --throttle 2)
echo "$submitted"
id2=$(grep -oE '[0-9]+' <<<"$submitted" | head -n 1)
[ -n "$id2" ] || fail "the resubmission printed no job id"
wait_for_job "$id2" 120
after=$(stat -c '%n %Y %i' "$jobs"/out/job{0,1,3,5}.png)
[ "$before" = "$after" ] || fail "jobs that were done ran again: $before / $after"
[ "$(record_status 2)" = "succeeded" ] || fail "job 2's record says '$(record_status 2)' after the resubmission"
solo 2 "$images/tubingen.jpg" "$images/woman-with-hat-matisse.jpg" 64 100
[ ! -e "$jobs/out/job4.png" ] || fail "job 4 (truncated JPEG) has an output after the resubmission"
status=$(batch --status 2>&1 || true)
echo "$status"
grep -q "6 jobs: 5 done, 1 failed, 0 pending" <<<"$status" ||
  fail "--status should count 5 done and 1 failed after the resubmission"
# The tasks of jobs that were done only say so.
for k in 0 1 3 5; do
  grep -q "done before" "$logs/slurm-${id2}_$k.out" || { cat "$logs/slurm-${id2}_$k.out"; fail "job $k ran again"; }
done
echo "task 4's log after the resubmission:"; cat "$logs/slurm-${id2}_4.out"

step "done"
