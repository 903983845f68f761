// Frames to a video file: libswscale converts RGB to yuv420p, libx264 or
// libvpx-vp9 encodes, avformat muxes, with another file's audio copied in.
//
// Decisions:
// - The container comes from the extension (.mp4 and .mkv: H.264; .webm: VP9),
//   never from the temporary's name. Anything else is a UsageError naming the
//   three; so are odd sizes (4:2:0 halves both), a rate that is not positive,
//   a crf outside the encoder's scale (x264: 0-51, VP9: 0-63) and a preset x264
//   does not know.
// - Colour: BT.709 matrix, primaries and transfer, limited range, written into
//   the stream (and read back by video_decode.cpp): what players assume for
//   anything above SD when a file says nothing, and what HD video is.
// - VP9 has no presets; the preset picks libvpx's speed (cpu-used, 0 slowest
//   to 5 fastest, at deadline "good") so "ultrafast" is fast there too.
// - Audio: the first audio stream of `audio_from`, copied packet for packet.
//   Its timestamps are taken relative to that file's video start (so the
//   frames read from it stay in sync), or its audio start without video. A
//   packet is copied when it starts before the video's end; packets before 0
//   (an encoder's priming) are kept. A file without audio gives a silent
//   video (not an error: FrameSource's info says whether there is audio).
//   Audio is interleaved as the video packets are written, so the muxer never
//   holds more than a packet's worth.
// - The file is written to a TemporaryFile (engine/io/files.h) through
//   avformat's "file:" protocol, named "file:<path>" so that no other protocol
//   is read into the name; .mp4 gets +faststart (the index first, so a player
//   can start before the end). finish() renames it; a write error (a full disk)
//   is a RuntimeFailure naming the output.
#include "engine/base/error.h"
#include "engine/video/video_io_av.h"

extern "C" {
#include <libavutil/opt.h>
}

#include <algorithm>
#include <cmath>
#include <cctype>
#include <optional>

namespace nst {

using namespace video_detail;

namespace {

struct OutputFormatFree {
    void operator()(AVFormatContext* format) const {
        if (format->pb) avio_closep(&format->pb);
        avformat_free_context(format);
    }
};
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatFree>;

struct DictionaryFree {
    void operator()(AVDictionary* dictionary) const { av_dict_free(&dictionary); }
};

struct Container {
    const char* muxer;    // avformat's name
    const char* encoder;  // libavcodec's encoder
    int max_crf;
};

std::optional<Container> container_for(const std::string& path) {
    std::string extension;
    const std::size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
    if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) extension = path.substr(dot + 1);
    for (char& ch : extension) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (extension == "mp4") return Container{"mp4", "libx264", 51};
    if (extension == "mkv") return Container{"matroska", "libx264", 51};
    if (extension == "webm") return Container{"webm", "libvpx-vp9", 63};
    return std::nullopt;
}

// libvpx's cpu-used for an x264 preset.
int vp9_speed(const std::string& preset) {
    if (preset == "ultrafast" || preset == "superfast" || preset == "veryfast") return 5;
    if (preset == "faster") return 4;
    if (preset == "fast") return 3;
    if (preset == "medium") return 2;
    if (preset == "slow") return 1;
    return 0;
}

const char* const kPresets[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                "medium",    "slow",      "slower",   "veryslow", "placebo"};

}  // namespace

struct VideoEncoder::State {
    std::string path;
    int width = 0, height = 0;
    long long frames = 0;
    bool finished = false;

    std::optional<TemporaryFile> temporary;
    OutputFormatPtr output;
    CodecContextPtr encoder;
    AVStream* video = nullptr;
    SwsPtr scaler;
    FramePtr yuv;
    PacketPtr packet;
    std::vector<std::uint16_t> rgb16;  // (3, H, W) in swscale's G, B, R order

    // The audio being copied.
    std::string audio_path;
    std::optional<InputContainer> audio_input;
    int audio_in = -1;
    AVStream* audio_out = nullptr;
    std::int64_t audio_offset = 0;  // in the input stream's time base
    PacketPtr audio_packet;         // read and not yet written (holds data when audio_pending)
    bool audio_pending = false, audio_done = true;
    bool skip_audio_before_start = false;  // VideoEncodeOptions::audio_start > 0

    [[noreturn]] void fail_write(const std::string& reason) const {
        throw RuntimeFailure("cannot write '" + path + "': " + reason);
    }

