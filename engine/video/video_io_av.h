// What video_io.cpp, video_decode.cpp and video_encode.cpp share: FFmpeg's
// objects held by unique_ptr with their own deleters, av_strerror text, and an
// input file opened by avformat without FFmpeg's protocols (see open_container).
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

#include "engine/io/files.h"
#include "engine/video/video_io.h"

namespace nst::video_detail {

struct PacketFree {
    void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct FrameFree {
    void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct CodecContextFree {
    void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct SwsFree {
    void operator()(SwsContext* context) const { sws_freeContext(context); }
};
// An input's AVIOContext: its buffer may have been replaced by avio, so free the
// one it holds now.
struct IoContextFree {
    void operator()(AVIOContext* io) const {
        av_freep(&io->buffer);
        avio_context_free(&io);
    }
};
struct InputFormatClose {
    void operator()(AVFormatContext* format) const { avformat_close_input(&format); }
};
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;
using IoContextPtr = std::unique_ptr<AVIOContext, IoContextFree>;
using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatClose>;

// Silences FFmpeg's own log (x264's statistics, a decoder's complaints about
// damage) once per process: every failure reaches the caller as an exception
// with av_strerror's text, and a library must not write to stderr.
void quiet_ffmpeg_log();

// av_strerror's text for an AVERROR code.
std::string av_error_text(int code);

PacketPtr make_packet();  // throws OutOfMemory
FramePtr make_frame();

// An input file demuxed by avformat. Members are destroyed in reverse order:
// the format context before the IO context it reads through, that before the
// descriptor.
struct InputContainer {
    FileDescriptor file;
    IoContextPtr io;
    InputFormatPtr format;
};

// Opens `path` (a regular file, read through its descriptor, so no FFmpeg
// protocol ("http:", "concat:", "pipe:") is ever interpreted in the name, and a
// FIFO cannot block) and reads its streams' parameters. Formats that would
// open further files (playlists: HLS, DASH, concat) are refused, as the files
// they name are not the one given. Throws InputError "<what> '<path>': reason".
InputContainer open_container(const std::string& path, const std::string& what);

// The source behind FrameSource::open for a path that is not a frame pattern.
std::unique_ptr<FrameSource> open_video_file(const std::string& path);

// Refuses frames larger than load_image() accepts (32768 per side,
// kMaxImagePixels in all) or smaller than 2×2. Throws InputError "<prefix>: …".
void check_frame_size(const std::string& prefix, int width, int height);

// "1920×1080" for messages and descriptions.
std::string size_text(int width, int height);

}  // namespace nst::video_detail
