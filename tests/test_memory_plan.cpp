// The memory plan (engine/run/memory_plan.h) against the CPU backend's measured peak,
// with the shared VGG-19 weights (real channel widths, so the Winograd cache and
// scratch are those of a real run). The plan runs the run's own allocations on a
// counting backend and asks the CPU backend for what it keeps of its own, so on
// the CPU it must equal the measured peak to the byte: any difference is an
// allocation the counting pass does not see (the promise to users is 0.3 %).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/run/memory_plan.h"
#include "engine/run/transfer.h"
#include "tests/test_support.h"

using namespace nst;

namespace {

const VggWeights& shared_weights() {
    static const VggWeights weights = read_weights(test::shared_weights_path());
    return weights;
}

// The plan of `request` against run_transfer's measured peak: the same bytes,
// and every buffer alive while the optimiser runs attributed to a use.
void check_plan_against_run(const char* name, const TransferRequest& request) {
    CpuBackend backend;  // the thread count run_transfer's backend gets too
    const MemoryPlan plan = plan_memory(backend, shared_weights(), request);
    const TransferResult result = run_transfer(shared_weights(), request);
    INFO(name << ": planned " << plan.peak_bytes << " B, measured " << result.peak_bytes << " B\n"
              << format_memory_plan(plan));
    CHECK(plan.peak_bytes == result.peak_bytes);
    for (const ScalePlan& scale : plan.scales)
        for (const MemoryPlanItem& item : scale.items) CHECK(item.what.find("not attributed") == std::string::npos);
    std::printf("memory plan: %s: planned %.3f MiB, measured %.3f MiB (%+lld B)\n", name,
                double(plan.peak_bytes) / 1048576.0, double(result.peak_bytes) / 1048576.0,
                static_cast<long long>(plan.peak_bytes) - static_cast<long long>(result.peak_bytes));
}

}  // namespace

TEST_CASE("memory plan: the measured peak, to the byte", "[plan]") {
    struct Case {
        const char* name;
        int size;
        int history;
        const char* optimizer;
        const char* line_search;
        std::vector<int> scale_sizes;
        double style_scale;
        const char* history_precision = "fp32";
    };
    const Case cases[] = {
        {"64 px, L-BFGS m = 100", 64, 100, "lbfgs", "fixed", {}, 1.0},
        {"128 px, L-BFGS m = 5", 128, 5, "lbfgs", "fixed", {}, 1.0},
        {"96 px, Adam, style at 1.5x", 96, 100, "adam", "fixed", {}, 1.5},
        {"two scales 48 -> 96, Wolfe, m = 20", 96, 20, "lbfgs", "wolfe", {48, 96}, 1.0},
        // Histories long enough that they, not the set-up, make the peak.
        {"128 px, L-BFGS m = 1000, bf16 history", 128, 1000, "lbfgs", "fixed", {}, 1.0, "bf16"},
        {"97 px (odd 3·H·W), Wolfe, m = 3000, fp16 history", 97, 3000, "lbfgs", "wolfe", {}, 1.0, "fp16"},
    };
    for (const Case& c : cases) {
        TransferRequest request;
        request.content = test::random_image(c.size, c.size * 3 / 4, 31);
        request.styles = {test::random_image(c.size * 2 / 3, c.size, 32)};
        request.size = c.size;
        request.scale_sizes = c.scale_sizes;
        request.style_scale = c.style_scale;
        request.iterations = 2;
        request.lbfgs_history = c.history;
        request.optimizer = c.optimizer;
        request.line_search = c.line_search;
        request.lbfgs_history_precision = c.history_precision;
        request.device = "cpu";
        check_plan_against_run(c.name, request);
    }
}

