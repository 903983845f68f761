// Video in and out (DESIGN.md, "Video"): frames from a video file (any
// container and codec Debian's FFmpeg libraries decode) or a numbered frame
// pattern ("frames/%04d.png"), and frames to an H.264 or VP9 file with the
// input's audio copied unchanged, or to a pattern. Files are untrusted input:
// every failure throws InputError (the input), UsageError (what was asked) or
// RuntimeFailure (writing), one line naming the file and the fault.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/io/image.h"

namespace nst {

// A frame rate as FFmpeg keeps it: num/den frames per second (30000/1001).
struct FrameRate {
    int num = 25, den = 1;
    double fps() const { return double(num) / double(den); }
};

struct VideoInfo {
    int width = 0, height = 0;  // of the first frame; every frame must match
    FrameRate rate;             // a pattern: 25/1 (it has none of its own)
    long long frame_count = -1; // as the container says (or the pattern's files); -1: unknown
    long long first_number = 0; // a pattern's first frame number (0 or 1); a file's frames count from 0
    bool has_audio = false;
    std::string description;    // "h264 640×480 26.78 fps, audio aac" or "PNG frames 64×48"
};

// True when `path` holds one printf-style frame number: %d or %0Nd (N ≤ 9), and
// no other '%' (write "%%" for a literal one).
bool is_frame_pattern(const std::string& path);
// The pattern with its number filled in.
std::string frame_path(const std::string& pattern, long long index);
// True for the extensions a video output may have: .mp4, .mkv (H.264), .webm (VP9).
bool is_video_output_path(const std::string& path);

// Frames in order, decoded to RGB float (3, H, W) in [0, 1] (colour matrix and
// range from the stream, BT.601 when unspecified).
class FrameSource {
public:
    virtual ~FrameSource() = default;
    // A pattern or a video file, by is_frame_pattern(). Throws InputError for a
    // file that is missing, not a video, or has no video stream, and for a
    // pattern that matches no file.
    static std::unique_ptr<FrameSource> open(const std::string& path);

    virtual const VideoInfo& info() const = 0;
    // The next frame into `frame`; false after the last one. Throws InputError
    // for a frame whose size is not the first one's, for a corrupt stream (the
    // frames before it were returned), or for a pattern with a gap (frame k
    // missing while a later number exists).
    virtual bool next(Image& frame) = 0;
    // Frames returned so far.
    virtual long long position() const = 0;
};

struct VideoEncodeOptions {
    int crf = 18;                   // H.264 (libx264) and VP9 (libvpx-vp9) constant quality
    std::string preset = "medium";  // libx264's speed preset
    // Seconds of the source's audio left out from its video's start (a clip cut
    // from frame A: A / rate); packets that end before it are not copied.
    double audio_start = 0.0;
};

// A video file being written: H.264 in .mp4/.mkv, VP9 in .webm, yuv420p, at the
// given rate. Width and height must be even (4:2:0). With `audio_from`, that
// file's first audio stream is copied packet for packet (no re-encoding) up to
// the video's end; a container that cannot hold that audio codec (AAC in WebM)
// is refused at construction with UsageError naming a container that can.
// Written to a temporary in the output's folder and renamed by finish(), so a
// failure or an unfinished encoder leaves no partial file.
class VideoEncoder {
public:
    VideoEncoder(const std::string& path, int width, int height, FrameRate rate,
                 const std::string& audio_from = {}, const VideoEncodeOptions& options = {});
    ~VideoEncoder();  // without finish(): the temporary is removed
    VideoEncoder(const VideoEncoder&) = delete;
    VideoEncoder& operator=(const VideoEncoder&) = delete;

    void write(const Image& frame);  // values clamped to [0, 1]
    void finish();
    long long frames_written() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace nst