    // Copies the audio packets that start before `end` (in `base`).
    void copy_audio_before(std::int64_t end, AVRational base) {
        const AVStream* in = audio_done ? nullptr : audio_input->format->streams[audio_in];
        while (!audio_done) {
            if (!audio_pending) {
                const int read = av_read_frame(audio_input->format.get(), audio_packet.get());
                if (read == AVERROR_EOF) {
                    audio_done = true;
                    return;
                }
                if (read < 0)
                    throw InputError("cannot read audio from '" + audio_path + "': " + av_error_text(read));
                if (audio_packet->stream_index != audio_in) {
                    av_packet_unref(audio_packet.get());
                    continue;
                }
                if (audio_packet->pts == AV_NOPTS_VALUE) audio_packet->pts = audio_packet->dts;
                if (audio_packet->pts == AV_NOPTS_VALUE)
                    throw InputError("cannot read audio from '" + audio_path + "': a packet without a timestamp");
                audio_packet->pts -= audio_offset;
                if (audio_packet->dts != AV_NOPTS_VALUE) audio_packet->dts -= audio_offset;
                if (skip_audio_before_start && audio_packet->pts + audio_packet->duration <= 0) {
                    av_packet_unref(audio_packet.get());  // before the clip's start
                    continue;
                }
                audio_pending = true;
            }
            if (av_compare_ts(audio_packet->pts, in->time_base, end, base) >= 0) return;
            av_packet_rescale_ts(audio_packet.get(), in->time_base, audio_out->time_base);
            audio_packet->stream_index = audio_out->index;
            audio_packet->pos = -1;
            audio_pending = false;
            const int written = av_interleaved_write_frame(output.get(), audio_packet.get());
            if (written < 0) fail_write(av_error_text(written));
        }
    }

    // Writes what the encoder has ready.
    void drain_encoder() {
        for (;;) {
            const int received = avcodec_receive_packet(encoder.get(), packet.get());
            if (received == AVERROR(EAGAIN) || received == AVERROR_EOF) return;
            if (received < 0) fail_write("encoding: " + av_error_text(received));
            av_packet_rescale_ts(packet.get(), encoder->time_base, video->time_base);
            packet->stream_index = video->index;
            copy_audio_before(packet->dts == AV_NOPTS_VALUE ? packet->pts : packet->dts, video->time_base);
            const int written = av_interleaved_write_frame(output.get(), packet.get());
            if (written < 0) fail_write(av_error_text(written));
        }
    }
};

