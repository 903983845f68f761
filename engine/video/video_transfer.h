// Style transfer for a video (Ruder, Dosovitskiy, Brox, "Artistic style transfer
// for videos", GCPR 2016; DESIGN.md, "Video"): the API that the CLI and the
// Python module call for a video --content.
//
//   VideoRequest request;
//   request.frame.styles = {load_image("painting.jpg")};   // every image option, per frame
//   request.content = "clip.mp4";                          // or "frames/%04d.png"
//   request.work_folder = video_work_folder("out.mp4");
//   VideoRun run(weights, request);
//   while (auto frame = run.next()) { ... frame->index, frame->image ... }
//   encode_video(run, "out.mp4");                           // or frames as they come
//
// Each frame is optimised with the content, style and TV terms of a still plus
// the temporal loss against earlier stylised frames warped by the optical flow,
// started from the previous frame warped; passes after the first go over the
// clip again, alternately backward and forward (the multi-pass algorithm). The
// backend, the weights and the style targets are set up once per clip; the flow
// for the next frames is computed on a CPU thread while a frame is optimised.
// Every finished frame is kept in the work folder, so a rerun of the same request
// resumes after the last finished frame with the same result.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "engine/run/request.h"
#include "engine/run/transfer.h"
#include "engine/video/video_io.h"

namespace nst {

struct VideoRequest {
    // The options of a still, applied to every frame (the video ones included:
    // temporal_weight, temporal_frames, passes, frame_iterations, frames, flow);
    // frame.content is not read (the frames come from `content`).
    TransferRequest frame;
    std::string content;      // a video file or a frame pattern (is_frame_pattern)
    std::string work_folder;  // where finished frames are kept (video_work_folder)
};

// The stylised frames' size for a source of width × height: resized so that the
// longest side is `size`, each side then down to an even number (4:2:0 video
// needs it; at least 2).
std::pair<int, int> video_frame_size(int width, int height, int size);

// Whether a --content names a video: a frame pattern, or a file whose extension
// is not one of a still's (.png, .jpg, .jpeg).
bool is_video_content(const std::string& path);

// The work folder of an output: "<output>.nst-work" beside it, with a pattern's
// '%' written as '#' ("out/f_%04d.png" → "out/f_#04d.png.nst-work").
std::string video_work_folder(const std::string& output);

// Said once per frame as it is finished (the frames of the last pass only; a
// resumed frame is said too, with resumed set and no timings).
struct VideoFrame {
    long long index = 0;       // in the video, 0-based (the --frames range's own numbers)
    long long done = 0;        // frames of the last pass finished so far, this one included
    long long count = 0;       // frames of the range
    int pass = 1, passes = 1;
    Image image;               // as the caller sees it: colour control applied, in [0, 1]
    bool resumed = false;
    // E_i = (1/D) Σ c (x_i − ω(x_{i−1}))², with the flow and c from the content
    // frames (NaN for the first frame of the range).
    double temporal_error = 0.0;
    LossTerms terms;           // of the final iterate (unweighted, as in LossTerms)
    double flow_seconds = 0.0; // waited for the flow of this frame (0 when it was ready)
    double setup_seconds = 0.0;  // targets, warps and the initial image
    double optimize_seconds = 0.0;
    double seconds = 0.0;      // since the run started
};

// Said once per iteration, as a still's TransferProgress with the frame's place.
struct VideoProgress {
    long long index = 0, done = 0, count = 0;
    int pass = 1, passes = 1;
    TransferProgress iteration;
};

struct VideoCallbacks {
    std::function<void(const VideoProgress&)> on_iteration;
    // Checked between iterations: when set, the frame being optimised is dropped
    // (every finished one is kept) and next() throws Cancelled.
    const std::atomic<bool>* cancel = nullptr;
};

// Thrown by next() when the cancel flag was set: the frames finished before stay
// in the work folder, and a rerun resumes after them.
class Cancelled : public RuntimeFailure {
public:
    using RuntimeFailure::RuntimeFailure;
};

// The clip's geometry as the run sees it (known before any frame is optimised).
struct VideoPlan {
    VideoInfo source;
    long long first = 0, count = 0;  // the frames of the range (count −1 while unknown)
    int width = 0, height = 0;       // of the stylised frames: --size's longest side, both even
    long long work_bytes = 0;        // the work folder's largest size (count known; else per frame)
    long long work_bytes_per_frame = 0;
    long long finished = 0;          // frames of the last pass already in the work folder
};

class VideoRun {
public:
    // Validates the request (UsageError), opens the video (InputError), sets up
    // the backend, the objective and the style targets, and checks the work
    // folder: one made by a different request is refused (UsageError naming the
    // first option or input that differs). Nothing is optimised yet.
    VideoRun(const VggWeights& weights, const VideoRequest& request, const VideoCallbacks& callbacks = {});
    ~VideoRun();
    VideoRun(const VideoRun&) = delete;
    VideoRun& operator=(const VideoRun&) = delete;

    const VideoPlan& plan() const;
    // The next frame of the last pass, or nothing after the last. Frames of
    // earlier passes are optimised on the way and not returned. Throws
    // InputError when the video turns out damaged (frames before it are kept),
    // Cancelled when the cancel flag is set.
    std::optional<VideoFrame> next();
    // The frames of the last pass finished so far, as the caller sees them, in
    // video order (from the work folder): what an encoder writes.
    long long finished_frames() const;
    Image finished_frame(long long index) const;
    // The backend's name ("cpu", "cuda:0").
    std::string backend_name() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
    friend long long write_video_output(const VideoRun&, const std::string&, const std::string&, bool,
                                        const SaveOptions&);
};

// Writes the finished frames of `run`, in order, to a video file (the source's
// frame rate, its audio copied; video_io.h) or a frame pattern. With
// `allow_partial` false the run must be complete (UsageError otherwise).
// Returns the number of frames written.
long long write_video_output(const VideoRun& run, const std::string& content, const std::string& output,
                             bool allow_partial, const SaveOptions& frame_options = {});

// Removes the work folder (after the output is complete).
void remove_work_folder(const std::string& work_folder);

}  // namespace nst
