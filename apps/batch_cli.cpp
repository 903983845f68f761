// `neural-style batch` (apps/batch_cli.h).
#include "apps/batch_cli.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "apps/cli_options.h"
#include "apps/cli_run.h"
#include "apps/cli_signals.h"
#include "engine/base/error.h"
#include "engine/base/exit_codes.h"
#include "engine/batch/manifest.h"
#include "engine/batch/slurm.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"

extern char** environ;

namespace nst::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: neural-style batch MANIFEST [options of every job] [--shard I/N] [--state DIR]\n"
    "       neural-style batch --contents DIR --styles DIR --output-pattern 'out/{content}_{style}.png' [...]\n"
    "       neural-style batch --status MANIFEST\n"
    "       neural-style batch MANIFEST --slurm [--array-tasks N] [--throttle N] [--gpus-per-task G] [--gres G]\n"
    "                          [--cpus-per-task N] [--partition P] [--time T] [--account A] [--sbatch-arg ARG]... [--dry-run]\n"
    "A manifest is .csv (a header of option names) or .jsonl (an object per line); see README, \"Batches\".\n";

// The batch command line: its own options, and those of every job.
struct BatchArguments {
    std::string manifest;
    std::string contents, styles, output_pattern;
    std::string state;  // the state folder (default: beside the manifest or the outputs)
    std::string shard;
    bool status = false, help = false;
    bool slurm = false, dry_run = false;
    SlurmOptions slurm_options;
    int array_tasks = 0;
    JobOptions job_defaults;
    std::vector<std::string> job_arguments;  // as given, for the Slurm tasks' command
};

int whole_number(const std::string& option, const std::string& text) {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError(option + ": '" + text + "' is not a whole number");
    return std::stoi(text);
}

BatchArguments parse_batch_arguments(const std::vector<std::string>& args) {
    BatchArguments b;
    // The batch's own options that take a value, and where it goes.
    const std::map<std::string, std::string*> texts = {
        {"--contents", &b.contents},          {"--styles", &b.styles},
        {"--output-pattern", &b.output_pattern}, {"--state", &b.state},
        {"--shard", &b.shard},                {"--gpus-per-task", &b.slurm_options.gpus_per_task},
        {"--gres", &b.slurm_options.gres},    {"--partition", &b.slurm_options.partition},
        {"--time", &b.slurm_options.time_limit}, {"--account", &b.slurm_options.account},
        {"--job-name", &b.slurm_options.job_name}};
    const std::map<std::string, bool*> flags = {
        {"--status", &b.status}, {"--slurm", &b.slurm}, {"--dry-run", &b.dry_run}, {"--help", &b.help}};
    std::string throttle, cpus, tasks;
    const std::map<std::string, std::string*> numbers = {
        {"--throttle", &throttle}, {"--cpus-per-task", &cpus}, {"--array-tasks", &tasks}};
    for (std::size_t k = 0; k < args.size(); ++k) {
        const std::string& arg = args[k];
        if (arg.size() < 2 || arg[0] != '-') {
            if (!b.manifest.empty()) throw UsageError("one manifest, not '" + b.manifest + "' and '" + arg + "'");
            b.manifest = arg;
            continue;
        }
        if (arg == "-h") {
            b.help = true;
            continue;
        }
        const std::size_t equals = arg.find('=');
        const std::string name = arg.substr(0, equals);
        const bool inline_value = equals != std::string::npos;
        const auto value = [&]() -> std::string {
            if (inline_value) return arg.substr(equals + 1);
            if (k + 1 >= args.size()) throw UsageError(name + " needs a value");
            return args[++k];
        };
        if (const auto own_flag = flags.find(name); own_flag != flags.end()) {
            *own_flag->second = true;
        } else if (const auto text = texts.find(name); text != texts.end()) {
            *text->second = value();
        } else if (const auto number = numbers.find(name); number != numbers.end()) {
            *number->second = value();
        } else if (name == "--sbatch-arg") {
            b.slurm_options.extra.push_back(value());
        } else {
            std::string flag;
            try {
                flag = manifest_column(name);
            } catch (const UsageError&) {
                throw UsageError("unknown option " + name + " (see neural-style batch --help)");
            }
            b.job_arguments.push_back(arg);
            if (is_flag_option(flag)) {
                if (inline_value) throw UsageError(name + " takes no value");
                b.job_defaults[flag] = {"true"};
                continue;
            }
            const std::string given = value();
            if (!inline_value) b.job_arguments.push_back(given);
            if (flag == "style" && b.job_defaults.count(flag)) b.job_defaults[flag].push_back(given);
            else b.job_defaults[flag] = {given};
        }
    }
    if (!throttle.empty()) b.slurm_options.throttle = whole_number("--throttle", throttle);
    if (!cpus.empty()) b.slurm_options.cpus_per_task = whole_number("--cpus-per-task", cpus);
    if (!tasks.empty()) b.array_tasks = whole_number("--array-tasks", tasks);
    if (b.help) return b;
    const bool generated = !b.contents.empty() || !b.styles.empty() || !b.output_pattern.empty();
    if (generated && !b.manifest.empty())
        throw UsageError("give a manifest or --contents/--styles/--output-pattern, not both");
    if (generated && (b.contents.empty() || b.styles.empty() || b.output_pattern.empty()))
        throw UsageError("--contents, --styles and --output-pattern go together");
    if (!generated && b.manifest.empty()) throw UsageError("no manifest given (see neural-style batch --help)");
    if (b.slurm && b.status) throw UsageError("give --slurm or --status, not both");
    if (b.slurm && !b.shard.empty()) throw UsageError("--shard is for one process; --slurm makes one per array task");
    return b;
}

