// Video end to end (DESIGN.md, "Video"): the run's frames, its resumption, the
// temporal loss's effect on flicker, and what the CLI does with bad input. The
// clips are made here with the ffmpeg program: a window panning over a real photo.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/io/color.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "engine/run/transfer.h"
#include "engine/video/frame_store.h"
#include "engine/video/video_io.h"
#include "engine/video/video_quality.h"
#include "engine/video/video_transfer.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace nst;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

// A clip of `frames` frames at 10 fps, 160×120 before any resizing: a window of
// Tübingen panning right by 3 px a frame (and with a 440 Hz tone when `audio`);
// codec_options go to ffmpeg's encoder (-g 1: every frame a key frame).
std::string make_clip(const test::TempDir& dir, const std::string& name, int frames, bool audio,
                      const std::string& codec_options = "") {
    const std::string path = dir.file(name);
    std::ostringstream command;
    command << "ffmpeg -v error -y -loop 1 -i " << quote(test::shared_image_path("tubingen.jpg"));
    if (audio) command << " -f lavfi -i sine=frequency=440:sample_rate=44100";
    command << " -filter_complex \"[0:v]crop=w=480:h=360:x='200+9*n':y=200,scale=160:120,format=yuv420p[v]\""
            << " -map '[v]'" << (audio ? " -map 1:a -c:a aac -b:a 64k" : "") << " -frames:v " << frames
            << " -r 10 -c:v libx264 -crf 12 " << codec_options << " -t " << frames / 10.0 << " " << quote(path);
    const auto made = test::run_command(command.str());
    INFO(command.str() << "\n" << made.err);
    REQUIRE(made.exit_code == 0);
    return path;
}

// The options of a short run that the tests share: 64 px, few iterations, one
// thread; frame_iterations −1: a still's request.
TransferRequest short_request(int first_iterations, int frame_iterations) {
    TransferRequest r;
    r.styles = {load_image(test::shared_image_path("starry_night.jpg"))};
    r.size = 64;
    r.iterations = first_iterations;
    r.scale_sizes = {64};
    r.scale_iterations = {first_iterations};
    if (frame_iterations >= 0) r.frame_iterations = frame_iterations;  // a still refuses it
    r.threads = 1;
    r.device = "cpu";
    return r;
}

std::vector<nlohmann::json> json_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    return lines;
}

std::string probe(const std::string& path, const std::string& entries, const std::string& stream) {
    return test::run_command("ffprobe -v error -select_streams " + stream + " -count_packets -show_entries " +
                             entries + " -of csv=p=0 " + quote(path))
        .out;
}

}  // namespace

TEST_CASE("video: the frame store keeps a frame's bits through its 16-bit file", "[video]") {
    test::TempDir dir("video-store");
    FrameStore store(dir.file("work"), {{"a", "1"}});
    Image frame = test::random_image(17, 9, 3);
    frame.pixels[0] = -0.5f;  // clamped
    frame.pixels[1] = 1.5f;
    const Image stored = FrameStore::stored(frame);
    store.save(1, 4, stored);
    REQUIRE(store.has(1, 4));
    CHECK_FALSE(store.has(1, 5));
    CHECK(store.load(1, 4).pixels == stored.pixels);  // exactly: the run continues from the file's values
    CHECK(stored.pixels[0] == 0.0f);
    CHECK(stored.pixels[1] == 1.0f);
    // A folder made by another request is refused, naming what differs.
    try {
        FrameStore other(dir.file("work"), {{"a", "2"}});
        FAIL("a different fingerprint was accepted");
    } catch (const UsageError& e) {
        CHECK(std::string(e.what()).find("a: '1' there, '2' now") != std::string::npos);
    }
    FrameStore same(dir.file("work"), {{"a", "1"}});
    CHECK(same.has(1, 4));
}

