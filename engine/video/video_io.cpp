// Frame patterns, output paths, and the input side shared by the video reader
// (video_decode.cpp) and the audio copy of the writer (video_encode.cpp).
//
// Decisions for a frame pattern ("frames/%04d.png"):
// - The number must be in the file name, not a folder's (UsageError otherwise):
//   the folder is listed once at open, and the numbers found there decide
//   everything else. A name counts when it is exactly what frame_path() makes
//   of its number ("%04d": "0007.png", not "7.png"; "%d": "7.png", not "07.png").
// - Frames are numbered from 0 when frame 0 exists, else from 1 (what ffmpeg
//   and most exporters write); a pattern whose files start later ("0005.png"
//   first) is refused at open, as is one that matches no file.
// - frame_count is the run of consecutive numbers from the first. A gap (frame
//   k missing while a later number exists) is an InputError when next()
//   reaches frame k, naming k's path and the next number that exists: the
//   frames before it are delivered, and a silently shortened video is not.
// - Each frame is read with load_image() (PNG or JPEG, its rules and limits);
//   its errors name the frame's file. A frame of another size than the first
//   is an InputError naming both files' sizes.
// - The rate is 25/1: a pattern has none of its own (ffmpeg's default too).
#include "engine/video/video_io.h"

#include "engine/base/error.h"
#include "engine/video/video_io_av.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

namespace nst {

namespace {

// Where the one number spec lies in a pattern: [begin, end), its zero-padded
// width (0 for %d).
struct PatternSpec {
    std::size_t begin = 0, end = 0;
    int width = 0;
};

// Parses `path`; false when it holds no spec, more than one, or a lone '%'.
bool parse_pattern(const std::string& path, PatternSpec& spec) {
    int specs = 0;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] != '%') continue;
        if (i + 1 < path.size() && path[i + 1] == '%') {
            ++i;
            continue;
        }
        if (i + 1 < path.size() && path[i + 1] == 'd') {
            spec = {i, i + 2, 0};
        } else if (i + 3 < path.size() && path[i + 1] == '0' && path[i + 2] >= '1' &&
                   path[i + 2] <= '9' && path[i + 3] == 'd') {
            spec = {i, i + 4, path[i + 2] - '0'};
        } else {
            return false;
        }
        ++specs;
        i = spec.end - 1;
    }
    return specs == 1;
}

// `text` with "%%" written as "%".
std::string unescape_percent(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        out += text[i];
        if (text[i] == '%' && i + 1 < text.size() && text[i + 1] == '%') ++i;
    }
    return out;
}

std::string lower_extension(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    const std::size_t dot = path.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string extension = path.substr(dot + 1);
    for (char& ch : extension) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return extension;
}

struct DirectoryClose {
    void operator()(DIR* folder) const { ::closedir(folder); }
};

// "PNG" or "JPEG" from the file's signature, as load_image() tells them apart.
std::string image_kind(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    unsigned char head[3] = {};
    file.read(reinterpret_cast<char*>(head), 3);
    if (head[0] == 0x89 && head[1] == 'P') return "PNG";
    if (head[0] == 0xFF && head[1] == 0xD8) return "JPEG";
    return "image";
}

