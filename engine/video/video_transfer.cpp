// Style transfer for a video (engine/video/video_transfer.h; DESIGN.md, "Video").
#include "engine/video/video_transfer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "engine/backends/backend.h"
#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/run/memory_plan.h"
#include "engine/run/run_steps.h"
#include "engine/video/consistency.h"
#include "engine/video/flow.h"
#include "engine/video/flow_prefetch.h"
#include "engine/video/frame_store.h"

namespace nst {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

std::pair<int, int> video_frame_size(int width, int height, int size) {
    const double scale = double(size) / double(std::max(width, height));
    int w = std::max(1, int(std::lround(width * scale))), h = std::max(1, int(std::lround(height * scale)));
    if (std::max(width, height) == size) w = width, h = height;
    return {std::max(2, w - w % 2), std::max(2, h - h % 2)};
}

namespace {

// The entries of the work folder's fingerprint: what a frame depends on.
std::map<std::string, std::string> fingerprint_of(const VggWeights& weights, const VideoRequest& v,
                                                  const VideoInfo& info) {
    const TransferRequest& r = v.frame;
    std::map<std::string, std::string> entries;
    // Every run option but those that leave the bits alone: the CPU's results do
    // not depend on the thread count, and --max-memory only refuses.
    for (const RunOption& option : run_options())
        if (option.flag != "threads" && option.flag != "max-memory")
            entries["--" + option.flag] = run_option_text(r, option.flag);
    entries["--init"] = r.init.text();
    std::error_code error;
    const auto bytes = fs::file_size(v.content, error);
    entries["content"] = v.content + " (" + info.description + ", " + (error ? "?" : std::to_string(bytes)) + " bytes)";
    const auto hash = [](const std::vector<Image>& images) {
        Fingerprint f;
        for (const Image& image : images) f.add(image);
        return f.hex();
    };
    entries["styles"] = hash(r.styles);
    entries["style masks"] = hash(r.style_masks) + "/" + hash(r.style_image_masks);
    entries["content mask"] = hash({r.content_mask});
    entries["init image"] = hash({r.init_image});
    Fingerprint w;
    for (const auto& layer : weights.layers) {
        w.add(layer.weight.data(), layer.weight.size() * sizeof(float));
        w.add(layer.bias.data(), layer.bias.size() * sizeof(float));
    }
    entries["weights"] = w.hex();
    return entries;
}

}  // namespace

bool is_video_content(const std::string& path) {
    if (is_frame_pattern(path)) return true;
    std::string extension = fs::path(path).extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension != ".png" && extension != ".jpg" && extension != ".jpeg";
}

std::string video_work_folder(const std::string& output) {
    std::string folder = output;
    std::replace(folder.begin(), folder.end(), '%', '#');
    return folder + ".nst-work";
}

void remove_work_folder(const std::string& work_folder) {
    std::error_code error;
    fs::remove_all(work_folder, error);
}

class VideoRun::Impl {
public:
    Impl(const VggWeights& weights, const VideoRequest& v, const VideoCallbacks& callbacks)
        : weights_(weights), v_(v), r_(v.frame), callbacks_(callbacks) {
        r_.validate();
        range_ = parse_frame_range(r_.frames);
        flow_ = parse_flow_option(r_.flow);
        {
            auto source = FrameSource::open(v_.content);
            plan_.source = source->info();
        }
        if (plan_.source.frame_count >= 0 && range_.first >= plan_.source.frame_count)
            throw UsageError("--frames " + r_.frames + ": the video has " + std::to_string(plan_.source.frame_count) +
                             " frames");
        const auto [width, height] = video_frame_size(plan_.source.width, plan_.source.height, r_.size);
        plan_.width = width;
        plan_.height = height;
        plan_.first = range_.first;
        long long last_end = plan_.source.frame_count;
        if (range_.end >= 0) last_end = last_end >= 0 ? std::min(last_end, range_.end) : range_.end;
        plan_.count = last_end >= 0 ? last_end - range_.first : -1;
        plan_.work_bytes_per_frame = FrameStore::frame_bytes(width, height) * (r_.passes > 1 ? 2 : 1);
        plan_.work_bytes = plan_.count >= 0 ? plan_.count * plan_.work_bytes_per_frame : -1;
        // The frames' request: the longest side of the even frame size.
        r_.size = std::max(width, height);
        r_.scale_sizes.clear();
        if (!v.frame.scale_sizes.empty()) {
            r_.scale_sizes = v.frame.scale_sizes;
            r_.scale_sizes.back() = r_.size;
        }
        if (r_.temporal_frames.empty()) r_.temporal_frames = {1};
        std::sort(r_.temporal_frames.begin(), r_.temporal_frames.end());
        r_.temporal_frames.erase(std::unique(r_.temporal_frames.begin(), r_.temporal_frames.end()),
                                 r_.temporal_frames.end());

        store_ = std::make_unique<FrameStore>(v_.work_folder, fingerprint_of(weights, v_, plan_.source));
        if (plan_.count >= 0)
            for (long long i = plan_.first; i < plan_.first + plan_.count; ++i)
                plan_.finished += store_->has(r_.passes, i) ? 1 : 0;

        const bool tf32 = r_.precision != Precision::fp32;
        backend_ = make_backend(parse_device(r_.device), r_.threads, tf32);
        if (r_.precision == Precision::tf32 && backend_->name() == "cpu")
            throw UsageError("--precision tf32 needs the CUDA backend (the CPU computes in fp32)");
        if (r_.tile == TransferRequest::tile_auto) r_.tile = auto_tile(*backend_, weights_, r_);
        style_weight_ = default_style_weight(r_, weights_);
        config_ = objective_config(r_, style_weight_);
        // --temporal-weight is per pixel of the frame: L_t is a mean over the
        // frame's values while the content loss sums over its positions, so the
        // balance between them holds at every size only with λ_t ∝ W·H.
        config_.temporal_weight = r_.temporal_weight * double(width) * double(height);
        // The range as asked: the container's count is an estimate, and a pattern's
        // stops at its first gap, which must be reported when reached.
        const long long asked = range_.end >= 0 ? range_.end - range_.first : -1;
        prefetch_ = std::make_unique<FlowPrefetch>(FlowPrefetch::Schedule{
            v_.content, plan_.first, asked, width, height, r_.passes, r_.temporal_frames, flow_});
    }

