// neural-style: the command-line front end. Parses options, loads the weights
// and images, runs the optimiser, writes the image atomically. Exit codes as in
// engine/base/exit_codes.h, and 130 when interrupted (the image so far is written).
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

#include "apps/cli_options.h"
#include "engine/base/exit_codes.h"
#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/memory_plan.h"
#include "engine/transfer.h"
#include "engine/weights.h"

namespace {

using namespace nst;

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

// "out.png", "100" -> "out_100.png"
std::string numbered_path(const std::string& path, const std::string& label) {
    const std::filesystem::path p(path);
    return (p.parent_path() / (p.stem().string() + "_" + label + p.extension().string())).string();
}

// Fails early (before minutes of work) when the output cannot be written.
void check_output_writable(const std::string& path) {
    if (!is_supported_output_path(path))
        throw UsageError("--output '" + path + "': the extension must be .png, .jpg or .jpeg");
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    std::string probe = (dir / ".neural-style-probe-XXXXXX").string();
    const int fd = mkstemp(probe.data());
    if (fd < 0)
        throw RuntimeFailure("cannot write '" + path + "': " + std::strerror(errno));
    close(fd);
    std::remove(probe.c_str());
}

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const long s = std::lround(seconds);
    char text[32];
    if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
    else std::snprintf(text, sizeof text, "%lds", s);
    return text;
}

// Decodes the files the options name into the request (load_image errors name
// the file: exit code 3).
TransferRequest load_request(const cli::Options& o) {
    TransferRequest r = cli::request_without_images(o);
    r.content = load_image(o.content);
    for (std::size_t k = 0; k < o.styles.size(); ++k) r.styles[k] = load_image(o.styles[k]);
    for (std::size_t k = 0; k < o.style_masks.size(); ++k) r.style_masks[k] = load_image(o.style_masks[k]);
    for (std::size_t k = 0; k < o.style_image_masks.size(); ++k)
        if (!o.style_image_masks[k].empty()) r.style_image_masks[k] = load_image(o.style_image_masks[k]);
    if (!o.content_mask.empty()) r.content_mask = load_image(o.content_mask);
    if (r.init == "image") r.init_image = load_image(o.init);
    return r;
}

// --plan: the memory table of the run on the backend it would use; nothing runs or is written.
int print_plan(const VggWeights& weights, const TransferRequest& request) {
    const std::unique_ptr<Backend> backend = make_backend(
        parse_device(request.device), request.threads, request.precision != "fp32");
    const MemoryPlan plan = plan_memory(*backend, weights, request);
    std::printf("memory plan on %s (%.0f MiB free):\n%s", backend->name().c_str(),
                double(backend->available_bytes()) / (1 << 20), format_memory_plan(plan).c_str());
    return 0;
}

