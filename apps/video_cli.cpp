// neural-style with a video as --content (apps/video_cli.h).
#include "apps/video_cli.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "apps/cli_signals.h"
#include "apps/cli_text.h"
#include "engine/base/error.h"
#include "engine/run/memory_plan.h"
#include "engine/video/video_transfer.h"

namespace nst::cli {

namespace {

namespace fs = std::filesystem;

// The output of a video: a video file or a frame pattern, in a writable folder,
// and not the input.
void check_video_output(const Options& o) {
    const std::string& out = o.output;
    if (!is_video_output_path(out) && !(is_frame_pattern(out) && is_supported_output_path(out)))
        throw UsageError("--output '" + out +
                         "': a video's output is .mp4 or .mkv (H.264), .webm (VP9) or a frame pattern such as out/%04d.png");
    std::error_code error;
    if (out == o.content || (!is_frame_pattern(out) && fs::equivalent(out, o.content, error) && !error) ||
        (is_frame_pattern(out) && is_frame_pattern(o.content) &&
         fs::equivalent(frame_path(out, 0), frame_path(o.content, 0), error) && !error))
        throw UsageError("--output '" + out + "' is the --content video; it would be overwritten");
    const fs::path file = is_frame_pattern(out) ? fs::path(frame_path(out, 0)) : fs::path(out);
    fs::path dir = file.parent_path();
    if (dir.empty()) dir = ".";
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw RuntimeFailure("cannot write '" + out + "': " + std::strerror(errno));
}

// Free bytes where `folder` is (or would be made).
long long free_bytes(const fs::path& folder) {
    fs::path at = folder;
    while (!at.empty() && !fs::exists(at)) at = at.parent_path();
    if (at.empty()) at = ".";
    struct statvfs stats {};
    if (::statvfs(at.c_str(), &stats) != 0) return -1;
    return static_cast<long long>(stats.f_bavail) * static_cast<long long>(stats.f_frsize);
}

double mib(long long bytes) { return double(bytes) / (1 << 20); }

// Progress on stderr, one --log-json line per iteration and one per frame.
class VideoReporter {
public:
    VideoReporter(const Options& o, const VideoPlan& plan) : o_(o), plan_(plan), terminal_(::isatty(STDERR_FILENO) == 1) {
        if (!o_.log_json.empty()) {
            log_.open(o_.log_json, std::ios::trunc);
            if (!log_) throw RuntimeFailure("cannot write --log-json '" + o_.log_json + "': " + std::strerror(errno));
        }
    }
    ~VideoReporter() { end_line(); }

    void end_line() {
        if (!g_progress_open.exchange(false)) return;
        std::fputc('\n', stderr);
        std::fflush(stderr);
    }

    void on_iteration(const VideoProgress& p) {
        const TransferProgress& it = p.iteration;
        if (log_.is_open()) {
            nlohmann::json line = {{"frame", p.index},     {"pass", p.pass},     {"iteration", it.iteration},
                                   {"evaluations", it.evaluations}, {"loss", it.terms.loss}, {"seconds", it.seconds}};
            for (const LossTermField& term : kLossTermFields) line[std::string(term.name) + "_loss"] = it.terms.*term.value;
            if (it.scales > 1) line["scale"] = it.scale;
            if (!it.event.empty()) line["event"] = it.event;
            write(line);
        }
        if (o_.quiet) return;
        const auto now = Clock::now();
        const bool last = it.iteration == it.iterations;
        if (!terminal_ || (!last && it.iteration != 0 && now - last_print_ < std::chrono::milliseconds(100))) return;
        last_print_ = now;
        std::fprintf(stderr, "\r%s\x1b[K", (frame_text(p) + "  " + iteration_text(it)).c_str());
        g_progress_open = true;
        std::fflush(stderr);
    }