class PatternSource : public FrameSource {
public:
    explicit PatternSource(const std::string& pattern) : pattern_(pattern) {
        PatternSpec spec;
        parse_pattern(pattern, spec);
        const std::size_t slash = pattern.find_last_of('/');
        if (slash != std::string::npos && slash > spec.begin)
            throw UsageError("cannot read frames '" + pattern +
                             "': the frame number must be in the file name, not a folder's");
        const std::string folder = slash == std::string::npos ? "." : pattern.substr(0, slash + 1);
        const std::size_t name_begin = slash == std::string::npos ? 0 : slash + 1;
        const std::string prefix = unescape_percent(pattern.substr(name_begin, spec.begin - name_begin));
        const std::string suffix = unescape_percent(pattern.substr(spec.end));

        std::unique_ptr<DIR, DirectoryClose> listing(::opendir(folder.c_str()));
        if (!listing) fail("folder '" + folder + "': " + std::strerror(errno));
        std::vector<long long> numbers;
        while (const dirent* entry = ::readdir(listing.get())) {
            const std::string name = entry->d_name;
            if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
                name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
                continue;
            const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
            // 18 digits: any number below 10^18 fits a long long.
            if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char ch) {
                    return ch >= '0' && ch <= '9';
                }))
                continue;
            const long long number = std::stoll(digits);
            if (name == frame_name(prefix, number, spec.width, suffix)) numbers.push_back(number);
        }
        std::sort(numbers.begin(), numbers.end());
        if (numbers.empty()) fail("no file matches the pattern");
        if (numbers.front() > 1)
            fail("no frame 0 or 1 (the first is '" + frame_path(pattern_, numbers.front()) + "')");
        first_number_ = numbers.front();
        long long run = 1;
        while (run < static_cast<long long>(numbers.size()) && numbers[run] == first_number_ + run) ++run;
        if (run < static_cast<long long>(numbers.size())) next_after_gap_ = numbers[run];

        first_ = load_image(frame_path(pattern_, first_number_));
        info_.width = first_.width;
        info_.height = first_.height;
        info_.rate = FrameRate{25, 1};
        info_.frame_count = run;
        info_.first_number = first_number_;
        info_.description = image_kind(frame_path(pattern_, first_number_)) + " frames " +
                            video_detail::size_text(first_.width, first_.height);
    }

    const VideoInfo& info() const override { return info_; }
    long long position() const override { return position_; }

    bool next(Image& frame) override {
        if (position_ == 0) {
            frame = std::move(first_);
            ++position_;
            return true;
        }
        const long long number = first_number_ + position_;
        if (position_ == info_.frame_count) {
            if (next_after_gap_ < 0) return false;
            fail("frame " + std::to_string(number) + " ('" + frame_path(pattern_, number) +
                 "') is missing, but frame " + std::to_string(next_after_gap_) + " exists");
        }
        const std::string path = frame_path(pattern_, number);
        Image loaded = load_image(path);
        if (loaded.width != info_.width || loaded.height != info_.height)
            fail("frame " + std::to_string(number) + " ('" + path + "') is " +
                 video_detail::size_text(loaded.width, loaded.height) + ", the first frame ('" +
                 frame_path(pattern_, first_number_) + "') is " +
                 video_detail::size_text(info_.width, info_.height));
        frame = std::move(loaded);
        ++position_;
        return true;
    }

private:
    static std::string frame_name(const std::string& prefix, long long number, int width,
                                  const std::string& suffix) {
        std::string digits = std::to_string(number);
        if (static_cast<int>(digits.size()) < width) digits.insert(0, width - digits.size(), '0');
        return prefix + digits + suffix;
    }
    [[noreturn]] void fail(const std::string& reason) const {
        throw InputError("cannot read frames '" + pattern_ + "': " + reason);
    }

    std::string pattern_;
    VideoInfo info_;
    Image first_;  // read at open for the size; handed out by the first next()
    long long first_number_ = 0;
    long long next_after_gap_ = -1;  // the first number after the gap; -1: none
    long long position_ = 0;
};

// Nested opens from a demuxer (a playlist's segments, a QuickTime reference)
// are refused: the input is one file. The flag lets open_container say so.
int refuse_nested_open(AVFormatContext* format, AVIOContext**, const char*, int, AVDictionary**) {
    *static_cast<bool*>(format->opaque) = true;
    return AVERROR(EPERM);
}

int read_descriptor(void* opaque, std::uint8_t* buffer, int size) {
    const int descriptor = static_cast<int>(reinterpret_cast<std::intptr_t>(opaque));
    for (;;) {
        const ssize_t got = ::read(descriptor, buffer, static_cast<std::size_t>(size));
        if (got > 0) return static_cast<int>(got);
        if (got == 0) return AVERROR_EOF;
        if (errno != EINTR) return AVERROR(errno);
    }
}

std::int64_t seek_descriptor(void* opaque, std::int64_t offset, int whence) {
    const int descriptor = static_cast<int>(reinterpret_cast<std::intptr_t>(opaque));
    if (whence & AVSEEK_SIZE) {
        struct stat status {};
        return ::fstat(descriptor, &status) == 0 ? status.st_size : AVERROR(errno);
    }
    const off_t at = ::lseek(descriptor, offset, whence & ~AVSEEK_FORCE);
    return at < 0 ? AVERROR(errno) : at;
}

}  // namespace