TEST_CASE("memory plan: guided styles with masks of the style images, set-up the peak", "[plan]") {
    // Adam (five image-sized vectors) and style images 1.5x the output, one of
    // them masked: the style images' forward passes need buffers larger than the
    // objective's scratch, plus a masked copy of one layer at a time.
    // 1 left of column `split`, 0 right of it (or the reverse).
    const auto mask = [](int width, int height, int split, bool left) {
        Image m;
        m.width = width;
        m.height = height;
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < height; ++y)
                for (int x = 0; x < width; ++x) m.pixels.push_back((x < split) == left ? 1.0f : 0.0f);
        return m;
    };
    TransferRequest request;
    request.content = test::random_image(96, 72, 38);
    request.styles = {test::random_image(72, 96, 39), test::random_image(96, 64, 40)};
    request.style_masks = {mask(96, 72, 40, true), mask(96, 72, 40, false)};
    request.style_image_masks = {mask(72, 96, 50, true)};
    request.size = 96;
    request.style_scale = 1.5;
    request.optimizer = "adam";
    request.iterations = 2;
    request.device = "cpu";
    CpuBackend backend;
    const MemoryPlan plan = plan_memory(backend, shared_weights(), request);
    REQUIRE(plan.scales.size() == 1);
    CHECK(plan.scales[0].setup_bytes == plan.peak_bytes);
    check_plan_against_run("guided, masked style images at 1.5x", request);

    // Tiled, guided and with a 16-bit history at once: the masks' scratch
    // covers a whole tile extent, the regions keep their Gram sums.
    request.optimizer = "lbfgs";
    request.lbfgs_history = 400;
    request.lbfgs_history_precision = "bf16";
    request.content_layers = {"conv2_2"};
    request.style_layers = {"conv1_1", "conv2_1", "conv3_1"};
    request.tile = 32;
    REQUIRE(plan_memory(backend, shared_weights(), request).scales[0].tiles > 1);
    check_plan_against_run("tiled (32 px cores), guided, bf16 history m = 400", request);
}

TEST_CASE("memory plan: a tiled run to the byte, below the untiled plan", "[plan][tiles]") {
    // Layers up to conv3_1 (halos 12 and 24 px, engine/objective/tiles.h) so 64 px cores
    // leave a 192x144 output in 3x3 tiles of at most 112x112 px with their halos;
    // the style image (1.5x, larger than the output) is tiled at set-up as well.
    TransferRequest request;
    request.content = test::random_image(192, 144, 35);
    request.styles = {test::random_image(144, 192, 36)};
    request.size = 192;
    request.style_scale = 1.5;
    request.content_layers = {"conv2_2"};
    request.style_layers = {"conv1_1", "conv2_1", "conv3_1"};
    request.iterations = 1;
    request.lbfgs_history = 5;
    request.device = "cpu";
    request.tile = 64;
    CpuBackend backend;
    const MemoryPlan plan = plan_memory(backend, shared_weights(), request);
    REQUIRE(plan.scales.size() == 1);
    CHECK(plan.scales[0].tiles == 9);
    CHECK(plan.scales[0].extent_width == 112);
    check_plan_against_run("tiled 192x144 (64 px cores)", request);
    TransferRequest untiled = request;
    untiled.tile = 0;
    const MemoryPlan untiled_plan = plan_memory(backend, shared_weights(), untiled);
    CHECK(plan.peak_bytes < untiled_plan.peak_bytes);
    // --tile auto under a budget between the two picks a core that fits it.
    TransferRequest automatic = request;
    automatic.tile = TransferRequest::tile_auto;
    automatic.max_memory = (plan.peak_bytes + untiled_plan.peak_bytes) / 2;
    const int core = auto_tile(backend, shared_weights(), automatic);
    CHECK(core > 0);
    CHECK(core % 4 == 0);  // the pooling grid up to conv3_1
    CHECK(plan_memory(backend, shared_weights(), automatic).peak_bytes <= automatic.max_memory);
}

