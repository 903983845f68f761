// nst-weights: import, normalise and inspect VGG-19 weights (docs/WEIGHTS.md).
//   nst-weights import-keras IN.h5 OUT.h5
//   nst-weights normalize --images DIR|FILES IN.h5 OUT.h5 [--size 256] [--pool avg|max] [--device auto]
//   nst-weights info FILE.h5
// Exit codes: 0 success, 2 usage error, 3 bad input, 4 failure while running.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>
#include <sstream>

#include "engine/backends/backend.h"
#include "engine/base/exit_codes.h"
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "weights_tools/tools.h"

namespace {

using namespace nst;
namespace fs = std::filesystem;

struct Options {
    std::string input, output;
    std::vector<std::string> images;
    int size = 256;
    std::string pool = "avg";
    std::string device = "auto";
    int threads = 0;
};

bool is_image_name(const fs::path& path) {
    std::string extension = path.extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension == ".jpg" || extension == ".jpeg" || extension == ".png";
}

// Each --images value is a file or a folder (its .jpg/.jpeg/.png files, sorted
// by name so that a run is reproducible).
std::vector<std::string> image_paths(const std::vector<std::string>& arguments) {
    std::vector<std::string> paths;
    for (const std::string& argument : arguments) {
        std::error_code error;
        if (fs::is_directory(argument, error)) {
            std::vector<std::string> found;
            for (const auto& entry : fs::directory_iterator(argument, error))
                if (entry.is_regular_file() && is_image_name(entry.path()))
                    found.push_back(entry.path().string());
            if (error)
                throw InputError("--images '" + argument + "': cannot list the folder (" +
                                 error.message() + ")");
            if (found.empty())
                throw InputError("--images '" + argument +
                                 "': no .jpg, .jpeg or .png files in the folder");
            std::sort(found.begin(), found.end());
            paths.insert(paths.end(), found.begin(), found.end());
        } else if (fs::exists(argument, error)) {
            paths.push_back(argument);
        } else {
            throw InputError("--images '" + argument + "': no such file or folder");
        }
    }
    return paths;
}

int run_import_keras(const Options& o) {
    const VggWeights weights = weights_tools::import_keras(o.input);
    write_weights(o.output, weights);
    std::printf("imported %zu layers from '%s' into '%s'\n", weights.layers.size(),
                o.input.c_str(), o.output.c_str());
    return 0;
}

int run_normalize(const Options& o) {
    VggWeights weights = read_weights(o.input);
    const std::vector<std::string> paths = image_paths(o.images);
    std::vector<Image> images;
    std::string names;
    for (const std::string& path : paths) {
        images.push_back(resize_longest_side(load_image(path), o.size));
        names += (names.empty() ? "" : ",") + fs::path(path).filename().string();
    }
    const auto backend = make_backend(parse_device(o.device), o.threads, false);
    const PoolMode pool = o.pool == "max" ? PoolMode::max : PoolMode::average;

    std::vector<weights_tools::LayerScales> report;
    VggWeights normalized = weights_tools::normalize(weights, images, pool, *backend, report);
    normalized.extra_attributes["normalized"] = "gatys-mean-activation";
    normalized.extra_attributes["normalized_on"] = names;
    normalized.extra_attributes["normalized_size"] = std::to_string(o.size);
    normalized.extra_attributes["normalized_pool"] = o.pool;
    write_weights(o.output, normalized);

    std::printf("normalised on %zu image(s) at %d px, %s pooling, on %s\n", images.size(), o.size,
                o.pool.c_str(), backend->name().c_str());
    std::printf("%-8s %8s %6s %12s %12s %14s\n", "layer", "filters", "dead", "min scale",
                "max scale", "max |mean-1|");
    int dead = 0;
    for (const auto& layer : report) {
        double lowest = 0.0, highest = 0.0;
        bool any = false;
        for (std::size_t c = 0; c < layer.scales.size(); ++c) {
            lowest = any ? std::min(lowest, layer.scales[c]) : layer.scales[c];
            highest = any ? std::max(highest, layer.scales[c]) : layer.scales[c];
            any = true;
        }
        std::printf("%-8s %8zu %6d %12.5g %12.5g %14.3g\n", layer.name.c_str(),
                    layer.scales.size(), layer.dead_filters, lowest, highest,
                    layer.max_deviation);
        dead += layer.dead_filters;
    }
    std::printf("dead filters (left unchanged): %d\nwrote '%s'\n", dead, o.output.c_str());
    return 0;
}

int run_info(const Options& o) {
    const VggWeights weights = read_weights(o.input);
    std::ostringstream text;
    weights_tools::print_info(o.input, weights, text);
    std::fputs(text.str().c_str(), stdout);
    return 0;
}

int run(int argc, char** argv) {
    CLI::App app{"nst-weights: import, normalise and inspect VGG-19 weights (nst-vgg19 HDF5)"};
    app.require_subcommand(1);
    Options o;

    CLI::App* import = app.add_subcommand(
        "import-keras", "Convert Keras' VGG-19 weights (vgg19_weights_tf_dim_ordering_tf_kernels"
                        "[_notop].h5) to nst-vgg19");
    import->add_option("IN", o.input, "Keras .h5 file")->required();
    import->add_option("OUT", o.output, "nst-vgg19 .h5 to write")->required();

    CLI::App* normalize = app.add_subcommand(
        "normalize", "Scale the weights so that every filter's mean activation on the images is 1");
    // One value per --images (repeat it, or separate with commas): a space-separated
    // list could not be told apart from the IN and OUT that follow it.
    normalize->add_option("--images", o.images,
                          "An image file or folder; repeat --images, or separate with commas")
        ->required()
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->allow_extra_args(false)
        ->delimiter(',');
    normalize->add_option("IN", o.input, "nst-vgg19 .h5 to normalise")->required();
    normalize->add_option("OUT", o.output, "nst-vgg19 .h5 to write")->required();
    normalize->add_option("--size", o.size, "Longest side the images are resized to")
        ->check(CLI::Range(16, 16384))
        ->capture_default_str();
    normalize->add_option("--pool", o.pool, "Pooling between blocks")
        ->check(CLI::IsMember({"avg", "max"}))
        ->capture_default_str();
    normalize->add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
    normalize->add_option("--threads", o.threads, "CPU threads (0: OpenMP's default)")
        ->check(CLI::NonNegativeNumber);

    CLI::App* info = app.add_subcommand("info", "Print format, preprocessing and weight statistics");
    info->add_option("FILE", o.input, "nst-vgg19 .h5")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string message = e.what();
        if (message.empty()) message = "invalid command line";
        throw UsageError(message + " (see --help)");
    }
    if (import->parsed()) return run_import_keras(o);
    if (normalize->parsed()) return run_normalize(o);
    return run_info(o);
}

}  // namespace

int main(int argc, char** argv) {
    return nst::run_reporting_errors("nst-weights", [&] { return run(argc, argv); });
}
