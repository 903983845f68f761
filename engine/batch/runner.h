// Running the jobs of a batch in one process (DESIGN.md, "Batches"): what is
// shared between jobs (the weights, read once per file; a backend per device;
// the style targets per backend and weights), the records that make a batch
// idempotent and resumable, and the loop over one shard's jobs. What a job is and
// how it runs belongs to the front end (apps/batch_cli.cpp).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/batch/slurm.h"
#include "engine/io/weights.h"
#include "engine/run/transfer.h"

namespace nst {

// One job as the runner sees it.
struct BatchJob {
    long long index = 0;              // k in the manifest's order, from 0 (shards)
    std::string where;                // "m.csv:3", for messages
    std::string output;
    std::vector<std::string> inputs;  // the files it reads (images, masks, the video)
    std::string weights;              // the weights file
    std::string options;              // the text of every option that shapes the output
};

// What a job left: the file <state>/<hash of its output's absolute path>.json.
struct JobRecord {
    std::string output, where;
    std::string status;       // "succeeded", "failed", "interrupted"
    int exit_code = 0;        // the CLI's code for the job
    std::string message;      // the one-line error, when it failed
    std::string fingerprint;  // job_fingerprint() of the job that ran
    double seconds = 0.0;
};

// The job's fingerprint: a 128-bit hash of its options' text, its weights and its
// inputs: files up to 64 MiB (images) by content, larger ones (weights, videos)
// by size and modification time (hashing 550 MB of weights for every job of a
// rerun would cost more than the check saves; they are not edited in place).
std::string job_fingerprint(const BatchJob& job);

// The records of one batch, in its state folder (created on the first write).
class BatchState {
public:
    explicit BatchState(std::string folder) : folder_(std::move(folder)) {}
    const std::string& folder() const { return folder_; }
    std::string record_path(const std::string& output) const;
    std::optional<JobRecord> read(const std::string& output) const;
    void write(const JobRecord& record) const;  // atomically (a temporary renamed)
    // Done: its output exists (a frame pattern: not checked) and its record says it
    // succeeded with this fingerprint.
    bool done(const BatchJob& job, const std::string& fingerprint) const;

private:
    std::string folder_;
};

// How one job ended, as the front end reports it (exceptions are caught by
// run_batch and become the CLI's exit codes, exit_codes.h).
struct JobOutcome {
    int exit_code = 0;  // 0, or the CLI's code: 2, 3, 4, or 128 + a signal
    std::string message;
};

struct BatchSummary {
    int succeeded = 0, failed = 0, skipped = 0;
    int interrupted_by = 0;       // the signal that stopped the batch, or 0
    int exit_code = 0;            // 0; the first failed job's code; 128 + signal when interrupted
    std::vector<JobRecord> jobs;  // this run's, in order ("skipped" for those done before)
    // "12 jobs: 9 succeeded, 1 failed, 2 skipped (done before)".
    std::string line() const;
};

// Runs the jobs of `shard` that are not done, in order. A failure is recorded and
// the next job runs; a job that returns 128 + signal stops the batch (it is
// recorded "interrupted", not done). `cancel`, when set between jobs, stops too.
// on_job is told of each job's record once it is written (or skipped).
using RunJob = std::function<JobOutcome(const BatchJob&)>;
BatchSummary run_batch(const std::vector<BatchJob>& jobs, const Shard& shard, const BatchState& state,
                       const RunJob& run, const std::function<void(const JobRecord&)>& on_job = {},
                       const std::atomic<bool>* cancel = nullptr);

// The jobs of `shard` from the records alone: done, failed (with their records),
// pending (no record, an interrupted one, or one for other options or inputs).
struct BatchStatus {
    int done = 0, failed = 0, pending = 0;
    std::vector<JobRecord> failures;
    std::string line() const;  // "12 jobs: 9 done, 1 failed, 2 pending"
};
BatchStatus batch_status(const std::vector<BatchJob>& jobs, const Shard& shard, const BatchState& state);

// What the jobs of one process share: each weights file read once, a backend per
// (device, threads, precision) set up once, and per backend and weights a cache
// of style targets.
class BatchResources {
public:
    const VggWeights& weights(const std::string& path);
    Backend& backend(const TransferRequest& request);
    StyleTargetCache& style_targets(const TransferRequest& request, const std::string& weights_path);

private:
    using BackendKey = std::tuple<std::string, int, bool>;
    static BackendKey backend_key(const TransferRequest& request);
    std::map<std::string, VggWeights> weights_;
    std::map<BackendKey, std::unique_ptr<Backend>> backends_;
    std::map<std::pair<BackendKey, std::string>, StyleTargetCache> style_targets_;
};

}  // namespace nst