int run(const cli::Options& o) {
    if (!o.plan) check_output_writable(o.output);

    const std::string weights_path = resolve_weights_path(o.weights);
    const VggWeights weights = read_weights(weights_path);
    const TransferRequest request = load_request(o);
    if (o.plan) return print_plan(weights, request);

    std::ofstream log;
    if (!o.log_json.empty()) {
        log.open(o.log_json, std::ios::trunc);
        if (!log) throw RuntimeFailure("cannot write --log-json '" + o.log_json + "': " + std::strerror(errno));
    }

    using Clock = std::chrono::steady_clock;
    const bool multiscale = request.sizes().size() > 1;
    auto last_print = Clock::now();
    auto scale_start = last_print;
    TransferCallbacks callbacks;
    callbacks.cancel = &g_interrupted;
    callbacks.on_scale = [&](const ScaleStart& scale) {
        scale_start = last_print = Clock::now();
        if (!o.quiet)
            std::fprintf(stderr, "neural-style: %s%s, %dx%d, %zu style image(s), %d %s iterations, style weight %g, weights %s\n",
                         multiscale ? ("scale " + std::to_string(scale.scale + 1) + "/" + std::to_string(scale.scales) + ": ").c_str() : "",
                         scale.backend.c_str(), scale.width, scale.height, scale.style_count, scale.iterations,
                         o.optimizer.c_str(), scale.style_weight, weights_path.c_str());
    };
    callbacks.on_iteration = [&](const TransferProgress& p) {
        const LossTerms& terms = p.terms;
        if (log.is_open()) {
            nlohmann::json line = {{"iteration", p.iteration},
                                   {"evaluations", p.evaluations},
                                   {"loss", terms.loss},
                                   {"content_loss", terms.content},
                                   {"style_loss", terms.style},
                                   {"tv_loss", terms.tv},
                                   {"seconds", p.seconds},
                                   {"peak_bytes", p.peak_bytes}};
            // Coarse to fine: iterations and evaluations count from 0 again at each scale.
            if (multiscale) {
                line["scale"] = p.scale;
                line["size"] = p.size;
            }
            if (!p.event.empty()) line["event"] = p.event;
            log << line.dump() << '\n' << std::flush;
            if (!log) throw RuntimeFailure("cannot write --log-json '" + o.log_json + "'");
        }
        if (!o.quiet && !p.event.empty())
            std::fprintf(stderr, "iteration %d: %s\n", p.iteration, p.event.c_str());
        const bool last = p.iteration == p.iterations;
        const auto now = Clock::now();
        if (!o.quiet && (last || p.iteration == 0 || now - last_print >= std::chrono::seconds(2))) {
            last_print = now;
            const double scale_seconds = std::chrono::duration<double>(now - scale_start).count();
            const double rate = p.iteration > 0 ? p.iteration / scale_seconds : 0.0;
            std::fprintf(stderr, "iteration %5d/%d  loss %.5e  content %.4e  style %.4e  tv %.4e  %.2f it/s  ETA %s\n",
                         p.iteration, p.iterations, terms.loss, terms.content, terms.style, terms.tv, rate,
                         format_duration(rate > 0 ? (p.iterations - p.iteration) / rate : NAN).c_str());
        }
        if (o.save_every > 0 && p.iteration > 0 && p.iteration % o.save_every == 0 &&
            !(last && p.scale + 1 == p.scales))
            save_image(multiscale ? numbered_path(o.output, "s" + std::to_string(p.scale + 1) + "_" +
                                                                std::to_string(p.iteration))
                                  : numbered_path(o.output, std::to_string(p.iteration)),
                       p.current_image());
        return true;
    };

    const TransferResult result = run_transfer(weights, request, callbacks);
    const OptimizationResult& opt = result.optimization;
    if (result.image.width > 0) {
        save_image(o.output, result.image);
        if (!o.quiet) {
            std::fprintf(stderr, "neural-style: %s after %d iterations (%d evaluations), loss %.5e, %s, peak %s memory %.0f MiB: wrote %s\n",
                         opt.reason == StopReason::converged ? "converged" : "stopped",
                         opt.iterations, opt.evaluations, opt.loss, format_duration(result.seconds).c_str(),
                         result.backend.c_str(), double(result.peak_bytes) / (1 << 20), o.output.c_str());
            if (opt.reason != StopReason::iterations && !opt.message.empty())
                std::fprintf(stderr, "neural-style: %s\n", opt.message.c_str());
        }
    }
    if (g_interrupted) {
        std::fprintf(stderr, "neural-style: interrupted; wrote the image of iteration %d\n", opt.iterations);
        return 130;
    }
    if (opt.reason == StopReason::failed)
        throw RuntimeFailure("the optimisation failed: " + opt.message + " (the last good image was written)");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    return nst::run_reporting_errors("neural-style", [&] {
        nst::cli::Options options;
        if (nst::cli::parse(argc, argv, options) == nst::cli::ParseOutcome::exit_success) return 0;
        return run(options);
    });
}