namespace video_detail {

void quiet_ffmpeg_log() {
    static std::once_flag once;
    std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

std::string av_error_text(int code) {
    char text[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(code, text, sizeof text);
    return text;
}

PacketPtr make_packet() {
    PacketPtr packet(av_packet_alloc());
    if (!packet) throw OutOfMemory("cannot allocate an FFmpeg packet");
    return packet;
}

FramePtr make_frame() {
    FramePtr frame(av_frame_alloc());
    if (!frame) throw OutOfMemory("cannot allocate an FFmpeg frame");
    return frame;
}

std::string size_text(int width, int height) {
    return std::to_string(width) + "\u00d7" + std::to_string(height);
}

void check_frame_size(const std::string& prefix, int width, int height) {
    if (width < 2 || height < 2 || width > 32768 || height > 32768 ||
        static_cast<long long>(width) * height > kMaxImagePixels)
        throw InputError(prefix + ": frames of " + size_text(width, height) +
                         " (at least 2×2, at most 32768 per side and " +
                         std::to_string(kMaxImagePixels) + " pixels)");
}

InputContainer open_container(const std::string& path, const std::string& what) {
    quiet_ffmpeg_log();
    const std::string prefix = "cannot read " + what + " '" + path + "'";
    InputContainer input;
    std::string reason;
    input.file = open_regular_file(path, reason);
    if (!input.file) throw InputError(prefix + ": " + reason);

    constexpr int kBufferBytes = 1 << 16;
    auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferBytes));
    if (!buffer) throw OutOfMemory(prefix + ": out of memory");
    // The descriptor's number itself is the opaque pointer (the container is
    // moved to the caller, so no address inside it would stay valid); the
    // FileDescriptor outlives the AVIOContext (InputContainer's member order).
    void* descriptor = reinterpret_cast<void*>(static_cast<std::intptr_t>(input.file.get()));
    input.io.reset(avio_alloc_context(buffer, kBufferBytes, 0, descriptor, read_descriptor, nullptr,
                                      seek_descriptor));
    if (!input.io) {
        av_free(buffer);
        throw OutOfMemory(prefix + ": out of memory");
    }
    AVFormatContext* format = avformat_alloc_context();
    if (!format) throw OutOfMemory(prefix + ": out of memory");
    bool nested_open = false;
    format->pb = input.io.get();
    format->opaque = &nested_open;
    format->io_open = refuse_nested_open;
    // The path is the URL only for messages and for probing by extension: with
    // pb set, avformat reads nothing by name. On failure it frees `format`.
    const int opened = avformat_open_input(&format, path.c_str(), nullptr, nullptr);
    if (opened < 0)
        throw InputError(prefix + ": " + (nested_open ? "a playlist or reference to other files"
                                                      : av_error_text(opened)));
    input.format.reset(format);
    const int found = avformat_find_stream_info(format, nullptr);
    if (found < 0 || nested_open)
        throw InputError(prefix + ": " + (nested_open ? "a playlist or reference to other files"
                                                     : av_error_text(found)));
    format->opaque = nullptr;  // `nested_open` goes out of scope
    return input;
}

}  // namespace video_detail

bool is_frame_pattern(const std::string& path) {
    PatternSpec spec;
    return parse_pattern(path, spec);
}

std::string frame_path(const std::string& pattern, long long index) {
    PatternSpec spec;
    NST_ASSERT(parse_pattern(pattern, spec) && index >= 0);
    std::string digits = std::to_string(index);
    if (static_cast<int>(digits.size()) < spec.width) digits.insert(0, spec.width - digits.size(), '0');
    return unescape_percent(pattern.substr(0, spec.begin)) + digits + unescape_percent(pattern.substr(spec.end));
}

bool is_video_output_path(const std::string& path) {
    const std::string extension = lower_extension(path);
    return extension == "mp4" || extension == "mkv" || extension == "webm";
}

std::unique_ptr<FrameSource> FrameSource::open(const std::string& path) {
    if (is_frame_pattern(path)) return std::make_unique<PatternSource>(path);
    return video_detail::open_video_file(path);
}

}  // namespace nst
