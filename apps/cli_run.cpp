// One run of the neural-style command line (apps/cli_run.h): loads the weights
// and images, runs the optimiser, writes the image atomically. Exit codes as in
// engine/base/exit_codes.h, and 128 + the signal when interrupted.
//
// Signals (SIGINT, SIGTERM, SIGHUP):
// - during set-up (before iteration 0 has been reported), the process exits at
//   once with 128 + signal: there is no image yet, nothing is written;
// - in the iteration loop, the first one stops the run after the current
//   iteration; the image so far is written and the exit code is 128 + signal;
// - a second one exits at once.
// "At once" waits only for a critical section in progress (the output probe, a
// save): its temporary file is removed or renamed before the process exits, so
// no exit that we control leaves one behind. Those left by a process killed
// with SIGKILL are removed at the next start (remove_stale_temporaries).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>

#include "apps/cli_run.h"

#include "apps/cli_options.h"
#include "apps/cli_signals.h"
#include "apps/cli_text.h"
#include "apps/video_cli.h"
#include "engine/base/exit_codes.h"
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/run/memory_plan.h"
#include "engine/run/transfer.h"
#include "engine/io/weights.h"

namespace nst::cli {

namespace {

// "out.png", "100" -> "out_100.png"
std::string numbered_path(const std::string& path, const std::string& label) {
    const std::filesystem::path p(path);
    return (p.parent_path() / (p.stem().string() + "_" + label + p.extension().string())).string();
}

bool same_file(const std::string& a, const std::string& b) {
    std::error_code error;
    return std::filesystem::equivalent(a, b, error) && !error;
}

// Refuses an output path that names an input or a directory, or (unless
// `special_ok`, for the log, which may be /dev/stdout or a pipe) a special file.
void check_not_an_input(const cli::Options& o, const char* option, const std::string& path,
                        bool special_ok = false) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::file_status status = fs::status(path, error);
    if (fs::is_directory(status)) throw UsageError(std::string(option) + " '" + path + "' is a directory");
    if (!special_ok && fs::exists(status) && !fs::is_regular_file(status))
        throw UsageError(std::string(option) + " '" + path + "' exists and is not a regular file");
    for (const auto& [input_option, input] : input_files(o))
        if (same_file(path, input))
            throw UsageError(std::string(option) + " '" + path + "' is the same file as " + input_option + " '" +
                             input + "'; it would be overwritten");
}

// Fails early (before minutes of work) when the output cannot be written.
void check_output(const cli::Options& o) {
    const std::string& path = o.output;
    if (!is_supported_output_path(path))
        throw UsageError("--output '" + path + "': the extension must be .png, .jpg or .jpeg");
    check_not_an_input(o, "--output", path);
    if (!o.log_json.empty()) {
        check_not_an_input(o, "--log-json", o.log_json, true);
        if (same_file(o.log_json, o.output) || o.log_json == o.output)
            throw UsageError("--log-json '" + o.log_json + "' is the --output file");
        // The log is opened only at iteration 0; say now if that would fail.
        std::filesystem::path log_dir = std::filesystem::path(o.log_json).parent_path();
        if (log_dir.empty()) log_dir = ".";
        const bool log_exists = std::filesystem::exists(o.log_json);
        if (::access(log_exists ? o.log_json.c_str() : log_dir.c_str(), log_exists ? W_OK : W_OK | X_OK) != 0)
            throw RuntimeFailure("cannot write --log-json '" + o.log_json + "': " + std::strerror(errno));
    }
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    CriticalSection section;
    std::string probe = (dir / ".neural-style-probe-XXXXXX").string();
    const int fd = mkstemp(probe.data());
    if (fd < 0)
        throw RuntimeFailure("cannot write '" + path + "': " + std::strerror(errno));
    close(fd);
    std::remove(probe.c_str());
}

// Decodes the files the options name into the request (load_image errors name
// the file: exit code 3).
TransferRequest load_request(const cli::Options& o) {
    TransferRequest r = o.request;
    r.content = load_image(o.content);
    r.content_name = o.content;
    r.style_names = o.styles;
    for (std::size_t k = 0; k < o.styles.size(); ++k) r.styles[k] = load_image(o.styles[k]);
    for (std::size_t k = 0; k < o.style_masks.size(); ++k) r.style_masks[k] = load_image(o.style_masks[k]);
    for (std::size_t k = 0; k < o.style_image_masks.size(); ++k)
        if (!o.style_image_masks[k].empty()) r.style_image_masks[k] = load_image(o.style_image_masks[k]);
    if (!o.content_mask.empty()) r.content_mask = load_image(o.content_mask);
    if (r.init == InitKind::image) r.init_image = load_image(o.init);
    return r;
}

// --plan: the memory table of the run on the backend it would use; nothing runs or is written.
int print_plan(const VggWeights& weights, const TransferRequest& request) {
    const std::unique_ptr<Backend> backend = make_backend(
        parse_device(request.device), request.threads, request.precision != Precision::fp32);
    const MemoryPlan plan = plan_memory(*backend, weights, request);
    std::printf("memory plan on %s (%.0f MiB free):\n%s", backend->name().c_str(),
                double(backend->available_bytes()) / (1 << 20), format_memory_plan(plan).c_str());
    return 0;
}

// What a run reports as it goes: the --log-json lines, progress on stderr and
// the --save-every snapshots.
class Reporter {
public:
    Reporter(const cli::Options& o, const TransferRequest& request, const std::string& weights_path)
        : o_(o), weights_path_(weights_path), multiscale_(request.sizes().size() > 1),
          terminal_(::isatty(STDERR_FILENO) == 1) {}
    // An error (printed by main after this) starts on a line of its own.
    ~Reporter() { end_line(); }
    Reporter(const Reporter&) = delete;
    Reporter& operator=(const Reporter&) = delete;