TEST_CASE("video: a stopped run resumes to the same frames as an uninterrupted one", "[video][e2e]") {
    test::TempDir dir("video-resume");
    const std::string clip = make_clip(dir, "clip.mp4", 5, false);
    const VggWeights weights = read_weights(test::shared_weights_path());
    VideoRequest v;
    v.frame = short_request(12, 6);
    v.frame.temporal_frames = {1, 2};  // the long-term loss too
    v.content = clip;

    // Uninterrupted.
    v.work_folder = dir.file("whole");
    std::vector<std::vector<float>> whole;
    {
        VideoRun run(weights, v);
        CHECK(run.plan().count == 5);
        CHECK(run.plan().width == 64);
        CHECK(run.plan().height == 48);
        while (auto frame = run.next()) {
            CHECK(frame->index == long(whole.size()));
            CHECK_FALSE(frame->resumed);
            whole.push_back(frame->image.pixels);
        }
    }
    REQUIRE(whole.size() == 5);

    // Stopped during frame 3, then run again.
    v.work_folder = dir.file("stopped");
    std::atomic<bool> cancel{false};
    VideoCallbacks callbacks;
    callbacks.cancel = &cancel;
    callbacks.on_iteration = [&](const VideoProgress& p) {
        if (p.index == 3 && p.iteration.iteration == 2) cancel = true;
    };
    {
        VideoRun run(weights, v, callbacks);
        long long finished = 0;
        CHECK_THROWS_AS([&] {
            while (auto frame = run.next()) ++finished;
        }(), Cancelled);
        CHECK(finished == 3);
    }
    VideoRun again(weights, v);
    CHECK(again.plan().finished == 3);
    long long k = 0;
    while (auto frame = again.next()) {
        INFO("frame " << frame->index);
        CHECK(frame->index == k);
        CHECK(frame->resumed == (k < 3));
        CHECK(frame->image.pixels == whole[std::size_t(k)]);  // bit for bit
        ++k;
    }
    CHECK(k == 5);
}

TEST_CASE("video: the temporal loss flickers less than frames stylised one by one", "[video][e2e]") {
    test::TempDir dir("video-flicker");
    const std::string clip = make_clip(dir, "clip.mp4", 5, false);
    const VggWeights weights = read_weights(test::shared_weights_path());
    std::vector<Image> contents;
    {
        auto source = FrameSource::open(clip);
        Image frame;
        while (source->next(frame)) contents.push_back(resize_image(frame, 64, 48));
    }
    REQUIRE(contents.size() == 5);
    // Frames one by one: the loop peers' users write around a still's command.
    std::vector<Image> independent;
    for (const Image& content : contents) {
        TransferRequest still = short_request(40, -1);
        still.content = content;
        independent.push_back(run_transfer(weights, still).image);
    }
    // The video run: the temporal loss (default weight) and the warped start.
    VideoRequest v;
    v.frame = short_request(40, 40);
    v.content = clip;
    v.work_folder = dir.file("work");
    std::vector<Image> video;
    VideoRun run(weights, v);
    while (auto frame = run.next()) video.push_back(frame->image);
    REQUIRE(video.size() == 5);
    const double e_video = temporal_errors(contents, video).mean, e_still = temporal_errors(contents, independent).mean;
    INFO("temporal error E: video " << e_video << ", frames one by one " << e_still);
    CHECK(e_video < e_still);
}