    void on_frame(const VideoFrame& f) {
        if (!f.resumed) {
            optimised_seconds_ += f.optimize_seconds + f.setup_seconds + f.flow_seconds;
            ++optimised_;
        }
        if (log_.is_open()) {
            nlohmann::json line = {{"event", "frame"},         {"frame", f.index},
                                   {"pass", f.pass},           {"resumed", f.resumed},
                                   {"flow_seconds", f.flow_seconds}, {"setup_seconds", f.setup_seconds},
                                   {"optimize_seconds", f.optimize_seconds}, {"seconds", f.seconds}};
            line["temporal_error"] = std::isfinite(f.temporal_error) ? nlohmann::json(f.temporal_error) : nlohmann::json();
            for (const LossTermField& term : kLossTermFields) line[std::string(term.name) + "_loss"] = f.terms.*term.value;
            write(line);
        }
        if (o_.quiet) return;
        end_line();
        const long long count = f.count >= 0 ? f.count : plan_.count;
        const double per_frame = optimised_ > 0 ? optimised_seconds_ / double(optimised_) : NAN;
        const double remaining = count >= 0 ? double(count - f.done) * f.passes : NAN;
        std::fprintf(stderr, "neural-style: frame %lld (%lld/%s) %s%s, temporal error %s, ETA %s\n", f.index, f.done,
                     count >= 0 ? std::to_string(count).c_str() : "?",
                     f.resumed ? "resumed from the work folder" : format_duration(f.seconds - last_frame_seconds_).c_str(),
                     f.resumed ? "" : (" (flow wait " + short_number(f.flow_seconds) + " s, set-up " +
                                       short_number(f.setup_seconds) + " s)").c_str(),
                     std::isfinite(f.temporal_error) ? short_number(f.temporal_error).c_str() : "-",
                     format_duration(per_frame * remaining).c_str());
        last_frame_seconds_ = f.seconds;
    }

private:
    using Clock = std::chrono::steady_clock;

    void write(const nlohmann::json& line) {
        log_ << line.dump() << '\n' << std::flush;
        if (!log_) throw RuntimeFailure("cannot write --log-json '" + o_.log_json + "'");
    }

    std::string frame_text(const VideoProgress& p) const {
        std::string text = "frame " + std::to_string(p.index) + " (" + std::to_string(p.done) + "/" +
                           (p.count >= 0 ? std::to_string(p.count) : std::string("?")) + " done)";
        if (p.passes > 1) text += " pass " + std::to_string(p.pass) + "/" + std::to_string(p.passes);
        return text;
    }

    static std::string iteration_text(const TransferProgress& it) {
        std::string line = "iteration " + std::to_string(it.iteration) + "/" + std::to_string(it.iterations) +
                           "  loss " + short_number(it.terms.loss);
        for (const LossTermField& term : kLossTermFields)
            line += std::string("  ") + term.name + " " + short_number(it.terms.*term.value);
        return line;
    }