    // Ends the terminal's progress line, if one is open (a run that converged
    // before its last iteration, a new scale, the final message).
    void end_line() {
        if (!g_progress_open.exchange(false)) return;
        std::fputc('\n', stderr);
        std::fflush(stderr);
    }

    TransferCallbacks callbacks() {
        TransferCallbacks callbacks;
        callbacks.cancel = &g_cancel;
        callbacks.on_scale = [this](const ScaleStart& scale) { on_scale(scale); };
        callbacks.on_iteration = [this](const TransferProgress& p) {
            open_log();
            g_running = true;  // from now on an image exists: a first signal stops after the iteration
            write_log(p);
            print_progress(p);
            save_snapshot(p);
            return true;
        };
        return callbacks;
    }

private:
    using Clock = std::chrono::steady_clock;

    void on_scale(const ScaleStart& scale) {
        last_print_ = first_iteration_ = Clock::now();
        if (o_.quiet) return;
        end_line();
        std::fprintf(stderr, "neural-style: %s%s, %dx%d, %zu style image(s), %d %s iterations, style weight %g, weights %s\n",
                     multiscale_ ? ("scale " + std::to_string(scale.scale + 1) + "/" + std::to_string(scale.scales) + ": ").c_str() : "",
                     scale.backend.c_str(), scale.width, scale.height, scale.style_count, scale.iterations,
                     o_.request.optimizer.name(), scale.style_weight, weights_path_.c_str());
    }

    // Opened (and truncated) at iteration 0, so that a run stopped during set-up
    // leaves an existing log as it was.
    void open_log() {
        if (o_.log_json.empty() || log_.is_open()) return;
        log_.open(o_.log_json, std::ios::trunc);
        if (!log_) throw RuntimeFailure("cannot write --log-json '" + o_.log_json + "': " + std::strerror(errno));
    }

    void write_log(const TransferProgress& p) {
        if (!log_.is_open()) return;
        const LossTerms& terms = p.terms;
        nlohmann::json line = {{"iteration", p.iteration},
                               {"evaluations", p.evaluations},
                               {"loss", terms.loss},
                               {"seconds", p.seconds},
                               {"peak_bytes", p.peak_bytes}};
        for (const LossTermField& term : kLossTermFields) line[std::string(term.name) + "_loss"] = terms.*term.value;
        // Coarse to fine: iterations and evaluations count from 0 again at each scale.
        if (multiscale_) {
            line["scale"] = p.scale;
            line["size"] = p.size;
        }
        if (!p.event.empty()) line["event"] = p.event;
        log_ << line.dump() << '\n' << std::flush;
        if (!log_) throw RuntimeFailure("cannot write --log-json '" + o_.log_json + "'");
    }

