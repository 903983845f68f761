// neural-style: the command-line front end. Parses options, loads the weights
// and images, runs the optimiser, writes the image atomically. Exit codes as in
// apps/exit_codes.h, and 130 when interrupted (the image so far is written).
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
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <random>

#include "apps/cli_options.h"
#include "apps/exit_codes.h"
#include "engine/backend.h"
#include "engine/color.h"
#include "engine/cuda_api.h"
#include "engine/error.h"
#include "engine/image.h"
#include "engine/objective.h"
#include "engine/optimizer.h"
#include "engine/weights.h"

namespace {

using namespace nst;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

std::vector<LayerWeight> equal_weights(const std::vector<std::string>& layers) {
    std::vector<LayerWeight> out;
    for (const auto& name : layers) out.push_back({name, 1.0 / double(layers.size())});
    return out;
}

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

// Remembers the loss terms of recent evaluations so that an iteration report
// (which carries only the total) can be matched to its terms: with a line
// search or a rejected step the last evaluation is not always the iterate.
class RecordingObjective final : public DifferentiableFunction {
public:
    explicit RecordingObjective(StyleTransferObjective& objective) : objective_(objective) {}
    std::size_t size() const override { return objective_.size(); }
    double evaluate(const float* x, float* grad) override {
        const double loss = objective_.evaluate(x, grad);
        record();
        return loss;
    }
    void queue_evaluation(Backend& backend, const float* x, float* grad) override {
        objective_.queue_evaluation(backend, x, grad);
    }
    double queued_result() override {
        const double result = objective_.queued_result();
        record();
        return result;
    }
    // The terms of the most recent evaluation whose total is `loss`.
    const LossTerms* terms_for(double loss) const {
        for (auto it = recent_.rbegin(); it != recent_.rend(); ++it)
            if (it->loss == loss) return &*it;
        return nullptr;
    }

private:
    void record() {
        recent_.push_back(objective_.last_terms());
        if (recent_.size() > 64) recent_.pop_front();
    }
    StyleTransferObjective& objective_;
    std::deque<LossTerms> recent_;
};

// The starting image of the first scale, at the size of `content` (that scale's
// content, grey in luminance mode).
Image initial_image(const cli::Options& o, const Image& content, const Image& first_style) {
    if (o.init == "content") return content;
    Image init;
    if (o.init == "noise") {
        init.width = content.width;
        init.height = content.height;
        init.pixels.resize(content.pixels.size());
        std::mt19937_64 rng(o.seed);
        std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
        for (auto& v : init.pixels) v = uniform(rng);
        return init;
    }
    if (o.init == "style") {
        init = first_style;
    } else {
        init = load_image(o.init);
        if (o.preserve_colors == "luminance") init = grey_image(luminance(init), init.width, init.height);
    }
    return resize_image(init, content.width, content.height);
}

// Everything the objective of each scale is built from, with the colour
// control applied (README, "Controls"):
//   luminance: content → (Y, Y, Y); each style → (Y', Y', Y') with Y' its luminance
//              matched to the content's mean and standard deviation;
//   histogram: each style's colours mapped to the content's mean and covariance.
TransferInputs transfer_inputs(const cli::Options& o, const Image& content) {
    TransferInputs inputs;
    inputs.style_scale = o.style_scale;
    inputs.blend_weights = o.style_blend_weights;
    for (const auto& path : o.styles) inputs.styles.push_back(load_image(path));
    if (o.preserve_colors == "luminance") {
        const std::vector<float> content_y = luminance(content);
        inputs.content = grey_image(content_y, content.width, content.height);
        for (Image& style : inputs.styles)
            style = grey_image(match_mean_std(luminance(style), content_y), style.width, style.height);
    } else {
        inputs.content = content;
        if (o.preserve_colors == "histogram") {
            const ColorTransfer method = parse_color_transfer(o.color_transfer);
            for (Image& style : inputs.styles) style = match_color_statistics(style, content, method);
        }
    }
    for (const auto& path : o.style_masks) inputs.style_masks.push_back(load_image(path));
    for (const auto& path : o.style_image_masks)
        inputs.style_image_masks.push_back(path.empty() ? Image{} : load_image(path));
    if (!o.content_mask.empty()) inputs.content_mask = load_image(o.content_mask);
    return inputs;
}

// β: as given, else the default for the kind of weights (docs/DEFAULTS.md):
// normalised weights need a far larger style weight than Caffe's raw ones.
double default_style_weight(const cli::Options& o, const VggWeights& weights) {
    if (o.style_weight_given || !weights.extra_attributes.count("normalized")) return o.style_weight;
    const double side = o.scale_sizes.back() / 256.0;
    return cli::Defaults::normalized_style_weight_256 * side * side;
}

int run(const cli::Options& o) {
    check_output_writable(o.output);

    const std::string weights_path = cli::resolve_weights_path(o.weights);
    const VggWeights weights = read_weights(weights_path);

    const Image content_photo = load_image(o.content);
    const TransferInputs inputs = transfer_inputs(o, content_photo);
    const bool keep_content_chroma = o.preserve_colors == "luminance" || o.preserve_colors == "post";

    const DeviceChoice device = parse_device(o.device);
    const bool tf32 = o.precision != "fp32";
    std::unique_ptr<Backend> backend = make_backend(device, o.threads, tf32);
    if (o.precision == "tf32" && backend->name() == "cpu")
        throw UsageError("--precision tf32 needs the CUDA backend (the CPU computes in fp32)");

    ObjectiveConfig config;
    config.content_layers = equal_weights(o.content_layers);
    for (auto& l : config.content_layers) l.weight = 1.0;  // c_l = 1 (DESIGN.md)
    config.style_layers = equal_weights(o.style_layers);   // w_l = 1/|S|
    config.content_weight = o.content_weight;
    config.style_weight = default_style_weight(o, weights);
    config.tv_weight = o.tv_weight;
    config.pool = o.pool == "max" ? PoolMode::max : PoolMode::average;
    config.erode_style_masks = o.mask_erosion;

    std::ofstream log;
    if (!o.log_json.empty()) {
        log.open(o.log_json, std::ios::trunc);
        if (!log) throw RuntimeFailure("cannot write --log-json '" + o.log_json + "': " + std::strerror(errno));
    }

    const std::size_t scale_count = o.scale_sizes.size();
    const bool multiscale = scale_count > 1;
    Image image;  // the current image, on the host between scales and when saved
    OptimizationResult result;
    const auto start = Clock::now();
    for (std::size_t k = 0; k < scale_count && !g_interrupted; ++k) {
        const int side = o.scale_sizes[k], iterations = o.scale_iterations[k];
        std::unique_ptr<StyleTransferObjective> objective =
            make_objective_at(*backend, weights, config, inputs, side);
        const int width = objective->width(), height = objective->height();
        if (k == 0) {
            const Image scale_content = resize_longest_side(inputs.content, side);
            const int style_side = std::max(16, int(std::lround(o.style_scale * side)));
            image = initial_image(o, scale_content, resize_longest_side(inputs.styles.front(), style_side));
        } else {
            // Coarse to fine: the previous scale's result, upsampled.
            image = resize_image(image, width, height);
        }
        Buffer x(*backend, image.pixels.size());
        backend->upload(x.data(), image.pixels.data(), image.pixels.size());
        if (!o.quiet)
            std::fprintf(stderr, "neural-style: %s%s, %dx%d, %zu style image(s), %d %s iterations, style weight %g, weights %s\n",
                         multiscale ? ("scale " + std::to_string(k + 1) + "/" + std::to_string(scale_count) + ": ").c_str() : "",
                         backend->name().c_str(), width, height, inputs.styles.size(), iterations,
                         o.optimizer.c_str(), config.style_weight, weights_path.c_str());

        // The image as the user sees it: with the content's chroma in luminance and post modes.
        auto finished = [&](Image current) {
            if (!keep_content_chroma) return current;
            return combine_luminance_chroma(current, resize_longest_side(content_photo, side));
        };
        auto save_current = [&](const std::string& path) {
            backend->download(image.pixels.data(), x.data(), image.pixels.size());
            save_image(path, finished(image));
        };
        RecordingObjective recorder(*objective);
        auto last_print = Clock::now();
        const auto scale_start = last_print;
        auto on_iteration = [&](const IterationReport& report) {
            const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
            const LossTerms* terms = recorder.terms_for(report.loss);
            if (log.is_open()) {
                nlohmann::json line = {{"iteration", report.iteration},
                                       {"evaluations", report.evaluations},
                                       {"loss", report.loss},
                                       {"content_loss", terms ? terms->content : NAN},
                                       {"style_loss", terms ? terms->style : NAN},
                                       {"tv_loss", terms ? terms->tv : NAN},
                                       {"seconds", seconds},
                                       {"peak_bytes", backend->peak_bytes()}};
                // Coarse to fine: iterations and evaluations count from 0 again at each scale.
                if (multiscale) {
                    line["scale"] = k;
                    line["size"] = side;
                }
                if (!report.event.empty()) line["event"] = report.event;
                log << line.dump() << '\n' << std::flush;
                if (!log) throw RuntimeFailure("cannot write --log-json '" + o.log_json + "'");
            }
            if (!o.quiet && !report.event.empty())
                std::fprintf(stderr, "iteration %d: %s\n", report.iteration, report.event.c_str());
            const bool last = report.iteration == iterations;
            if (!o.quiet && (last || report.iteration == 0 ||
                             Clock::now() - last_print >= std::chrono::seconds(2))) {
                last_print = Clock::now();
                const double scale_seconds = std::chrono::duration<double>(last_print - scale_start).count();
                const double rate = report.iteration > 0 ? report.iteration / scale_seconds : 0.0;
                std::fprintf(stderr, "iteration %5d/%d  loss %.5e  content %.4e  style %.4e  tv %.4e  %.2f it/s  ETA %s\n",
                             report.iteration, iterations, report.loss, terms ? terms->content : NAN,
                             terms ? terms->style : NAN, terms ? terms->tv : NAN, rate,
                             format_duration(rate > 0 ? (iterations - report.iteration) / rate : NAN).c_str());
            }
            if (o.save_every > 0 && report.iteration > 0 && report.iteration % o.save_every == 0 &&
                !(last && k + 1 == scale_count))
                save_current(multiscale ? numbered_path(o.output, "s" + std::to_string(k + 1) + "_" +
                                                                      std::to_string(report.iteration))
                                        : numbered_path(o.output, std::to_string(report.iteration)));
            return !g_interrupted.load();
        };

        if (o.optimizer == "adam") {
            AdamOptions adam;
            adam.learning_rate = o.learning_rate.value_or(cli::Defaults::adam_learning_rate);
            result = minimize_adam(*backend, recorder, x.data(), iterations, adam, on_iteration);
        } else {
            LbfgsOptions lbfgs;
            lbfgs.history = o.lbfgs_history;
            lbfgs.line_search = o.line_search == "wolfe" ? LineSearch::wolfe : LineSearch::fixed;
            lbfgs.learning_rate = o.learning_rate.value_or(1.0);
            result = minimize_lbfgs(*backend, recorder, x.data(), iterations, lbfgs, on_iteration);
        }
        if (!backend->all_finite(x.size(), x.data()))
            throw RuntimeFailure("the optimisation produced a non-finite image; nothing was written");
        backend->download(image.pixels.data(), x.data(), image.pixels.size());
        image.width = width;
        image.height = height;
        if (k + 1 == scale_count || g_interrupted || result.reason == StopReason::failed) {
            save_image(o.output, finished(image));
            if (!o.quiet) {
                std::fprintf(stderr, "neural-style: %s after %d iterations (%d evaluations), loss %.5e, %s, peak %s memory %.0f MiB: wrote %s\n",
                             result.reason == StopReason::converged ? "converged" : "stopped",
                             result.iterations, result.evaluations, result.loss,
                             format_duration(std::chrono::duration<double>(Clock::now() - start).count()).c_str(),
                             backend->name().c_str(), double(backend->peak_bytes()) / (1 << 20), o.output.c_str());
                if (result.reason != StopReason::iterations && !result.message.empty())
                    std::fprintf(stderr, "neural-style: %s\n", result.message.c_str());
            }
        }
        if (result.reason == StopReason::failed) break;
    }
    if (g_interrupted) {
        std::fprintf(stderr, "neural-style: interrupted; wrote the image of iteration %d\n", result.iterations);
        return 130;
    }
    if (result.reason == StopReason::failed)
        throw RuntimeFailure("the optimisation failed: " + result.message + " (the last good image was written)");
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