// The folder of the pattern's outputs before any placeholder: "out/{style}/{content}.png" -> "out".
std::string pattern_folder(const std::string& pattern) {
    fs::path folder;
    for (const fs::path& part : fs::path(pattern).parent_path())
        if (part.string().find('{') == std::string::npos) folder /= part;
        else break;
    return folder.empty() ? "." : folder.string();
}

// Options that change what a job writes beside its output, not the output: not
// in its fingerprint.
bool shapes_output(const std::string& argument) {
    for (const char* option : {"--quiet", "--log-json=", "--save-every=", "--partial-output"})
        if (argument.rfind(option, 0) == 0) return false;
    return true;
}

std::string absolute(const std::string& path) { return fs::absolute(path).lexically_normal().string(); }

// A batch's jobs, each checked as its command line.
struct Batch {
    Manifest manifest;
    std::string state;
    std::vector<Options> options;  // per job
    std::vector<BatchJob> jobs;
};

Batch load_batch(const BatchArguments& b) {
    Batch batch;
    batch.manifest = b.manifest.empty() ? pair_manifest(b.contents, b.styles, b.output_pattern) : read_manifest(b.manifest);
    batch.state = !b.state.empty()       ? b.state
                  : !b.manifest.empty() ? state_folder(b.manifest)
                                        : (fs::path(pattern_folder(b.output_pattern)) / ".nst-batch").string();
    std::vector<std::string> errors;
    std::map<std::string, std::string> outputs;        // absolute output -> where
    std::map<std::string, std::string> inputs;         // absolute input -> where
    std::map<std::string, std::string> resolved_weights;  // as given -> path
    for (const ManifestRow& row : batch.manifest.rows) {
        const std::string where = batch.manifest.where(row);
        const std::vector<std::string> arguments = job_arguments(b.job_defaults, row.options);
        std::vector<const char*> argv = {"neural-style"};
        for (const std::string& argument : arguments) argv.push_back(argument.c_str());
        Options o;
        BatchJob job;
        try {
            parse(int(argv.size()), argv.data(), o);
            if (o.plan) throw UsageError("--plan does not apply to a batch");
            if (!o.video && !is_supported_output_path(o.output))
                throw UsageError("--output '" + o.output + "': the extension must be .png, .jpg or .jpeg");
            for (const auto& [option, path] : input_files(o)) {
                const bool pattern = option == "--content" && o.video && path.find('%') != std::string::npos;
                if (pattern) continue;
                if (!fs::is_regular_file(path)) throw UsageError(option + " '" + path + "': no such file");
                job.inputs.push_back(path);
            }
            auto weights = resolved_weights.find(o.weights);
            if (weights == resolved_weights.end())
                weights = resolved_weights.emplace(o.weights, resolve_weights_path(o.weights)).first;
            job.weights = weights->second;
        } catch (const Error& e) {
            errors.push_back(where + ": " + e.what());
            continue;
        }
        const std::string output = absolute(o.output);
        if (const auto other = outputs.find(output); other != outputs.end())
            errors.push_back(where + ": --output '" + o.output + "' is also the output of " + other->second);
        outputs.emplace(output, where);
        for (const std::string& input : job.inputs) inputs.emplace(absolute(input), where);
        job.index = static_cast<long long>(batch.jobs.size());
        job.where = where;
        job.output = o.output;
        for (const std::string& argument : arguments)
            if (shapes_output(argument)) job.options += argument + '\n';
        batch.jobs.push_back(std::move(job));
        batch.options.push_back(std::move(o));
    }
    for (const BatchJob& job : batch.jobs)
        if (const auto input = inputs.find(absolute(job.output)); input != inputs.end())
            errors.push_back(job.where + ": --output '" + job.output + "' is an input of " + input->second +
                             "; it would be overwritten");
    if (batch.manifest.rows.empty()) errors.push_back(batch.manifest.path + ": no jobs");
    if (!errors.empty()) {
        std::string message;
        for (const std::string& error : errors) message += (message.empty() ? "" : "\n") + error;
        throw UsageError(message);
    }
    return batch;
}