    // On a terminal, one line redrawn in place: a carriage return, the text, then
    // "erase to the end of the line" for what a longer text left; at most every
    // 0.1 s, and always at iteration 0 and at the scale's last iteration, which
    // ends the line. Elsewhere (a file, a pipe, CI) one plain line at iteration 0,
    // every tenth of the scale's iterations and the last.
    void print_progress(const TransferProgress& p) {
        if (o_.quiet) return;
        if (!p.event.empty()) print_line("iteration " + std::to_string(p.iteration) + ": " + p.event);
        const auto now = Clock::now();
        if (p.iteration == 0) first_iteration_ = now;
        const bool last = p.iteration == p.iterations;
        if (terminal_) {
            if (!last && p.iteration != 0 && now - last_print_ < std::chrono::milliseconds(100)) return;
        } else {
            const int every = std::max(1, (p.iterations + 9) / 10);
            if (!last && p.iteration % every != 0) return;
        }
        last_print_ = now;
        const std::string line = progress_text(p, now);
        if (!terminal_) {
            std::fprintf(stderr, "%s\n", line.c_str());
            return;
        }
        std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
        g_progress_open = true;
        if (last) end_line();
        std::fflush(stderr);
    }

    // "scale 1/2  iteration 120/500  3.41 it/s  ETA 35s  loss 3.02e11  content 1.20e5
    // style 3.01e8  tv 0": the terms unweighted, as --log-json has them.
    std::string progress_text(const TransferProgress& p, Clock::time_point now) const {
        std::string line;
        if (multiscale_) line += "scale " + std::to_string(p.scale + 1) + "/" + std::to_string(p.scales) + "  ";
        const int width = static_cast<int>(std::to_string(p.iterations).size());
        char counter[64];
        std::snprintf(counter, sizeof counter, "iteration %*d/%d", width, p.iteration, p.iterations);
        line += counter;
        const double seconds = std::chrono::duration<double>(now - first_iteration_).count();
        const double rate = p.iteration > 0 && seconds > 0 ? p.iteration / seconds : 0.0;
        char speed[32];
        std::snprintf(speed, sizeof speed, "  %.2f it/s", rate);
        line += std::string(speed) + "  ETA " +
                format_duration(rate > 0 ? (p.iterations - p.iteration) / rate : NAN) + "  loss " +
                short_number(p.terms.loss);
        for (const LossTermField& term : kLossTermFields)
            line += std::string("  ") + term.name + " " + short_number(p.terms.*term.value);
        return line;
    }

    // A line of its own, printed over the terminal's progress line, which the next
    // progress report draws again below it.
    void print_line(const std::string& text) {
        if (terminal_ && g_progress_open.exchange(false)) {
            std::fprintf(stderr, "\r\x1b[K%s\n", text.c_str());
            return;
        }
        std::fprintf(stderr, "%s\n", text.c_str());
    }

    void save_snapshot(const TransferProgress& p) {
        const bool last = p.iteration == p.iterations;
        if (o_.save_every <= 0 || p.iteration == 0 || p.iteration % o_.save_every != 0 ||
            (last && p.scale + 1 == p.scales))
            return;
        const std::string snapshot =
            multiscale_ ? numbered_path(o_.output, "s" + std::to_string(p.scale + 1) + "_" + std::to_string(p.iteration))
                        : numbered_path(o_.output, std::to_string(p.iteration));
        // A snapshot that cannot be written (full disk, a name taken by an
        // input) is reported; the run goes on towards the final image.
        try {
            check_not_an_input(o_, "--save-every snapshot", snapshot);
            save_image_critical(snapshot, p.current_image(), o_.save);
        } catch (const Error& e) {
            print_line("neural-style: warning: snapshot of iteration " + std::to_string(p.iteration) +
                       " not written: " + e.what());
        }
    }