TEST_CASE("cli: a video in, a video out, with its audio", "[video][cli][e2e]") {
    test::TempDir dir("video-cli");
    const std::string clip = make_clip(dir, "clip.mp4", 6, true), out = dir.file("out.mp4"),
                      log = dir.file("log.jsonl");
    const std::string command = quote(test::cli_path()) + " --content " + quote(clip) + " --style " +
                                quote(test::shared_image_path("starry_night.jpg")) + " --weights " +
                                quote(test::shared_weights_path()) + " --output " + quote(out) +
                                " --size 64 --iterations 10 --frame-iterations 5 --threads 1 --device cpu --log-json " +
                                quote(log);
    const auto r = test::run_command(command);
    INFO(command << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(probe(out, "stream=codec_name,width,height,r_frame_rate,nb_read_packets", "v:0") == "h264,64,48,10/1,6\n");
    CHECK(probe(out, "stream=codec_name", "a:0") == "aac\n");
    CHECK_FALSE(fs::exists(video_work_folder(out)));  // removed once the output is written
    int frames = 0;
    for (const auto& line : json_lines(log))
        if (line.value("event", "") == "frame") {
            CHECK(line["frame"] == frames);
            CHECK(line["temporal_error"].is_null() == (frames == 0));
            ++frames;
        }
    CHECK(frames == 6);
}

TEST_CASE("cli: bad video input gets one line and its exit code", "[video][cli]") {
    test::TempDir dir("video-bad");
    const std::string style = quote(test::shared_image_path("starry_night.jpg")),
                      weights = quote(test::shared_weights_path());
    const auto run = [&](const std::string& content, const std::string& output, const std::string& extra = "") {
        return test::run_command(quote(test::cli_path()) + " --content " + quote(content) + " --style " + style +
                                 " --weights " + weights + " --output " + quote(output) +
                                 " --size 32 --iterations 2 --frame-iterations 1 --threads 1 --device cpu --quiet " +
                                 extra);
    };
    const auto one_line = [](const std::string& err) { return std::count(err.begin(), err.end(), '\n') == 1; };

    SECTION("a file that is not a video") {
        std::ofstream(dir.file("notes.mp4")) << "not a video\n";
        const auto r = run(dir.file("notes.mp4"), dir.file("out.mp4"));
        INFO(r.err);
        CHECK(r.exit_code == 3);
        CHECK(one_line(r.err));
    }
    SECTION("the output is the input") {
        const std::string clip = make_clip(dir, "clip.mp4", 2, false);
        const auto r = run(clip, clip);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("is the --content video") != std::string::npos);
    }
    SECTION("an output format without an encoder") {
        const std::string clip = make_clip(dir, "clip.mp4", 2, false);
        const auto r = run(clip, dir.file("out.avi"));
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(one_line(r.err));
    }
    SECTION("a pattern with a gap") {
        fs::create_directories(dir.file("frames"));
        const Image frame = test::random_image(40, 30, 1);
        for (int k : {1, 2, 4}) save_image(frame_path(dir.file("frames/%03d.png"), k), frame);
        fs::create_directories(dir.file("out"));
        const auto r = run(dir.file("frames/%03d.png"), dir.file("out/%03d.png"));
        INFO(r.err);
        CHECK(r.exit_code == 3);
        CHECK(one_line(r.err));
        CHECK(r.err.find("frame 3") != std::string::npos);  // names the missing frame (the file's number)
        // The frames before the gap are finished and kept.
        CHECK(fs::exists(frame_path(dir.file("out/%03d.png"), 1)));
        CHECK(fs::exists(frame_path(dir.file("out/%03d.png"), 2)));
    }
    SECTION("a stream damaged half-way: the frames before it are kept, and written with --partial-output") {
        // Every frame a key frame, so that the frames before the cut decode whole.
        const std::string clip = make_clip(dir, "clip.ts", 8, false, "-g 1");
        fs::resize_file(clip, fs::file_size(clip) * 6 / 10);
        const std::string out = dir.file("out.mp4");
        const auto r = run(clip, out, "--partial-output");
        INFO(r.err);
        CHECK(r.exit_code == 3);
        CHECK(one_line(r.err));
        CHECK(r.err.find("frame") != std::string::npos);
        // Some frames decoded whole and were finished; they are in the work folder and the output.
        long long kept = 0;
        while (fs::exists(video_work_folder(out) + "/pass1/" + [&] {
            char name[32];
            std::snprintf(name, sizeof name, "%06lld.png", kept);
            return std::string(name);
        }()))
            ++kept;
        CHECK(kept >= 1);
        CHECK(kept < 8);
        CHECK(probe(out, "stream=nb_read_packets", "v:0") == std::to_string(kept) + "\n");
    }
    SECTION("a write that fails (a full disk): exit code 4, no partial file, and a rerun finishes") {
        const std::string clip = make_clip(dir, "clip.mp4", 3, false), out = dir.file("out/%03d.png");
        fs::create_directories(dir.file("out"));
        // RLIMIT_FSIZE makes a write past 8 KiB fail with EFBIG, as a full disk fails it
        // with ENOSPC: the work folder's job.json fits, a 16-bit frame of 64×48 does not
        // (dash counts ulimit -f in 512-byte blocks; SIGXFSZ ignored, so write() fails).
        const std::string limited = "trap '' XFSZ; ulimit -f 16; exec " + quote(test::cli_path());
        const std::string args = " --content " + quote(clip) + " --style " + style + " --weights " + weights +
                                 " --output " + quote(out) +
                                 " --size 64 --iterations 2 --frame-iterations 1 --threads 1 --device cpu";
        const auto full = test::run_command(limited + args);
        INFO(full.err);
        CHECK(full.exit_code == 4);
        CHECK(full.err.find("cannot write") != std::string::npos);
        for (const auto& entry : fs::recursive_directory_iterator(dir.file("out")))
            CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);  // no partial file
        const auto again = test::run_command(quote(test::cli_path()) + args);
        INFO(again.err);
        CHECK(again.exit_code == 0);
        for (int k = 0; k < 3; ++k) CHECK(fs::exists(frame_path(out, k)));
    }
    SECTION("video options with a still") {
        const auto r = test::run_command(quote(test::cli_path()) + " --content " +
                                         quote(test::shared_image_path("tubingen.jpg")) + " --style " + style +
                                         " --weights " + weights + " --output " + quote(dir.file("o.png")) +
                                         " --passes 2");
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("--passes applies to a video") != std::string::npos);
    }
}

