// Frames from a video file: avformat demuxes, libavcodec decodes, libswscale
// converts to RGB.
//
// Decisions (the file is untrusted input; each case is a refusal or a defined
// result, and frames are counted from 0 in messages):
// - open() decodes the first frame: VideoInfo's size is that frame's, and a
//   video with no decodable frame (a video stream but zero frames) is an
//   InputError from open(), "no video frames", never an empty source.
// - The stream is av_find_best_stream's video stream; a cover picture
//   (attached_pic, e.g. an MP3's artwork) is not a video stream.
// - Corruption: frames are delivered as long as they decode whole. A frame
//   the decoder reports damaged (AV_FRAME_FLAG_CORRUPT or decode_error_flags:
//   it concealed missing or broken slices), a packet the demuxer marks corrupt,
//   a read error or a decoder error ends the run with InputError
//   "…: frame N: <reason>", N the first frame not delivered. FFmpeg's own
//   concealment is not accepted, as load_image() accepts no gray-filled JPEG.
// - A truncated file: the demuxer meets end of file early. What was read whole
//   is decoded and delivered; the cut packet is passed on, and the decoder
//   either rejects it (InputError as above) or drops it. A dropped frame that
//   later ones do not reference (a B-frame) is seen from the timestamps: in a
//   constant-rate stream, a frame more than 1.5 frame durations after the one
//   before is an InputError "frame N: missing (…)", so the frames delivered are
//   always the video's first N, in order. Where no frame after the cut was
//   decoded, the video simply ends early (the file gives no other sign).
// - A frame of another size than the first (a stream whose parameters change)
//   is an InputError naming the frame and both sizes.
// - Colour: the stream's matrix (BT.601, BT.709, SMPTE 240M, FCC, BT.2020) and
//   range (limited unless it says full, or a yuvj format); unspecified is
//   BT.601. Alpha, where a stream has it, is dropped.
// - Threads: libavcodec's frame and slice threads. Its decoders give the same
//   bits whatever the thread count (FFmpeg's FATE tests run threaded; checked
//   here too: framemd5 of 640×480 H.264 and VP9 clips, 1 thread against 8).
#include "engine/base/error.h"
#include "engine/video/video_io_av.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

#include <cmath>
#include <cstdio>

namespace nst::video_detail {

namespace {

// SWS_CS_* for an AVColorSpace; BT.601 for everything else.
int sws_colorspace(AVColorSpace space) {
    switch (space) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    default: return SWS_CS_ITU601;
    }
}

// The yuvj formats are their yuv twins at full range (swscale warns about them).
AVPixelFormat unjpeg(AVPixelFormat format, bool& full_range) {
    switch (format) {
    case AV_PIX_FMT_YUVJ420P: full_range = true; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: full_range = true; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: full_range = true; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: full_range = true; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: full_range = true; return AV_PIX_FMT_YUV411P;
    default: return format;
    }
}

std::string rate_text(FrameRate rate) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f fps", rate.fps());
    return text;
}