    const VideoPlan& plan() const { return plan_; }
    std::string backend_name() const { return backend_->name(); }

    std::optional<VideoFrame> next() {
        while (true) {
            const Clock::time_point wait_start = Clock::now();
            std::optional<FramePrep> prep = prefetch_->pop();  // rethrows the source's errors in order
            const double waited = seconds_since(wait_start);
            if (!prep) return std::nullopt;
            if (prep->index == plan_.first && prep->pass == 1) set_up_clip(*prep);
            if (prep->count >= 0) plan_.count = prep->count;  // known from the range's last frame on
            std::optional<VideoFrame> frame = run_frame(*prep, waited);
            if (prep->last_of_pass && prep->pass > 1) store_->drop_pass(prep->pass - 1);
            if (frame) return frame;
        }
    }

    long long finished_frames() const {
        long long n = 0;
        if (plan_.count >= 0)
            for (long long i = plan_.first; i < plan_.first + plan_.count; ++i) n += store_->has(r_.passes, i) ? 1 : 0;
        return n;
    }
    bool is_finished(long long index) const { return store_->has(r_.passes, index); }
    Image finished_image_of(long long index, const Image& colour_content) const {
        return finished_image(r_, store_->load(r_.passes, index), colour_content);
    }
    const TransferRequest& request() const { return r_; }

private:
    // Once per clip, at its first frame: the colour-controlled styles (matched to
    // the first frame's colours: the targets stay the same for every frame), the
    // objective at the frame size with the style targets, the image buffer and
    // the warp's scratch.
    void set_up_clip(const FramePrep& first) {
        if (objective_) return;
        TransferRequest at_first = r_;
        at_first.content = first.content;
        inputs_ = transfer_inputs(at_first);
        base_inputs_ = objective_inputs_at(inputs_, r_.size);
        objective_ = std::make_unique<StyleTransferObjective>(*backend_, weights_, config_, plan_.width, plan_.height);
        objective_->set_inputs(base_inputs_);
        x_ = image_buffer(*backend_, 3 * std::size_t(plan_.width) * plan_.height);
        MemoryUseScope use(MemoryUse::loss_targets);
        warp_source_ = Buffer(*backend_, 3 * std::size_t(plan_.width) * plan_.height);
        warp_flow_ = Buffer(*backend_, 2 * std::size_t(plan_.width) * plan_.height);
        warp_out_ = Buffer(*backend_, 3 * std::size_t(plan_.width) * plan_.height);
    }

