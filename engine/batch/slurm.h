// A batch of jobs as a Slurm job array (DESIGN.md, "Batches"): the sbatch script,
// its submission, and the shard a running array task takes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nst {

// Which part of a batch one process runs: jobs k with k mod count == index
// (k in the manifest's order, from 0), so every job is in exactly one shard.
struct Shard {
    int index = 0, count = 1;
};
// "I/N" with 0 ≤ I < N (UsageError otherwise).
Shard parse_shard(const std::string& text);
// Inside a Slurm array task (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT and
// SLURM_ARRAY_TASK_MIN set in `environment`): index = ID − MIN, count = COUNT;
// otherwise nothing. UsageError when they are set but inconsistent.
std::optional<Shard> shard_from_slurm(const std::map<std::string, std::string>& environment);
// Whether job k (0-based) belongs to the shard.
inline bool in_shard(const Shard& shard, long long k) { return k % shard.count == shard.index; }

// What `neural-style batch --slurm` asks of Slurm.
struct SlurmOptions {
    int tasks = 0;                    // array size (0: one task per job, at most the job count)
    int throttle = 0;                 // %N: tasks running at once (0: no limit)
    std::string gpus_per_task;        // --gpus-per-task, e.g. "1" (empty: none)
    std::string gres;                 // --gres, e.g. "gpu:1"
    int cpus_per_task = 0;            // --cpus-per-task (0: Slurm's default)
    std::string partition, time_limit, account, job_name = "nst-batch";
    std::string output_pattern;       // --output of the tasks' logs (default: <state>/slurm-%A_%a.out)
    std::vector<std::string> extra;   // further sbatch arguments, passed through as given
};

// The sbatch script: #SBATCH lines for `options` and an --array of `tasks`
// (with %throttle), then `command` (the batch command each task runs, whose shard
// comes from the array variables), shell-quoted.
std::string sbatch_script(const SlurmOptions& options, int tasks, const std::vector<std::string>& command);

// Submits `script` with `sbatch --parsable` (found on PATH) and returns the job
// id; RuntimeFailure with sbatch's message when it fails.
std::string submit_sbatch(const std::string& script);

}  // namespace nst