Shard shard_of(const BatchArguments& b) {
    if (!b.shard.empty()) return parse_shard(b.shard);
    std::map<std::string, std::string> environment;
    for (char** entry = environ; entry && *entry; ++entry) {
        const std::string text = *entry;
        const std::size_t equals = text.find('=');
        if (equals != std::string::npos) environment[text.substr(0, equals)] = text.substr(equals + 1);
    }
    return shard_from_slurm(environment).value_or(Shard{});
}

std::string this_program() {
    std::error_code error;
    const fs::path self = fs::read_symlink("/proc/self/exe", error);
    return error ? "neural-style" : self.string();
}

// --slurm: the array job whose tasks each run their shard of the same batch.
int submit_batch(const BatchArguments& b, const Batch& batch) {
    std::vector<std::string> command = {this_program(), "batch"};
    if (!b.manifest.empty()) {
        command.push_back(absolute(b.manifest));
    } else {
        command.insert(command.end(), {"--contents", absolute(b.contents), "--styles", absolute(b.styles),
                                       "--output-pattern", b.output_pattern});
    }
    command.insert(command.end(), {"--state", absolute(batch.state)});
    command.insert(command.end(), b.job_arguments.begin(), b.job_arguments.end());
    SlurmOptions options = b.slurm_options;
    const int jobs = int(batch.jobs.size());
    options.tasks = b.array_tasks > 0 ? std::min(b.array_tasks, jobs) : jobs;
    if (options.output_pattern.empty()) options.output_pattern = absolute(batch.state) + "/slurm-%A_%a.out";
    // The jobs' relative paths are relative to here.
    options.extra.insert(options.extra.begin(), "--chdir=" + fs::current_path().string());
    const std::string script = sbatch_script(options, options.tasks, command);
    if (b.dry_run) {
        std::fputs(script.c_str(), stdout);
        return 0;
    }
    std::error_code error;
    fs::create_directories(batch.state, error);  // the tasks' logs go there
    const std::string id = submit_sbatch(script);
    std::printf("%s\n", id.c_str());
    std::fprintf(stderr, "neural-style batch: submitted Slurm job %s: %d array tasks over %d jobs; "
                         "neural-style batch --status %s tells how far it is\n",
                 id.c_str(), options.tasks, jobs, b.manifest.empty() ? "..." : b.manifest.c_str());
    return 0;
}