    // ω(src): src warped by `flow` with the backend's op (the same op on the CPU and the GPU).
    Image warped(const Image& src, const Flow& flow) {
        backend_->upload(warp_source_.data(), src.pixels.data(), src.pixels.size());
        backend_->upload(warp_flow_.data(), flow.uv.data(), flow.uv.size());
        backend_->warp_bilinear(3, src.height, src.width, warp_source_.data(), warp_flow_.data(), warp_out_.data());
        Image out;
        out.width = src.width;
        out.height = src.height;
        out.pixels.resize(src.pixels.size());
        backend_->download(out.pixels.data(), warp_out_.data(), out.pixels.size());
        return out;
    }

    // A stylised frame of `pass` as stored, from a small cache or the work folder.
    const Image& stylised(int pass, long long index) {
        const auto key = std::make_pair(pass, index);
        if (auto found = cache_.find(key); found != cache_.end()) return found->second;
        if (cache_.size() > std::size_t(r_.temporal_frames.back()) + 4) cache_.erase(cache_.begin());
        return cache_.emplace(key, store_->load(pass, index)).first->second;
    }
    void remember(int pass, long long index, Image frame) {
        if (cache_.size() > std::size_t(r_.temporal_frames.back()) + 4) cache_.erase(cache_.begin());
        cache_[std::make_pair(pass, index)] = std::move(frame);
    }

    std::optional<VideoFrame> run_frame(const FramePrep& prep, double waited) {
        const bool last_pass = prep.pass == r_.passes;
        const bool resumed = store_->has(prep.pass, prep.index);
        if (resumed && !last_pass) return std::nullopt;
        VideoFrame frame;
        frame.index = prep.index;
        frame.count = plan_.count;
        frame.pass = prep.pass;
        frame.passes = r_.passes;
        frame.flow_seconds = waited;
        const Clock::time_point setup_start = Clock::now();
        // ω(x_n): the frame done just before this one in this pass, warped onto it.
        Image neighbour_warped;
        if (prep.neighbour_pair.other >= 0)
            neighbour_warped = warped(stylised(prep.pass, prep.neighbour), prep.neighbour_pair.flow);
        Image result;
        if (resumed) {
            frame.resumed = true;
            result = stylised(prep.pass, prep.index);
        } else {
            ObjectiveInputs at = base_inputs_;
            at.content = controlled_content(r_, prep.content);
            // The temporal targets: earlier frames of this pass warped onto this one,
            // with their (long-term) weights.
            for (const PairFlow& pair : prep.earlier)
                at.temporal.push_back({pair.other == prep.neighbour ? neighbour_warped
                                                                    : warped(stylised(prep.pass, pair.other), pair.flow),
                                       pair.weights});
            const Image init = prep.pass > 1 ? multipass_start(prep, neighbour_warped) : neighbour_warped;
            frame.setup_seconds = seconds_since(setup_start);
            const Clock::time_point optimize_start = Clock::now();
            result = prep.pass == 1 && prep.neighbour < 0 ? run_first_frame(prep, at)
                                                          : run_at_frame_size(prep, at, init, r_.frame_iterations);
            frame.optimize_seconds = seconds_since(optimize_start);
            frame.terms = objective_->last_terms();
            result = FrameStore::stored(std::move(result));
            store_->save(prep.pass, prep.index, result);
            remember(prep.pass, prep.index, result);
        }
        if (!last_pass) return std::nullopt;
        frame.done = ++done_;
        frame.temporal_error = temporal_error(prep, result, neighbour_warped);
        frame.image = finished_image(r_, result, prep.content);
        frame.seconds = seconds_since(start_);
        return frame;
    }