TEST_CASE("memory plan: a run over budget is refused up front with the cheapest fix", "[plan]") {
    // The narrow network: its weights are tiny, so the image-sized vectors
    // (L-BFGS's 2m history above all) make up the plan, as at large sizes.
    const VggWeights narrow = test::narrow_vgg19(37);
    TransferRequest request;
    request.content = test::random_image(96, 72, 33);
    request.styles = {test::random_image(72, 96, 34)};
    request.size = 96;
    request.device = "cpu";
    CpuBackend backend;
    const std::size_t needed = plan_memory(backend, narrow, request).peak_bytes;
    const auto refusal = [&](const VggWeights& weights, const TransferRequest& r) {
        try {
            check_memory_budget(backend, weights, r);
        } catch (const OutOfMemory& e) {
            return std::string(e.what());
        }
        return std::string();
    };

    SECTION("the same history in bf16 fits: it is named first, and it does fit") {
        request.max_memory = needed * 9 / 10;  // 16-bit storage halves the 2m history vectors
        const std::string message = refusal(narrow, request);
        INFO(message);
        REQUIRE(message.find("try --lbfgs-history-precision bf16") != std::string::npos);
        TransferRequest fixed = request;
        fixed.lbfgs_history_precision = "bf16";
        CHECK(refusal(narrow, fixed).empty());
    }
    SECTION("a smaller L-BFGS history fits: it is named, and it does fit") {
        // A third: below what the 2m history vectors take even in bf16.
        request.max_memory = needed / 3;
        const std::string message = refusal(narrow, request);
        INFO(message);
        const auto at = message.find("try --lbfgs-history ");
        REQUIRE(at != std::string::npos);
        TransferRequest fixed = request;
        fixed.lbfgs_history = std::stoi(message.substr(at + 20));
        CHECK(fixed.lbfgs_history < request.lbfgs_history);
        CHECK(refusal(narrow, fixed).empty());
    }
    SECTION("with Adam only a smaller output fits: the size is named, and it does fit") {
        request.optimizer = "adam";
        request.max_memory = plan_memory(backend, narrow, request).peak_bytes / 2;
        const std::string message = refusal(narrow, request);
        INFO(message);
        const auto at = message.find("try --size ");
        REQUIRE(at != std::string::npos);
        TransferRequest fixed = request;
        fixed.size = std::stoi(message.substr(at + 11));
        CHECK(fixed.size < request.size);
        CHECK(refusal(narrow, fixed).empty());
    }
    SECTION("when nothing fits, the message says what the weights alone need") {
        request.max_memory = 16 << 20;  // the shared weights alone are 49 MiB
        const std::string message = refusal(shared_weights(), request);
        INFO(message);
        CHECK(message.find("more memory: even --size ") != std::string::npos);
        CHECK(message.find(" with --lbfgs-history 1 needs ") != std::string::npos);
    }
    SECTION("when tiles fit, --tile is named, and it does fit") {
        // Real channel widths, so the activations make up most of the plan.
        request.content = test::random_image(384, 288, 33);
        request.size = 384;
        request.lbfgs_history = 5;
        request.content_layers = {"conv2_2"};
        request.style_layers = {"conv1_1", "conv2_1", "conv3_1"};
        TransferRequest tiled = request;
        tiled.tile = 64;
        const std::size_t untiled_bytes = plan_memory(backend, shared_weights(), request).peak_bytes;
        const std::size_t tiled_bytes = plan_memory(backend, shared_weights(), tiled).peak_bytes;
        REQUIRE(tiled_bytes < untiled_bytes);
        request.max_memory = (tiled_bytes + untiled_bytes) / 2;
        const std::string message = refusal(shared_weights(), request);
        INFO(message);
        const auto at = message.find("try --tile ");
        REQUIRE(at != std::string::npos);
        TransferRequest fixed = request;
        fixed.tile = std::stoi(message.substr(at + 11));
        CHECK(fixed.tile >= 64);
        CHECK(refusal(shared_weights(), fixed).empty());
    }
    SECTION("run_transfer refuses before any work") {
        request.max_memory = needed / 2;
        int reports = 0;
        TransferCallbacks callbacks;
        callbacks.on_iteration = [&](const TransferProgress&) { return ++reports > 0; };
        CHECK_THROWS_AS(run_transfer(narrow, request, callbacks), OutOfMemory);
        CHECK(reports == 0);
    }
}

