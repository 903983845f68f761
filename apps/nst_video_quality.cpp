// nst-video-quality: how a setting of the video run does on a clip (DESIGN.md,
// "Video"; docs/BENCHMARKS.md, "Video"). Stylises the frames of a clip one way
// and prints one JSON line: the temporal error E (video_quality.h: flows and
// weights from the content frames), the mean content and style losses of the
// frames as written (unweighted, as LossTerms), and the time.
//
//   --mode video        the video run (VideoRun) with the given options
//   --mode independent  each frame as a still (run_transfer on the frame): what a
//                       loop around the image CLI gives
//
//   nst-video-quality --mode video --content clip.mp4 --style s.jpg --frames 0:12
//       --size 96 --iterations 200 --frame-iterations 100 --temporal-weight 1e4
//
// Every other --flag value pair is a run option (engine/run/run_options.h).
// Exit codes as neural-style.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "engine/base/exit_codes.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "engine/run/run_options.h"
#include "engine/run/transfer.h"
#include "engine/video/video_io.h"
#include "engine/video/video_quality.h"
#include "engine/video/video_transfer.h"

namespace {

using namespace nst;
using Clock = std::chrono::steady_clock;

struct Arguments {
    std::string mode = "video", content, weights, save, work;
    std::vector<std::string> styles;
    TransferRequest request;
};

Arguments parse(int argc, char** argv) {
    Arguments a;
    a.request.threads = 0;
    for (int k = 1; k < argc; ++k) {
        const std::string flag = argv[k];
        if (flag.rfind("--", 0) != 0 || k + 1 >= argc) throw UsageError("expected --flag value, got '" + flag + "'");
        const std::string value = argv[++k];
        if (flag == "--mode") a.mode = value;
        else if (flag == "--content") a.content = value;
        else if (flag == "--style") a.styles.push_back(value);
        else if (flag == "--weights") a.weights = value;
        else if (flag == "--save") a.save = value;  // a frame pattern for the frames made
        else if (flag == "--work") a.work = value;  // the video run's work folder
        else set_run_option(a.request, flag, value);
    }
    if (a.content.empty() || a.styles.empty()) throw UsageError("--content and --style are required");
    if (a.mode != "video" && a.mode != "independent") throw UsageError("--mode is video or independent");
    a.request.scale_sizes = {a.request.size};
    a.request.scale_iterations = {a.request.iterations};
    for (const std::string& style : a.styles) a.request.styles.push_back(load_image(style));
    return a;
}

// The content frames of the range at the video run's frame size.
std::vector<Image> content_frames(const std::string& path, const FrameRange& range, int width, int height) {
    std::vector<Image> frames;
    auto source = FrameSource::open(path);
    Image frame;
    for (long long index = 0; source->next(frame); ++index) {
        if (index < range.first) continue;
        if (range.end >= 0 && index >= range.end) break;
        frames.push_back(resize_image(frame, width, height));
    }
    return frames;
}

int run(int argc, char** argv) {
    Arguments a = parse(argc, argv);
    const VggWeights weights = read_weights(resolve_weights_path(a.weights));
    const Clock::time_point start = Clock::now();
    std::vector<Image> stylised;
    VideoRequest v;
    v.frame = a.request;
    v.content = a.content;
    v.work_folder = a.work.empty() ? std::filesystem::temp_directory_path().string() + "/nst-video-quality-" +
                                         std::to_string(::getpid())
                                   : a.work;
    int width = 0, height = 0;
    std::vector<Image> contents;
    if (a.mode == "video") {
        VideoRun run(weights, v);
        width = run.plan().width;
        height = run.plan().height;
        while (auto frame = run.next()) stylised.push_back(frame->image);
        remove_work_folder(v.work_folder);
        contents = content_frames(a.content, parse_frame_range(a.request.frames), width, height);
    } else {
        // The frame size of the video run, so that both are measured alike.
        const VideoInfo info = FrameSource::open(a.content)->info();
        std::tie(width, height) = video_frame_size(info.width, info.height, a.request.size);
        contents = content_frames(a.content, parse_frame_range(a.request.frames), width, height);
        TransferRequest still = a.request;
        static const TransferRequest defaults;
        for (const std::string& flag : video_only_options())
            set_run_option(still, flag, run_option_text(defaults, flag));
        for (const Image& content : contents) {
            still.content = content;
            stylised.push_back(run_transfer(weights, still).image);
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!a.save.empty())
        for (std::size_t k = 0; k < stylised.size(); ++k) save_image(frame_path(a.save, long(k)), stylised[k]);

    // The losses of the frames as written, each with its own content target.
    TransferRequest measure = a.request;
    measure.content = contents.front();
    measure.size = std::max(width, height);
    measure.scale_sizes = {measure.size};
    measure.device = "cpu";
    const std::unique_ptr<Backend> backend = make_backend(parse_device("cpu"), a.request.threads, false);
    auto objective = std::make_unique<StyleTransferObjective>(*backend, weights,
                                                              [&] {
                                                                  ObjectiveConfig c;
                                                                  c.style_weight = default_style_weight(measure, weights);
                                                                  return c;
                                                              }(),
                                                              width, height);
    std::vector<double> content_losses, style_losses;
    Buffer x(*backend, 3 * std::size_t(width) * height), grad(*backend, 3 * std::size_t(width) * height);
    objective->set_styles([&] {
        std::vector<Image> styles;
        for (const Image& style : measure.styles) styles.push_back(resize_longest_side(style, measure.size));
        return styles;
    }());
    for (std::size_t k = 0; k < stylised.size(); ++k) {
        objective->set_content(contents[k]);
        backend->upload(x.data(), stylised[k].pixels.data(), stylised[k].pixels.size());
        objective->evaluate(x.data(), grad.data());
        content_losses.push_back(objective->last_terms().content);
        style_losses.push_back(objective->last_terms().style);
    }
    const TemporalErrors errors = temporal_errors(contents, stylised);
    const auto mean = [](const std::vector<double>& values) {
        double sum = 0;
        for (double value : values) sum += value;
        return sum / double(values.size());
    };
    nlohmann::json line = {{"mode", a.mode},
                           {"content", a.content},
                           {"frames", stylised.size()},
                           {"width", width},
                           {"height", height},
                           {"temporal_error", errors.mean},
                           {"temporal_error_per_frame", errors.per_frame},
                           {"content_loss", mean(content_losses)},
                           {"style_loss", mean(style_losses)},
                           {"seconds", seconds}};
    for (const RunOption& option : run_options())
        if (option.flag == "temporal-weight" || option.flag == "temporal-frames" || option.flag == "passes" ||
            option.flag == "iterations" || option.flag == "frame-iterations" || option.flag == "size" ||
            option.flag == "flow")
            line[option.flag] = run_option_text(a.request, option.flag);
    std::cout << line.dump() << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return nst::run_reporting_errors("nst-video-quality", [&] { return run(argc, argv); });
}