    // Passes after the first (Ruder et al., the multi-pass algorithm): frame i
    // starts from its previous pass's result blended with the neighbour done
    // just before it in this pass, warped, where that one is consistent:
    //   x' = (x_i^(p−1) + c ⊙ ω(x_n^(p))) / (1 + c)
    // (δ = 1 for the neighbour of this pass and 0 for the other one, the
    // reference implementation's defaults).
    Image multipass_start(const FramePrep& prep, const Image& neighbour_warped) {
        Image start = stylised(prep.pass - 1, prep.index);
        if (prep.neighbour_pair.other < 0) return start;
        const std::vector<float>& c = prep.neighbour_pair.weights;
        const std::size_t plane = start.plane();
        for (int ch = 0; ch < 3; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                float& value = start.pixels[ch * plane + p];
                value = (value + c[p] * neighbour_warped.pixels[ch * plane + p]) / (1.0f + c[p]);
            }
        return start;
    }

    // E_i = (1/D) Σ c (x_i − ω(x_n))² against the frame done just before it in
    // this pass (video order in a forward pass), with the flow and c of the
    // content frames; NaN for the first frame of a pass.
    static double temporal_error(const FramePrep& prep, const Image& x, const Image& neighbour_warped) {
        if (prep.neighbour_pair.other < 0) return std::nan("");
        const std::vector<float>& c = prep.neighbour_pair.weights;
        const std::size_t plane = x.plane();
        double sum = 0.0;
        for (int ch = 0; ch < 3; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                const double d = double(x.pixels[ch * plane + p]) - double(neighbour_warped.pixels[ch * plane + p]);
                sum += double(c[p]) * d * d;
            }
        return sum / double(3 * plane);
    }

    // The first frame of the clip: the request's --init and scales, as a still.
    Image run_first_frame(const FramePrep& prep, const ObjectiveInputs& at) {
        const std::vector<int> sizes = r_.sizes(), iterations = r_.iterations_per_scale();
        const int scale_count = int(sizes.size());
        TransferInputs first = inputs_;
        first.content = at.content;
        Image image;
        for (int k = 0; k < scale_count; ++k) {
            const int side = sizes[std::size_t(k)];
            if (k == 0) {
                const int style_side = std::max(16, int(std::lround(r_.style_scale * side)));
                image = initial_image(r_, resize_longest_side(first.content, side),
                                      resize_longest_side(first.styles.front(), style_side));
            }
            if (k + 1 == scale_count) {
                image = resize_image(image, plan_.width, plan_.height);
                return run_at_frame_size(prep, at, image, iterations[std::size_t(k)]);
            }
            image = resize_image(image, resize_longest_side(first.content, side).width,
                                 resize_longest_side(first.content, side).height);
            std::unique_ptr<StyleTransferObjective> coarse =
                make_objective_at(*backend_, weights_, config_, first, side);
            Buffer x = image_buffer(*backend_, image.pixels.size());
            image = optimise(prep, *coarse, x, image, iterations[std::size_t(k)], k, scale_count, side);
        }
        return image;
    }

    Image run_at_frame_size(const FramePrep& prep, const ObjectiveInputs& at, const Image& init, int iterations) {
        objective_->set_inputs(at);
        const int scales = int(r_.sizes().size());
        const int scale = prep.pass == 1 && prep.neighbour < 0 ? scales - 1 : 0;
        return optimise(prep, *objective_, x_, init, iterations, scale, prep.pass == 1 && prep.neighbour < 0 ? scales : 1,
                        std::max(plan_.width, plan_.height));
    }