VideoEncoder::VideoEncoder(const std::string& path, int width, int height, FrameRate rate,
                           const std::string& audio_from, const VideoEncodeOptions& options)
    : state_(std::make_unique<State>()) {
    quiet_ffmpeg_log();
    State& s = *state_;
    s.path = path;
    s.width = width;
    s.height = height;
    const auto refuse = [&](const std::string& reason) -> void {
        throw UsageError("cannot write '" + path + "': " + reason);
    };
    const std::optional<Container> container = container_for(path);
    if (!container) refuse("unsupported video format (use .mp4 or .mkv for H.264, .webm for VP9)");
    if (width < 2 || height < 2 || width % 2 != 0 || height % 2 != 0)
        refuse("a video of " + size_text(width, height) + " (4:2:0 video needs even sizes)");
    if (rate.num <= 0 || rate.den <= 0)
        refuse("a frame rate of " + std::to_string(rate.num) + "/" + std::to_string(rate.den));
    if (options.crf < 0 || options.crf > container->max_crf)
        refuse("a crf of " + std::to_string(options.crf) + " (" + container->encoder + ": 0 to " +
               std::to_string(container->max_crf) + ")");
    if (std::find(std::begin(kPresets), std::end(kPresets), options.preset) == std::end(kPresets))
        refuse("an unknown preset '" + options.preset + "' (ultrafast … medium … veryslow, placebo)");
    const AVOutputFormat* muxer = av_guess_format(container->muxer, nullptr, nullptr);
    const AVCodec* codec = avcodec_find_encoder_by_name(container->encoder);
    if (!muxer || !codec)
        throw RuntimeFailure("cannot write '" + path + "': this FFmpeg has no " +
                             (muxer ? container->encoder : container->muxer) + " " +
                             (muxer ? "encoder" : "muxer"));

    if (!audio_from.empty()) {
        s.audio_path = audio_from;
        s.audio_input.emplace(open_container(audio_from, "audio from"));
        AVFormatContext* in = s.audio_input->format.get();
        for (unsigned i = 0; i < in->nb_streams && s.audio_in < 0; ++i)
            if (in->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) s.audio_in = int(i);
        if (s.audio_in >= 0) {
            const AVCodecID audio_codec = in->streams[s.audio_in]->codecpar->codec_id;
            if (avformat_query_codec(muxer, audio_codec, FF_COMPLIANCE_NORMAL) != 1) {
                std::string others;
                for (const char* name : {"mp4", "matroska"}) {
                    const AVOutputFormat* other = av_guess_format(name, nullptr, nullptr);
                    if (other && avformat_query_codec(other, audio_codec, FF_COMPLIANCE_NORMAL) == 1)
                        others += std::string(others.empty() ? "" : " or ") + (name[0] == 'm' && name[1] == 'p' ? ".mp4" : ".mkv");
                }
                refuse(std::string(muxer->long_name ? muxer->long_name : muxer->name) + " cannot hold the " +
                       avcodec_get_name(audio_codec) + " audio of '" + audio_from + "'" +
                       (others.empty() ? "" : " (use " + others + ")"));
            }
            const AVStream* audio = in->streams[s.audio_in];
            const int video_in = av_find_best_stream(in, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
            if (video_in >= 0 && in->streams[video_in]->start_time != AV_NOPTS_VALUE) {
                s.audio_offset = av_rescale_q(in->streams[video_in]->start_time, in->streams[video_in]->time_base,
                                              audio->time_base);
            } else if (audio->start_time != AV_NOPTS_VALUE && audio->start_time > 0) {
                s.audio_offset = audio->start_time;
            }
            if (options.audio_start > 0) {
                s.audio_offset += std::int64_t(std::llround(options.audio_start * audio->time_base.den /
                                                            double(audio->time_base.num)));
                s.skip_audio_before_start = true;
            }
            s.audio_packet = make_packet();
            s.audio_done = false;
        }
    }

    s.temporary.emplace(path);
    AVFormatContext* output = nullptr;
    int status = avformat_alloc_output_context2(&output, muxer, nullptr, nullptr);
    if (status < 0) s.fail_write(av_error_text(status));
    s.output.reset(output);
    const std::string url = "file:" + s.temporary->path();
    // The URL is also what +faststart reopens to move the index to the front.
    output->url = av_strdup(url.c_str());
    if (!output->url) throw OutOfMemory("cannot write '" + path + "': out of memory");
    status = avio_open(&output->pb, url.c_str(), AVIO_FLAG_WRITE);
    if (status < 0) s.fail_write(av_error_text(status));

    s.encoder.reset(avcodec_alloc_context3(codec));
    if (!s.encoder) throw OutOfMemory("cannot write '" + path + "': out of memory");
    AVCodecContext& encoder = *s.encoder;
    encoder.width = width;
    encoder.height = height;
    encoder.pix_fmt = AV_PIX_FMT_YUV420P;
    encoder.time_base = AVRational{rate.den, rate.num};
    encoder.framerate = AVRational{rate.num, rate.den};
    encoder.color_range = AVCOL_RANGE_MPEG;
    encoder.colorspace = AVCOL_SPC_BT709;
    encoder.color_primaries = AVCOL_PRI_BT709;
    encoder.color_trc = AVCOL_TRC_BT709;
    encoder.thread_count = 0;
    if (muxer->flags & AVFMT_GLOBALHEADER) encoder.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* settings = nullptr;
    std::unique_ptr<AVDictionary*, void (*)(AVDictionary**)> settings_guard(&settings, av_dict_free);
    av_dict_set(&settings, "crf", std::to_string(options.crf).c_str(), 0);
    if (codec->id == AV_CODEC_ID_H264) {
        av_dict_set(&settings, "preset", options.preset.c_str(), 0);
    } else {
        encoder.bit_rate = 0;  // constant quality: crf alone
        av_dict_set(&settings, "deadline", "good", 0);
        av_dict_set(&settings, "cpu-used", std::to_string(vp9_speed(options.preset)).c_str(), 0);
        av_dict_set(&settings, "row-mt", "1", 0);
    }
    status = avcodec_open2(&encoder, codec, &settings);
    if (status < 0)
        throw RuntimeFailure("cannot write '" + path + "': cannot open the " + codec->name +
                             " encoder: " + av_error_text(status));

    s.video = avformat_new_stream(output, nullptr);
    if (!s.video) throw OutOfMemory("cannot write '" + path + "': out of memory");
    status = avcodec_parameters_from_context(s.video->codecpar, &encoder);
    if (status < 0) s.fail_write(av_error_text(status));
    s.video->time_base = encoder.time_base;
    s.video->avg_frame_rate = encoder.framerate;
    if (s.audio_in >= 0) {
        const AVStream* in = s.audio_input->format->streams[s.audio_in];
        s.audio_out = avformat_new_stream(output, nullptr);
        if (!s.audio_out) throw OutOfMemory("cannot write '" + path + "': out of memory");
        status = avcodec_parameters_copy(s.audio_out->codecpar, in->codecpar);
        if (status < 0) s.fail_write(av_error_text(status));
        s.audio_out->codecpar->codec_tag = 0;  // the output container's own tag
        s.audio_out->time_base = in->time_base;
    }
    AVDictionary* muxer_settings = nullptr;
    std::unique_ptr<AVDictionary*, void (*)(AVDictionary**)> muxer_guard(&muxer_settings, av_dict_free);
    if (std::string(container->muxer) == "mp4") av_dict_set(&muxer_settings, "movflags", "+faststart", 0);
    status = avformat_write_header(output, &muxer_settings);
    if (status < 0) s.fail_write(av_error_text(status));

    s.scaler.reset(sws_getContext(width, height, AV_PIX_FMT_GBRP16, width, height, AV_PIX_FMT_YUV420P,
                                  SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
    if (!s.scaler) throw RuntimeFailure("cannot write '" + path + "': no RGB to yuv420p conversion");
    const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
    sws_setColorspaceDetails(s.scaler.get(), bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16);
    s.yuv = make_frame();
    s.yuv->format = AV_PIX_FMT_YUV420P;
    s.yuv->width = width;
    s.yuv->height = height;
    s.yuv->color_range = AVCOL_RANGE_MPEG;
    s.yuv->colorspace = AVCOL_SPC_BT709;
    s.yuv->color_primaries = AVCOL_PRI_BT709;
    s.yuv->color_trc = AVCOL_TRC_BT709;
    status = av_frame_get_buffer(s.yuv.get(), 0);
    if (status < 0) throw OutOfMemory("cannot write '" + path + "': " + av_error_text(status));
    s.packet = make_packet();
    s.rgb16.resize(3 * std::size_t(width) * height);
}

// Without finish(): the members go in reverse order, the output's avio closing
// the temporary's second descriptor before TemporaryFile removes it.
VideoEncoder::~VideoEncoder() = default;

void VideoEncoder::write(const Image& frame) {
    State& s = *state_;
    NST_ASSERT(!s.finished);
    if (frame.width != s.width || frame.height != s.height)
        throw UsageError("cannot write '" + s.path + "': a frame of " + size_text(frame.width, frame.height) +
                         " into a video of " + size_text(s.width, s.height));
    NST_ASSERT(frame.pixels.size() == 3 * frame.plane());
    const std::size_t plane = frame.plane();
    // GBRP16's planes in its order, G, B, R, from our R, G, B.
    const int order[3] = {1, 2, 0};
    for (int p = 0; p < 3; ++p)
        for (std::size_t i = 0; i < plane; ++i)
            s.rgb16[p * plane + i] = to_16bit(frame.pixels[order[p] * plane + i]);
    const std::uint8_t* planes[4] = {reinterpret_cast<const std::uint8_t*>(s.rgb16.data()),
                                     reinterpret_cast<const std::uint8_t*>(s.rgb16.data() + plane),
                                     reinterpret_cast<const std::uint8_t*>(s.rgb16.data() + 2 * plane), nullptr};
    const int strides[4] = {2 * s.width, 2 * s.width, 2 * s.width, 0};
    // The encoder may still hold the last frame's buffer.
    int status = av_frame_make_writable(s.yuv.get());
    if (status < 0) throw OutOfMemory("cannot write '" + s.path + "': " + av_error_text(status));
    sws_scale(s.scaler.get(), planes, strides, 0, s.height, s.yuv->data, s.yuv->linesize);
    s.yuv->pts = s.frames;
    status = avcodec_send_frame(s.encoder.get(), s.yuv.get());
    if (status < 0) s.fail_write("encoding frame " + std::to_string(s.frames) + ": " + av_error_text(status));
    ++s.frames;
    s.drain_encoder();
}

void VideoEncoder::finish() {
    State& s = *state_;
    NST_ASSERT(!s.finished);
    int status = avcodec_send_frame(s.encoder.get(), nullptr);
    if (status < 0) s.fail_write("encoding: " + av_error_text(status));
    s.drain_encoder();
    s.copy_audio_before(av_rescale_q(s.frames, s.encoder->time_base, s.video->time_base), s.video->time_base);
    status = av_write_trailer(s.output.get());
    if (status < 0) s.fail_write(av_error_text(status));
    status = avio_closep(&s.output->pb);
    if (status < 0) s.fail_write(av_error_text(status));
    s.temporary->commit();
    s.finished = true;
}

long long VideoEncoder::frames_written() const { return state_->frames; }

}  // namespace nst