TEST_CASE("video: colour control, a mask and tiles work per frame", "[video][e2e]") {
    test::TempDir dir("video-controls");
    const std::string clip = make_clip(dir, "clip.mp4", 3, false);
    const VggWeights weights = test::narrow_vgg19(7);  // a narrow network: the options, not the look
    VideoRequest v;
    v.frame = short_request(4, 3);
    v.frame.preserve_colors = PreserveColors::luminance;  // the content's chroma, per frame
    v.frame.tile = 32;                                     // a 64×48 frame in tiles
    Image mask = test::random_image(20, 15, 9);            // the content loss's region, resized per frame
    v.frame.content_mask = mask;
    v.content = clip;
    v.work_folder = dir.file("work");
    std::vector<Image> contents;
    {
        auto source = FrameSource::open(clip);
        Image frame;
        while (source->next(frame)) contents.push_back(resize_image(frame, 64, 48));
    }
    VideoRun run(weights, v);
    long long k = 0;
    while (auto frame = run.next()) {
        INFO("frame " << frame->index);
        REQUIRE(frame->image.width == 64);
        // Where no channel was clamped, the output's chroma (I, Q) is the content
        // frame's: tolerance as the still's test of combine_luminance_chroma (float
        // rounding of one YIQ round trip, ≤ 5e-7), and the frame is written with it.
        const Image yiq = rgb_to_yiq(frame->image), content_yiq = rgb_to_yiq(contents[std::size_t(k)]);
        const std::size_t plane = frame->image.plane();
        double worst = 0;
        std::size_t inside = 0;
        for (std::size_t p = 0; p < plane; ++p) {
            bool clamped = false;
            for (int c = 0; c < 3; ++c) {
                const float value = frame->image.pixels[c * plane + p];
                clamped = clamped || value <= 0.0f || value >= 1.0f;
            }
            if (clamped) continue;
            ++inside;
            for (int c = 1; c < 3; ++c)
                worst = std::max(worst, double(std::fabs(yiq.pixels[c * plane + p] - content_yiq.pixels[c * plane + p])));
        }
        CHECK(inside > plane / 2);
        CHECK(worst <= 1e-6);
        ++k;
    }
    CHECK(k == 3);
}