    Image optimise(const FramePrep& prep, StyleTransferObjective& objective, Buffer& x, const Image& init,
                   int iterations, int scale, int scales, int side) {
        backend_->upload(x.data(), init.pixels.data(), init.pixels.size());
        TermsByEvaluation recorder(objective);
        bool cancelled = false;
        const auto on_iteration = [&](const IterationReport& report) {
            if (callbacks_.on_iteration) {
                VideoProgress progress;
                progress.index = prep.index;
                progress.done = done_;
                progress.count = plan_.count;
                progress.pass = prep.pass;
                progress.passes = r_.passes;
                TransferProgress& it = progress.iteration;
                it.scale = scale;
                it.scales = scales;
                it.size = side;
                it.iteration = report.iteration;
                it.iterations = iterations;
                it.evaluations = report.evaluations;
                if (const LossTerms* terms = recorder.terms_of(report.evaluation)) it.terms = *terms;
                it.terms.loss = report.loss;
                it.event = report.event;
                it.seconds = seconds_since(start_);
                it.peak_bytes = backend_->peak_bytes();
                callbacks_.on_iteration(progress);
            }
            cancelled = callbacks_.cancel && callbacks_.cancel->load();
            return !cancelled;
        };
        const OptimizationResult result = optimize(*backend_, recorder, x.data(), iterations, r_, on_iteration);
        if (cancelled)
            throw Cancelled("stopped during frame " + std::to_string(prep.index) + "; the frames finished before it are kept in " +
                            store_->folder());
        (void)result;
        if (!backend_->all_finite(x.size(), x.data()))
            throw RuntimeFailure("frame " + std::to_string(prep.index) +
                                 ": the optimisation produced a non-finite image; nothing was written for it");
        Image out;
        out.width = init.width;
        out.height = init.height;
        out.pixels.resize(x.size());
        backend_->download(out.pixels.data(), x.data(), x.size());
        return out;
    }

    const VggWeights& weights_;
    const VideoRequest v_;
    TransferRequest r_;
    const VideoCallbacks callbacks_;
    const Clock::time_point start_ = Clock::now();
    FrameRange range_;
    FlowOption flow_;
    VideoPlan plan_;
    std::unique_ptr<FrameStore> store_;
    std::unique_ptr<Backend> backend_;
    double style_weight_ = 0.0;
    ObjectiveConfig config_;
    TransferInputs inputs_;
    ObjectiveInputs base_inputs_;
    std::unique_ptr<StyleTransferObjective> objective_;
    Buffer x_, warp_source_, warp_flow_, warp_out_;
    std::map<std::pair<int, long long>, Image> cache_;
    std::unique_ptr<FlowPrefetch> prefetch_;
    long long done_ = 0;
};

VideoRun::VideoRun(const VggWeights& weights, const VideoRequest& request, const VideoCallbacks& callbacks)
    : impl_(std::make_unique<Impl>(weights, request, callbacks)) {}
VideoRun::~VideoRun() = default;
const VideoPlan& VideoRun::plan() const { return impl_->plan(); }
std::optional<VideoFrame> VideoRun::next() { return impl_->next(); }
long long VideoRun::finished_frames() const { return impl_->finished_frames(); }
std::string VideoRun::backend_name() const { return impl_->backend_name(); }

long long write_video_output(const VideoRun& run, const std::string& content, const std::string& output,
                             bool allow_partial, const SaveOptions& frame_options) {
    const VideoRun::Impl& impl = *run.impl_;
    const VideoPlan& plan = run.plan();
    if (!allow_partial && (plan.count < 0 || run.finished_frames() < plan.count))
        throw UsageError(output + ": the run is not complete (" + std::to_string(run.finished_frames()) + " of " +
                         std::to_string(plan.count) + " frames)");
    auto source = FrameSource::open(content);
    std::unique_ptr<VideoEncoder> encoder;
    if (is_video_output_path(output)) {
        VideoEncodeOptions options;
        options.audio_start = double(plan.first) / plan.source.rate.fps();  // --frames A: from A's time
        encoder = std::make_unique<VideoEncoder>(output, plan.width, plan.height, plan.source.rate,
                                                 plan.source.has_audio ? content : std::string(), options);
    } else if (!is_frame_pattern(output)) {
        throw UsageError(output + ": a video output is .mp4, .mkv or .webm, or a frame pattern such as out/%04d.png");
    }
    long long written = 0;
    Image frame;
    for (long long index = 0;; ++index) {
        // Up to the first frame not finished, which is not decoded: in a partial
        // run after a damaged frame, that one would fail again.
        if (index >= plan.first &&
            ((plan.count >= 0 && index >= plan.first + plan.count) || !impl.is_finished(index)))
            break;
        if (!source->next(frame)) break;
        if (index < plan.first) continue;
        const Image colour = resize_image(frame, plan.width, plan.height);
        const Image out = impl.finished_image_of(index, colour);
        if (encoder)
            encoder->write(out);
        else
            save_image(frame_path(output, plan.source.first_number + index), out, frame_options);
        ++written;
    }
    if (encoder) encoder->finish();
    return written;
}

}  // namespace nst