    const Options& o_;
    const VideoPlan& plan_;
    const bool terminal_;
    std::ofstream log_;
    Clock::time_point last_print_ = Clock::now();
    double optimised_seconds_ = 0.0, last_frame_seconds_ = 0.0;
    long long optimised_ = 0;
};

// Writes the frames done to a video --output (a pattern's frames are written as
// they come) and says so.
void write_output(const Options& o, const VideoRun& run, bool partial) {
    if (!is_video_output_path(o.output)) return;
    CriticalSection section;
    const long long written = write_video_output(run, o.content, o.output, partial, o.save);
    if (!o.quiet) std::fprintf(stderr, "neural-style: wrote %lld frames to %s\n", written, o.output.c_str());
}

}  // namespace

int run_video(const Options& o, const VggWeights& weights, const std::string& weights_path) {
    if (!o.plan) check_video_output(o);
    VideoRequest v;
    v.frame = o.request;
    v.content = o.content;
    v.work_folder = video_work_folder(o.output);
    for (std::size_t k = 0; k < o.styles.size(); ++k) v.frame.styles[k] = load_image(o.styles[k]);
    v.frame.style_names = o.styles;
    for (std::size_t k = 0; k < o.style_masks.size(); ++k) v.frame.style_masks[k] = load_image(o.style_masks[k]);
    for (std::size_t k = 0; k < o.style_image_masks.size(); ++k)
        if (!o.style_image_masks[k].empty()) v.frame.style_image_masks[k] = load_image(o.style_image_masks[k]);
    if (!o.content_mask.empty()) v.frame.content_mask = load_image(o.content_mask);
    if (v.frame.init == InitKind::image) v.frame.init_image = load_image(o.init);

    std::unique_ptr<VideoReporter> reporter;
    VideoCallbacks callbacks;
    callbacks.cancel = &g_cancel;
    callbacks.on_iteration = [&](const VideoProgress& p) {
        if (reporter) reporter->on_iteration(p);
    };
    VideoRun run(weights, v, callbacks);
    const VideoPlan& plan = run.plan();
    const long long free = free_bytes(v.work_folder);
    const long long needed = plan.count >= 0 ? (plan.count - plan.finished) * plan.work_bytes_per_frame : -1;
    if (!o.quiet || o.plan) {
        std::fprintf(stderr, "neural-style: video %s: %s; frames %lld to %s; stylised at %dx%d on %s, weights %s\n",
                     o.content.c_str(), plan.source.description.c_str(), plan.first,
                     plan.count >= 0 ? std::to_string(plan.first + plan.count - 1).c_str() : "the end", plan.width,
                     plan.height, run.backend_name().c_str(), weights_path.c_str());
        std::fprintf(stderr, "neural-style: work folder %s: up to %s MiB%s (%.0f MiB free)%s\n", v.work_folder.c_str(),
                     plan.count >= 0 ? short_number(mib(plan.work_bytes)).c_str() : "?",
                     plan.count >= 0 ? "" : (" (" + short_number(mib(plan.work_bytes_per_frame)) + " MiB a frame)").c_str(),
                     mib(free), plan.finished > 0 ? (", " + std::to_string(plan.finished) + " frames finished: resuming").c_str() : "");
    }
    if (needed > 0 && free >= 0 && needed > free)
        throw RuntimeFailure("the work folder " + v.work_folder + " needs up to " + short_number(mib(needed)) +
                             " MiB and " + short_number(mib(free)) +
                             " MiB are free; free some space or stylise fewer frames at a time (--frames)");
    if (o.plan) {
        TransferRequest still = v.frame;
        still.content.width = plan.width;
        still.content.height = plan.height;
        still.content.pixels.assign(3 * std::size_t(plan.width) * plan.height, 0.5f);
        still.size = std::max(plan.width, plan.height);
        const std::unique_ptr<Backend> backend =
            make_backend(parse_device(still.device), still.threads, still.precision != Precision::fp32);
        std::printf("memory plan of one frame on %s:\n%s", backend->name().c_str(),
                    format_memory_plan(plan_memory(*backend, weights, still)).c_str());
        // What a video run holds beyond a still's: the temporal targets (an image and
        // its weights per earlier frame of --temporal-frames), the warp's scratch (two
        // images and a flow), and on the host the frames kept for later passes.
        const double pixels = double(plan.width) * plan.height;
        std::printf("video, on %s: temporal targets %.1f MiB (%zu frame(s) × 4 floats a pixel), warp scratch %.1f MiB\n",
                    backend->name().c_str(), mib(static_cast<long long>(pixels * 16.0 * double(still.temporal_frames.size()))),
                    still.temporal_frames.size(), mib(static_cast<long long>(pixels * 32.0)));
        if (still.passes > 1)
            std::printf("video, host memory: the content frames for passes after the first, %s MiB (12 bytes a pixel a frame)\n",
                        plan.count >= 0 ? short_number(mib(static_cast<long long>(pixels * 12.0 * double(plan.count)))).c_str() : "?");
        return 0;
    }

    reporter = std::make_unique<VideoReporter>(o, plan);
    g_running = true;  // a first signal now stops after the current iteration
    try {
        while (const std::optional<VideoFrame> frame = run.next()) {
            if (is_frame_pattern(o.output))  // numbered as the source's frames
                save_image_critical(frame_path(o.output, plan.source.first_number + frame->index), frame->image, o.save);
            reporter->on_frame(*frame);
        }
    } catch (const Cancelled& stopped) {
        reporter->end_line();
        const int signal = g_signal.load();
        std::fprintf(stderr, "neural-style: interrupted by %s: %s\n", signal_name(signal), stopped.what());
        if (o.partial_output) write_output(o, run, true);
        return 128 + signal;
    } catch (const InputError&) {  // a damaged video: the frames before it are kept
        reporter->end_line();
        if (o.partial_output) write_output(o, run, true);
        throw;
    }
    reporter->end_line();
    write_output(o, run, false);
    remove_work_folder(v.work_folder);
    if (!o.quiet) std::fprintf(stderr, "neural-style: done; removed the work folder %s\n", v.work_folder.c_str());
    return 0;
}

}  // namespace nst::cli