class VideoFileSource : public FrameSource {
public:
    explicit VideoFileSource(const std::string& path)
        : path_(path), input_(open_container(path, "video")), packet_(make_packet()),
          decoded_(make_frame()) {
        AVFormatContext* format = input_.format.get();
        const AVCodec* codec = nullptr;
        const int best = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
        if (best == AVERROR_STREAM_NOT_FOUND ||
            (best >= 0 && (format->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)))
            fail("no video stream");
        if (best == AVERROR_DECODER_NOT_FOUND || (best >= 0 && !codec)) {
            const int any = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
            fail(std::string("no decoder for its ") +
                 avcodec_get_name(any >= 0 ? format->streams[any]->codecpar->codec_id : AV_CODEC_ID_NONE) +
                 " video");
        }
        if (best < 0) fail(av_error_text(best));
        stream_index_ = best;
        const AVStream* stream = format->streams[best];

        decoder_.reset(avcodec_alloc_context3(codec));
        if (!decoder_) throw OutOfMemory(prefix() + ": out of memory");
        int status = avcodec_parameters_to_context(decoder_.get(), stream->codecpar);
        if (status < 0) fail(av_error_text(status));
        decoder_->pkt_timebase = stream->time_base;
        decoder_->thread_count = 0;  // as many as there are cores
        decoder_->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
        status = avcodec_open2(decoder_.get(), codec, nullptr);
        if (status < 0) fail(std::string("cannot open its ") + codec->name + " decoder: " + av_error_text(status));

        AVRational rate = stream->avg_frame_rate;
        if (rate.num <= 0 || rate.den <= 0) rate = stream->r_frame_rate;
        if (rate.num > 0 && rate.den > 0) info_.rate = FrameRate{rate.num, rate.den};
        constant_rate_ = rate.num > 0 && av_cmp_q(stream->avg_frame_rate, stream->r_frame_rate) == 0;
        if (stream->nb_frames > 0) {
            info_.frame_count = stream->nb_frames;
        } else if (stream->duration > 0 && stream->duration != AV_NOPTS_VALUE) {
            info_.frame_count = std::llround(double(stream->duration) * av_q2d(stream->time_base) * info_.rate.fps());
        } else if (format->duration > 0 && format->duration != AV_NOPTS_VALUE) {
            info_.frame_count = std::llround(double(format->duration) / AV_TIME_BASE * info_.rate.fps());
        }
        const int audio = av_find_best_stream(format, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
        info_.has_audio = audio >= 0;

        if (!decode(first_)) fail("no video frames");
        info_.width = first_.width;
        info_.height = first_.height;
        info_.description = std::string(avcodec_get_name(stream->codecpar->codec_id)) + " " +
                            size_text(info_.width, info_.height) + " " + rate_text(info_.rate);
        if (info_.has_audio)
            info_.description += std::string(", audio ") +
                                 avcodec_get_name(format->streams[audio]->codecpar->codec_id);
        have_first_ = true;
    }

    const VideoInfo& info() const override { return info_; }
    long long position() const override { return position_; }

    bool next(Image& frame) override {
        if (have_first_) {
            frame = std::move(first_);
            have_first_ = false;
        } else if (!decode(frame)) {
            return false;
        }
        ++position_;
        return true;
    }

private:
    std::string prefix() const { return "cannot read video '" + path_ + "'"; }
    [[noreturn]] void fail(const std::string& reason) const { throw InputError(prefix() + ": " + reason); }
    // The frame decode() is working on: after the first, held back until next().
    [[noreturn]] void fail_frame(const std::string& reason) const {
        fail("frame " + std::to_string(decoded_count_) + ": " + reason);
    }

    // The next decoded frame into `out`; false at the end of the stream.
    bool decode(Image& out) {
        for (;;) {
            const int received = avcodec_receive_frame(decoder_.get(), decoded_.get());
            if (received == 0) {
                convert(out);
                av_frame_unref(decoded_.get());
                ++decoded_count_;
                return true;
            }
            if (received == AVERROR_EOF) return false;
            if (received != AVERROR(EAGAIN)) fail_frame(av_error_text(received));
            feed_decoder();
        }
    }

    // Sends the next packet of the video stream, or the end of the stream.
    void feed_decoder() {
        for (;;) {
            const int read = av_read_frame(input_.format.get(), packet_.get());
            if (read == AVERROR_EOF) {
                const int sent = avcodec_send_packet(decoder_.get(), nullptr);
                if (sent < 0 && sent != AVERROR_EOF) fail_frame(av_error_text(sent));
                return;
            }
            if (read < 0) fail_frame("reading the file: " + av_error_text(read));
            if (packet_->stream_index != stream_index_) {
                av_packet_unref(packet_.get());
                continue;
            }
            if (packet_->flags & AV_PKT_FLAG_CORRUPT) {
                av_packet_unref(packet_.get());
                fail_frame("corrupt or truncated data");
            }
            const int sent = avcodec_send_packet(decoder_.get(), packet_.get());
            av_packet_unref(packet_.get());
            if (sent < 0) fail_frame(av_error_text(sent));
            return;
        }
    }

    // A frame lost to damage leaves no trace in the bitstream when nothing
    // references it (a B-frame), but its timestamp is missing: a frame that
    // starts more than half a frame after the previous one ended is refused.
    // Only for constant-rate streams (avg_frame_rate = r_frame_rate), whose
    // frames are meant to be evenly spaced.
    void check_timestamps(const AVFrame& frame) {
        const std::int64_t at = frame.best_effort_timestamp;
        if (at == AV_NOPTS_VALUE || !constant_rate_) return;
        const AVRational base = input_.format->streams[stream_index_]->time_base;
        const std::int64_t step = frame.pkt_duration > 0
                                      ? frame.pkt_duration
                                      : av_rescale_q(1, AVRational{info_.rate.den, info_.rate.num}, base);
        if (last_timestamp_ != AV_NOPTS_VALUE && step > 0 && at - last_timestamp_ > step + step / 2) {
            char text[96];
            std::snprintf(text, sizeof text, "missing (the timestamps jump from %.3f s to %.3f s)",
                          double(last_timestamp_) * av_q2d(base), double(at) * av_q2d(base));
            fail_frame(text);
        }
        last_timestamp_ = at;
    }

    void convert(Image& out) {
        const AVFrame& frame = *decoded_;
        if (frame.flags & AV_FRAME_FLAG_CORRUPT || frame.decode_error_flags != 0)
            fail_frame("corrupt data (the decoder concealed damage)");
        if (decoded_count_ == 0) {
            check_frame_size(prefix(), frame.width, frame.height);
        } else if (frame.width != info_.width || frame.height != info_.height) {
            fail_frame("the size changes from " + size_text(info_.width, info_.height) + " to " +
                       size_text(frame.width, frame.height));
        }
        check_timestamps(frame);
        bool full_range = frame.color_range == AVCOL_RANGE_JPEG;
        const AVPixelFormat source = unjpeg(static_cast<AVPixelFormat>(frame.format), full_range);
        if (!scaler_ || source != scaler_format_ || full_range != scaler_full_range_ ||
            frame.colorspace != scaler_colorspace_) {
            // Same size in and out: the filter only matters for chroma upsampling.
            // Not SWS_FULL_CHR_H_INT: with it, yuv420p in BT.709 came out wrong
            // (a round trip lost 2 dB against ffmpeg's own on testsrc).
            scaler_.reset(sws_getContext(frame.width, frame.height, source, frame.width, frame.height,
                                         AV_PIX_FMT_RGB48, SWS_BICUBIC | SWS_ACCURATE_RND,
                                         nullptr, nullptr, nullptr));
            if (!scaler_)
                fail_frame(std::string("cannot convert its pixel format ") +
                           (av_get_pix_fmt_name(source) ? av_get_pix_fmt_name(source) : "(unknown)") + " to RGB");
            const int* matrix = sws_getCoefficients(sws_colorspace(frame.colorspace));
            // Ignored (returns -1) for RGB sources, which have no matrix.
            sws_setColorspaceDetails(scaler_.get(), matrix, full_range ? 1 : 0, matrix, 1, 0, 1 << 16, 1 << 16);
            scaler_format_ = source;
            scaler_full_range_ = full_range;
            scaler_colorspace_ = frame.colorspace;
            rgb16_.assign(3 * std::size_t(frame.width) * frame.height, 0);
        }
        // RGB48: packed, native byte order, 16 bits (10-bit sources keep theirs).
        const std::size_t plane = std::size_t(frame.width) * frame.height;
        std::uint8_t* planes[4] = {reinterpret_cast<std::uint8_t*>(rgb16_.data()), nullptr, nullptr, nullptr};
        const int strides[4] = {6 * frame.width, 0, 0, 0};
        const int rows = sws_scale(scaler_.get(), frame.data, frame.linesize, 0, frame.height, planes, strides);
        if (rows != frame.height) fail_frame("converting to RGB failed");
        out.width = frame.width;
        out.height = frame.height;
        out.pixels.resize(3 * plane);
        for (int c = 0; c < 3; ++c)
            for (std::size_t i = 0; i < plane; ++i) out.pixels[c * plane + i] = rgb16_[3 * i + c] * (1.0f / 65535.0f);
    }

    std::string path_;
    InputContainer input_;
    CodecContextPtr decoder_;
    PacketPtr packet_;
    FramePtr decoded_;
    SwsPtr scaler_;
    AVPixelFormat scaler_format_ = AV_PIX_FMT_NONE;
    bool scaler_full_range_ = false;
    AVColorSpace scaler_colorspace_ = AVCOL_SPC_UNSPECIFIED;
    std::vector<std::uint16_t> rgb16_;  // (H, W, 3)
    int stream_index_ = -1;
    VideoInfo info_;
    Image first_;  // decoded at open; handed out by the first next()
    bool have_first_ = false;
    long long decoded_count_ = 0;
    bool constant_rate_ = false;
    std::int64_t last_timestamp_ = AV_NOPTS_VALUE;
    long long position_ = 0;
};

}  // namespace

std::unique_ptr<FrameSource> open_video_file(const std::string& path) {
    return std::make_unique<VideoFileSource>(path);
}

}  // namespace nst::video_detail