BatchSummary run_loaded(const BatchArguments& b, Batch& batch, bool print) {
    const Shard shard = shard_of(b);
    BatchResources resources;
    const BatchState state(batch.state);
    const bool progress = print && !b.job_defaults.count("quiet");  // --quiet: failures and the summary only
    int position = 0, in_shard_jobs = 0;  // the job's place in this shard, for the progress lines
    for (const BatchJob& job : batch.jobs) in_shard_jobs += in_shard(shard, job.index);
    const auto run_job = [&](const BatchJob& job) -> JobOutcome {
        const Options& o = batch.options[std::size_t(job.index)];
        ++position;
        if (progress)
            std::fprintf(stderr, "neural-style batch: [%d/%d] %s: %s -> %s\n", position, in_shard_jobs,
                         job.where.c_str(), o.content.c_str(), o.output.c_str());
        // A batch makes its outputs' folders ("out/{content}_{style}.png").
        if (const fs::path folder = fs::path(o.output).parent_path(); !folder.empty()) {
            std::error_code error;
            fs::create_directories(folder, error);
        }
        g_running = false;  // a signal before this job's first iteration ends the process, as in one run
        SharedRun shared;
        shared.weights = &resources.weights(job.weights);
        shared.weights_path = job.weights;
        if (!o.video) {
            shared.backend = &resources.backend(o.request);
            shared.style_targets = &resources.style_targets(o.request, job.weights);
        }
        return {run(o, &shared), ""};
    };
    const auto on_job = [&](const JobRecord& record) {
        if (record.status == "skipped") ++position;
        if (!print) return;
        if (record.status == "skipped" && progress)
            std::fprintf(stderr, "neural-style batch: [%d/%d] %s: done before: %s\n", position, in_shard_jobs,
                         record.where.c_str(), record.output.c_str());
        else if (record.status == "failed")
            std::fprintf(stderr, "neural-style batch: %s: error: %s\n", record.where.c_str(), record.message.c_str());
    };
    BatchSummary summary = run_batch(batch.jobs, shard, state, run_job, on_job, &g_cancel);
    if (print) {
        std::fprintf(stderr, "neural-style batch: %s%s; records in %s\n", summary.line().c_str(),
                     shard.count > 1 ? (" (shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ")").c_str() : "",
                     batch.state.c_str());
        if (summary.interrupted_by)
            std::fprintf(stderr, "neural-style batch: interrupted by %s; the interrupted job will run again\n",
                         signal_name(summary.interrupted_by));
    }
    return summary;
}

void print_status(const BatchStatus& status, const std::string& state) {
    std::printf("%s (records in %s)\n", status.line().c_str(), state.c_str());
    for (const JobRecord& failure : status.failures)
        std::printf("failed: %s (exit %d): %s -> %s\n", failure.where.c_str(), failure.exit_code,
                    failure.message.c_str(), failure.output.c_str());
}

}  // namespace

BatchSummary run_batch_command(const std::vector<std::string>& arguments) {
    const BatchArguments b = parse_batch_arguments(arguments);
    Batch batch = load_batch(b);
    return run_loaded(b, batch, false);
}

BatchStatus batch_status_command(const std::vector<std::string>& arguments) {
    const BatchArguments b = parse_batch_arguments(arguments);
    const Batch batch = load_batch(b);
    return batch_status(batch.jobs, shard_of(b), BatchState(batch.state));
}

int batch_main(int argc, const char* const* argv) {
    const std::vector<std::string> arguments(argv + 1, argv + argc);
    try {
        const BatchArguments b = parse_batch_arguments(arguments);
        if (b.help) {
            std::fputs(kUsage, stdout);
            return exit_success;
        }
        Batch batch = load_batch(b);
        if (b.status) {
            const BatchStatus status = batch_status(batch.jobs, shard_of(b), BatchState(batch.state));
            print_status(status, batch.state);
            return status.failed == 0 && status.pending == 0 ? exit_success : 1;
        }
        if (b.slurm) return submit_batch(b, batch);
        return run_loaded(b, batch, true).exit_code;
    } catch (const UsageError& e) {
        // A bad manifest: every bad row, one line each.
        const std::string message = e.what();
        std::size_t start = 0;
        while (start <= message.size()) {
            const std::size_t end = std::min(message.find('\n', start), message.size());
            std::fprintf(stderr, "neural-style batch: error: %s\n", message.substr(start, end - start).c_str());
            start = end + 1;
        }
        return exit_usage;
    } catch (...) {
        return run_reporting_errors("neural-style batch", [] () -> int { throw; });
    }
}

}  // namespace nst::cli