    const cli::Options& o_;
    const std::string weights_path_;
    const bool multiscale_;
    const bool terminal_;  // stderr is a terminal: one line redrawn in place
    std::ofstream log_;
    Clock::time_point last_print_ = Clock::now(), first_iteration_ = last_print_;
};

// Writes the result (unless the optimisation failed before its first
// iteration: the output is not replaced by the starting image) and returns the
// exit code: 128 + the signal after a signal.
int finish(const cli::Options& o, const TransferRequest& request, const TransferResult& result) {
    const OptimizationResult& opt = result.optimization;
    const bool failed_at_start = opt.reason == StopReason::failed && opt.iterations == 0 && request.sizes().size() == 1;
    const bool written = result.image.width > 0 && !failed_at_start;
    if (written) {
        save_image_critical(o.output, result.image, o.save);
        if (!o.quiet) {
            std::fprintf(stderr, "neural-style: %s after %d iterations (%d evaluations), loss %.5e, %s, peak %s memory %.0f MiB: wrote %s\n",
                         opt.reason == StopReason::converged ? "converged" : "stopped",
                         opt.iterations, opt.evaluations, opt.loss, format_duration(result.seconds).c_str(),
                         result.backend.c_str(), double(result.peak_bytes) / (1 << 20), o.output.c_str());
            if (opt.reason != StopReason::iterations && !opt.message.empty() && g_signal.load() == 0)
                std::fprintf(stderr, "neural-style: %s\n", opt.message.c_str());
        }
    }
    if (const int signal = g_signal.load()) {
        if (written)
            std::fprintf(stderr, "neural-style: interrupted by %s; wrote the image of iteration %d to %s\n",
                         signal_name(signal), opt.iterations, o.output.c_str());
        else
            std::fprintf(stderr, "neural-style: interrupted by %s; nothing was written\n", signal_name(signal));
        return 128 + signal;
    }
    if (opt.reason == StopReason::failed)
        throw RuntimeFailure("the optimisation failed: " + opt.message +
                             (written ? " (the last good image was written)" : " (nothing was written)"));
    return 0;
}

}  // namespace

// The files the run reads; the output (and the log) must be none of them.
std::vector<std::pair<std::string, std::string>> input_files(const Options& o) {
    std::vector<std::pair<std::string, std::string>> files = {{"--content", o.content}};
    for (const auto& s : o.styles) files.push_back({"--style", s});
    for (const auto& m : o.style_masks) files.push_back({"--style-masks", m});
    for (const auto& m : o.style_image_masks)
        if (!m.empty()) files.push_back({"--style-image-masks", m});
    if (!o.content_mask.empty()) files.push_back({"--content-mask", o.content_mask});
    if (o.init != "noise" && o.init != "content" && o.init != "style") files.push_back({"--init", o.init});
    return files;
}

int run(const Options& o, const SharedRun* shared) {
    if (o.video) {
        if (shared) return run_video(o, *shared->weights, shared->weights_path);
        const std::string weights_path = resolve_weights_path(o.weights);
        return run_video(o, read_weights(weights_path), weights_path);
    }
    if (!o.plan) {  // --plan writes nothing
        check_output(o);
        if (const int stale = remove_stale_temporaries(o.output); stale > 0 && !o.quiet)
            std::fprintf(stderr, "neural-style: removed %d temporary file(s) left by a killed run next to %s\n",
                         stale, o.output.c_str());
    }
    const std::string weights_path = shared ? shared->weights_path : resolve_weights_path(o.weights);
    VggWeights own_weights;
    if (!shared) own_weights = read_weights(weights_path);
    const VggWeights& weights = shared ? *shared->weights : own_weights;
    const TransferRequest request = load_request(o);
    if (o.plan) return print_plan(weights, request);
    Reporter reporter(o, request, weights_path);
    const TransferResult result =
        shared ? run_transfer(*shared->backend, weights, request, reporter.callbacks(), shared->style_targets)
               : run_transfer(weights, request, reporter.callbacks());
    reporter.end_line();
    return finish(o, request, result);
}

}  // namespace nst::cli