TEST_CASE("memory plan: neural-style --plan prints it and runs nothing, --max-memory refuses", "[plan][cli]") {
    test::TempDir dir("plan-cli");
    save_image(dir.file("content.png"), test::random_image(80, 60, 35));
    save_image(dir.file("style.png"), test::random_image(60, 80, 36));
    const std::string base = "'" + test::cli_path() + "' --content '" + dir.file("content.png") +
                             "' --style '" + dir.file("style.png") + "' --weights '" +
                             test::shared_weights_path() + "' --output '" + dir.file("out.png") +
                             "' --device cpu --size 80 --quiet";
    const auto plan = test::run_command(base + " --plan");
    INFO(plan.err);
    CHECK(plan.exit_code == 0);
    CHECK(plan.out.find("memory plan on cpu") != std::string::npos);
    CHECK(plan.out.find("L-BFGS: x, 200 history") != std::string::npos);
    CHECK(plan.out.find("peak of the run") != std::string::npos);
    CHECK_FALSE(test::file_exists(dir.file("out.png")));

    const auto refused = test::run_command(base + " --max-memory 20M");
    INFO(refused.err);
    CHECK(refused.exit_code == 4);
    CHECK(refused.err.find("out of memory before starting") != std::string::npos);
    CHECK(refused.err.find("20.0 MiB are allowed (--max-memory)") != std::string::npos);
    CHECK_FALSE(test::file_exists(dir.file("out.png")));

    const auto tiled = test::run_command(base + " --plan --tile 16");
    INFO(tiled.err);
    CHECK(tiled.exit_code == 0);
    CHECK(tiled.out.find("80x60, 20 tiles of 16 px") != std::string::npos);
    const auto bad_tile = test::run_command(base + " --plan --tile big");
    CHECK(bad_tile.exit_code == 2);
    CHECK(bad_tile.err.find("--tile must be auto or a size") != std::string::npos);

    const auto bad = test::run_command(base + " --max-memory lots");
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("--max-memory: 'lots' is not a size") != std::string::npos);
}

namespace {

// A CPU backend with the tensor limit of a smaller cuDNN: what the CUDA backend
// does at 2³¹ − 1 elements (conv1 of an 8192×4320 image), at a size this machine
// plans in milliseconds.
class TensorLimitedBackend final : public CpuBackend {
public:
    explicit TensorLimitedBackend(std::size_t limit) : limit_(limit) {}
    std::size_t max_tensor_elements() const override { return limit_; }

private:
    std::size_t limit_;
};

}  // namespace

TEST_CASE("memory plan: a tensor beyond the backend's limit is refused up front, naming the tile that fits", "[plan][tiles]") {
    TransferRequest request;
    request.content = test::random_image(384, 288, 33);
    request.styles = {test::random_image(288, 384, 34)};
    request.size = 384;
    request.device = "cpu";
    request.lbfgs_history = 5;
    request.content_layers = {"conv2_2"};
    request.style_layers = {"conv1_1", "conv2_1", "conv3_1"};
    // conv1's 64 channels at 384×288 (and the style image's 288×384): 7 077 888
    // elements. A limit of 2 000 000 is met by tiles with their halos, not by
    // the whole image.
    const std::size_t limit = 2000000;
    TensorLimitedBackend backend(limit);
    const MemoryPlan untiled = plan_memory(backend, shared_weights(), request);
    CHECK(untiled.largest_tensor_elements == std::size_t(64) * 384 * 288);
    CHECK(untiled.scales[0].largest_tensor_layer.find("conv1_") == 0);

    std::string message;
    try {
        check_memory_budget(backend, shared_weights(), request);
    } catch (const RuntimeFailure& e) {
        message = e.what();
    }
    INFO(message);
    REQUIRE(message.find("7077888 elements") != std::string::npos);
    const auto at = message.find("try --tile ");
    REQUIRE(at != std::string::npos);
    TransferRequest fixed = request;
    fixed.tile = std::stoi(message.substr(at + 11));
    const MemoryPlan tiled = plan_memory(backend, shared_weights(), fixed);
    CHECK(tiled.largest_tensor_elements <= limit);
    CHECK_NOTHROW(check_memory_budget(backend, shared_weights(), fixed));

    // --tile auto takes the same core; an unlimited backend needs no tiles.
    CHECK(auto_tile(backend, shared_weights(), request) == fixed.tile);
    CpuBackend unlimited;
    CHECK(auto_tile(unlimited, shared_weights(), request) == 0);
}
