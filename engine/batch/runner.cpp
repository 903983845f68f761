// The batch runner (engine/batch/runner.h).
#include "engine/batch/runner.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>

#include "engine/base/error.h"
#include "engine/base/exit_codes.h"
#include "engine/base/hash128.h"
#include "engine/run/run_options.h"

namespace nst {

namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kHashedBytes = std::uintmax_t(64) << 20;

void hash_file(Hash128& hash, const std::string& path) {
    hash.text(path);
    std::error_code error;
    const std::uintmax_t size = fs::file_size(path, error);
    if (error) {
        hash.text("missing");
        return;
    }
    hash.value(size);
    if (size > kHashedBytes) {
        const auto modified = fs::last_write_time(path, error).time_since_epoch().count();
        hash.value(modified);
        return;
    }
    std::ifstream file(path, std::ios::binary);
    std::vector<char> block(1 << 16);
    while (file.read(block.data(), std::streamsize(block.size())) || file.gcount() > 0)
        hash.bytes(block.data(), std::size_t(file.gcount()));
}

std::string absolute_path(const std::string& path) { return fs::absolute(path).lexically_normal().string(); }

nlohmann::json record_json(const JobRecord& r) {
    return {{"output", r.output},       {"where", r.where},   {"status", r.status},
            {"exit_code", r.exit_code}, {"message", r.message}, {"fingerprint", r.fingerprint},
            {"seconds", r.seconds}};
}

// The code run_reporting_errors would give the exception in flight.
JobOutcome outcome_of_exception() {
    try {
        throw;
    } catch (const UsageError& e) {
        return {exit_usage, e.what()};
    } catch (const InputError& e) {
        return {exit_bad_input, e.what()};
    } catch (const std::bad_alloc&) {
        return {exit_failure, "out of memory"};
    } catch (const std::exception& e) {
        return {exit_failure, e.what()};
    }
}

}  // namespace

std::string job_fingerprint(const BatchJob& job) {
    Hash128 hash;
    hash.text(job.options);
    hash.text(absolute_path(job.output));
    for (const std::string& input : job.inputs) hash_file(hash, input);
    hash_file(hash, job.weights);
    return hash.hex();
}

std::string BatchState::record_path(const std::string& output) const {
    Hash128 hash;
    hash.text(absolute_path(output));
    return (fs::path(folder_) / (hash.hex().substr(0, 16) + ".json")).string();
}

std::optional<JobRecord> BatchState::read(const std::string& output) const {
    std::ifstream file(record_path(output));
    if (!file) return std::nullopt;
    try {
        const nlohmann::json j = nlohmann::json::parse(file);
        JobRecord r;
        r.output = j.at("output").get<std::string>();
        r.where = j.value("where", "");
        r.status = j.at("status").get<std::string>();
        r.exit_code = j.value("exit_code", 0);
        r.message = j.value("message", "");
        r.fingerprint = j.value("fingerprint", "");
        r.seconds = j.value("seconds", 0.0);
        return r;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;  // a damaged record: the job runs again
    }
}

void BatchState::write(const JobRecord& record) const {
    std::error_code error;
    fs::create_directories(folder_, error);
    if (error) throw RuntimeFailure("cannot create the batch's state folder '" + folder_ + "': " + error.message());
    const std::string path = record_path(record.output), temporary = path + ".tmp";
    {
        std::ofstream file(temporary, std::ios::trunc);
        file << record_json(record).dump(2) << '\n';
        if (!file) throw RuntimeFailure("cannot write the job record '" + temporary + "'");
    }
    fs::rename(temporary, path, error);
    if (error) throw RuntimeFailure("cannot write the job record '" + path + "': " + error.message());
}

bool BatchState::done(const BatchJob& job, const std::string& fingerprint) const {
    const std::optional<JobRecord> record = read(job.output);
    // A video's frame pattern names no one file: its record alone says it is done.
    const bool pattern = job.output.find('%') != std::string::npos;
    std::error_code error;
    return record && record->status == "succeeded" && record->fingerprint == fingerprint &&
           (pattern || fs::exists(job.output, error));
}

std::string BatchSummary::line() const {
    std::ostringstream out;
    out << succeeded + failed + skipped << " jobs: " << succeeded << " succeeded, " << failed << " failed, " << skipped
        << " skipped (done before)";
    return out.str();
}

BatchSummary run_batch(const std::vector<BatchJob>& jobs, const Shard& shard, const BatchState& state,
                       const RunJob& run, const std::function<void(const JobRecord&)>& on_job,
                       const std::atomic<bool>* cancel) {
    BatchSummary summary;
    for (const BatchJob& job : jobs) {
        if (!in_shard(shard, job.index)) continue;
        if (cancel && cancel->load()) break;
        JobRecord record;
        record.output = job.output;
        record.where = job.where;
        record.fingerprint = job_fingerprint(job);
        if (state.done(job, record.fingerprint)) {
            record.status = "skipped";
            ++summary.skipped;
            summary.jobs.push_back(record);
            if (on_job) on_job(record);
            continue;
        }
        const auto start = std::chrono::steady_clock::now();
        JobOutcome outcome;
        try {
            outcome = run(job);
        } catch (...) {
            outcome = outcome_of_exception();
        }
        record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        record.exit_code = outcome.exit_code;
        record.message = outcome.message;
        record.status = outcome.exit_code == 0 ? "succeeded" : outcome.exit_code > 128 ? "interrupted" : "failed";
        state.write(record);
        summary.jobs.push_back(record);
        if (on_job) on_job(record);
        if (outcome.exit_code > 128) {
            summary.interrupted_by = outcome.exit_code - 128;
            summary.exit_code = outcome.exit_code;
            break;
        }
        if (outcome.exit_code == 0) {
            ++summary.succeeded;
        } else {
            if (summary.failed++ == 0) summary.exit_code = outcome.exit_code;
        }
    }
    return summary;
}

std::string BatchStatus::line() const {
    std::ostringstream out;
    out << done + failed + pending << " jobs: " << done << " done, " << failed << " failed, " << pending << " pending";
    return out.str();
}

BatchStatus batch_status(const std::vector<BatchJob>& jobs, const Shard& shard, const BatchState& state) {
    BatchStatus status;
    for (const BatchJob& job : jobs) {
        if (!in_shard(shard, job.index)) continue;
        const std::string fingerprint = job_fingerprint(job);
        const std::optional<JobRecord> record = state.read(job.output);
        if (state.done(job, fingerprint)) {
            ++status.done;
        } else if (record && record->status == "failed" && record->fingerprint == fingerprint) {
            ++status.failed;
            status.failures.push_back(*record);
        } else {
            ++status.pending;
        }
    }
    return status;
}

const VggWeights& BatchResources::weights(const std::string& path) {
    auto found = weights_.find(path);
    if (found == weights_.end()) found = weights_.emplace(path, read_weights(path)).first;
    return found->second;
}

BatchResources::BackendKey BatchResources::backend_key(const TransferRequest& request) {
    return {request.device, request.threads, request.precision.text() != "fp32"};
}

Backend& BatchResources::backend(const TransferRequest& request) {
    const BackendKey key = backend_key(request);
    auto found = backends_.find(key);
    if (found == backends_.end())
        found = backends_
                    .emplace(key, make_backend(parse_device(request.device), request.threads, std::get<2>(key)))
                    .first;
    return *found->second;
}

StyleTargetCache& BatchResources::style_targets(const TransferRequest& request, const std::string& weights_path) {
    return style_targets_[{backend_key(request), weights_path}];
}

}  // namespace nst
