// plan_memory (engine/run/memory_plan.h): the run's own set-up and first
// evaluation on a counting backend (engine/backends/counting_backend.h), which
// counts the engine's allocations without making them.
#include "engine/run/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <tuple>

#include "engine/backends/counting_backend.h"
#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/io/vgg19_layers.h"
#include "engine/objective/tiles.h"
#include "engine/run/request.h"
#include "engine/run/run_steps.h"

namespace nst {

namespace {

std::string mebibytes(std::size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / (1 << 20));
    return text;
}

// The optimiser's line of the table: its name (its bytes are counted).
std::string optimiser_description(const TransferRequest& r) {
    if (r.optimizer == Optimizer::adam) return "Adam: x and 5 image-sized vectors";
    const bool wolfe = r.line_search == LineSearch::wolfe;
    const std::string history = std::to_string(2 * r.lbfgs_history) + " history";
    if (r.lbfgs_history_precision == HistoryPrecision::fp32)
        return "L-BFGS: x, " + history + " and " + std::to_string(wolfe ? 10 : 7) + " more image-sized vectors";
    return "L-BFGS: x, " + history + " and 2 candidate vectors in " +
           std::string(r.lbfgs_history_precision.name()) + ", " + std::to_string(wolfe ? 9 : 6) + " more in fp32";
}

// The table's lines: what the counting backend held at the optimiser's peak.
std::vector<MemoryPlanItem> plan_items(const CountingBackend::Held& held, const Vgg19& network,
                                       const TransferRequest& r) {
    const auto bytes = [&](MemoryUse use) { return held.by_use[std::size_t(use)]; };
    std::vector<MemoryPlanItem> items = {
        {"VGG-19 weights up to " + vgg19_layer_names()[std::size_t(network.deepest_layer())],
         bytes(MemoryUse::weights)},
        {"backend's cache of the weights", held.weight_cache},
        {"backend's scratch", held.scratch},
        {"activations and their gradients", bytes(MemoryUse::activations)},
        {"loss targets and values", bytes(MemoryUse::loss_targets)},
        {"masked-feature scratch", bytes(MemoryUse::masked_features)},
        {"tile scratch", bytes(MemoryUse::tiles)},
        {optimiser_description(r), bytes(MemoryUse::optimiser)},
    };
    // Every buffer alive while the optimiser runs is made under a MemoryUseScope;
    // one that is not still counts, on a line of its own.
    if (bytes(MemoryUse::unattributed) > 0)
        items.push_back({"not attributed to a use (a MemoryUseScope is missing)", bytes(MemoryUse::unattributed)});
    return items;
}

// One scale, as run_transfer's run_scale takes it (engine/run/run_steps.h): the
// objective with its targets (the set-up), the image, and the optimiser up to
// its first evaluation, which allocates every vector of the run (the counting
// backend's zero gradient then stops it).
ScalePlan plan_scale(CountingBackend& counting, const VggWeights& weights, const ObjectiveConfig& config,
                     const TransferInputs& inputs, const TransferRequest& r, int side) {
    counting.reset_peak();
    counting.reset_largest_tensor();
    const std::unique_ptr<StyleTransferObjective> objective =
        make_objective_at(counting, weights, config, inputs, side);
    Buffer x = image_buffer(counting, objective->size());
    ScalePlan scale;
    scale.setup_bytes = counting.peak();
    counting.reset_peak();
    optimize(counting, *objective, x.data(), 1, r, {});
    scale.peak_bytes = std::max(scale.setup_bytes, counting.peak());
    scale.items = plan_items(counting.held_at_peak(), objective->network(), r);

    scale.width = objective->width();
    scale.height = objective->height();
    const std::vector<Tile>& tiles = objective->tiles();
    if (!tiles.empty()) {
        scale.tile_core = tile_core(r.tile, objective->network().deepest_layer());
        scale.tiles = int(tiles.size());
        std::tie(scale.extent_width, scale.extent_height) = largest_extent(tiles);
    }
    const CountingBackend::Tensor& largest = counting.largest_tensor();
    const int layer = objective->network().layer_of_weight(largest.weight);
    scale.largest_tensor_elements = largest.elements;
    scale.largest_tensor_layer = layer < 0 ? std::string("the input")
                                           : vgg19_layer_names()[std::size_t(layer)] + " at " +
                                                 std::to_string(largest.width) + "x" + std::to_string(largest.height);
    return scale;
}

}  // namespace

int largest_fitting(int lo, int hi, const std::function<bool(int)>& fits) {
    if (hi < lo || !fits(lo)) return 0;
    while (lo < hi) {  // fits(lo) holds
        const int mid = lo + (hi - lo + 1) / 2;
        if (fits(mid))
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

MemoryPlan plan_memory(const Backend& backend, const VggWeights& weights, const TransferRequest& request) {
    request.validate();
    if (request.tile == TransferRequest::tile_auto) {
        TransferRequest resolved = request;
        resolved.tile = auto_tile(backend, weights, request);
        return plan_memory(backend, weights, resolved);
    }
    // β changes no allocation; the colour control changes pixel values only.
    const ObjectiveConfig config = objective_config(request, TransferDefaults::style_weight);
    const TransferInputs inputs = request_inputs(request);
    CountingBackend counting(backend);  // one for the run: its scratch grows from scale to scale
    MemoryPlan plan;
    for (int side : request.sizes()) {
        plan.scales.push_back(plan_scale(counting, weights, config, inputs, request, side));
        plan.peak_bytes = std::max(plan.peak_bytes, plan.scales.back().peak_bytes);
        plan.largest_tensor_elements =
            std::max(plan.largest_tensor_elements, plan.scales.back().largest_tensor_elements);
    }
    return plan;
}

std::string format_memory_plan(const MemoryPlan& plan) {
    std::string text;
    for (std::size_t k = 0; k < plan.scales.size(); ++k) {
        const ScalePlan& scale = plan.scales[k];
        text += "scale " + std::to_string(k + 1) + "/" + std::to_string(plan.scales.size()) + ": " +
                std::to_string(scale.width) + "x" + std::to_string(scale.height);
        if (scale.tiles > 0)
            text += ", " + std::to_string(scale.tiles) + " tiles of " + std::to_string(scale.tile_core) +
                    " px (largest with its halo: " + std::to_string(scale.extent_width) + "x" +
                    std::to_string(scale.extent_height) + ")";
        text += "\n";
        for (const auto& item : scale.items)
            text += "  " + mebibytes(item.bytes) + std::string(12 - std::min<std::size_t>(12, mebibytes(item.bytes).size()), ' ') +
                    "  " + item.what + "\n";
        text += "  setting up the targets: " + mebibytes(scale.setup_bytes) +
                "; peak: " + mebibytes(scale.peak_bytes) + "\n";
    }
    text += "peak of the run: " + mebibytes(plan.peak_bytes) + "\n";
    return text;
}

std::size_t memory_budget(const Backend& backend, const TransferRequest& request) {
    const std::size_t available = backend.available_bytes();
    return request.max_memory > 0 && request.max_memory < available ? request.max_memory : available;
}

int auto_tile(const Backend& backend, const VggWeights& weights, const TransferRequest& request) {
    const std::size_t budget = memory_budget(backend, request);
    TransferRequest candidate = request;
    candidate.tile = 0;
    if (plan_memory(backend, weights, candidate).fits(backend, budget)) return 0;
    int deepest = 0;
    for (const auto& name : request.content_layers) deepest = std::max(deepest, vgg19_layer_index(name));
    for (const auto& name : request.style_layers) deepest = std::max(deepest, vgg19_layer_index(name));
    const int grid = pooling_grid(deepest);
    int longest = 0;
    for (int side : request.sizes()) longest = std::max(longest, side);
    // Cores of k grid steps, 1 < k < the whole image's: the plan grows with the
    // core, so bisect (each plan is a counting pass, 0.1 to 0.5 s at 4000 px).
    const int steps = tile_core(longest, deepest) / grid - 1;
    const int fitting = largest_fitting(2, steps, [&](int k) {
        candidate.tile = k * grid;
        return plan_memory(backend, weights, candidate).fits(backend, budget);
    });
    return fitting > 0 ? fitting * grid : grid;
}

namespace {

// A tensor beyond the backend's limit: tiles are the one fix that keeps the
// output as asked (the largest core whose tensors and memory fit, if any).
[[noreturn]] void refuse_tensor(const Backend& backend, const VggWeights& weights, const TransferRequest& request,
                                const MemoryPlan& plan, std::size_t budget) {
    TransferRequest tiled = request;
    tiled.tile = auto_tile(backend, weights, request);
    std::string largest_layer;
    for (const ScalePlan& scale : plan.scales)
        if (scale.largest_tensor_elements == plan.largest_tensor_elements) largest_layer = scale.largest_tensor_layer;
    const bool tiles_fit = plan_memory(backend, weights, tiled).fits(backend, budget);
    throw RuntimeFailure("this run's largest tensor (" + largest_layer + ": " +
                         std::to_string(plan.largest_tensor_elements) + " elements) is more than " +
                         backend.name() + " can index (" + std::to_string(backend.max_tensor_elements()) +
                         "); " +
                         (tiles_fit ? "try --tile " + std::to_string(tiled.tile) + " (or --tile auto)"
                                    : std::string("try a smaller --size")) +
                         " (the table: neural-style --plan)");
}

// The cheapest change of the request that fits `budget`, as options ("--tile 512
// (or --tile auto)"), or "" when only a smaller output would.
std::string cheaper_options(const Backend& backend, const VggWeights& weights, const TransferRequest& request,
                            std::size_t budget) {
    const auto fits = [&](const TransferRequest& candidate) {
        return plan_memory(backend, weights, candidate).fits(backend, budget);
    };
    TransferRequest smaller = request;
    if (request.tile == 0) {
        // Tiles keep the output and the optimiser as asked, at the cost of the halos'
        // extra computation: the largest core that fits, if any.
        smaller.tile = auto_tile(backend, weights, request);
        if (smaller.tile > 0 && fits(smaller)) return "--tile " + std::to_string(smaller.tile) + " (or --tile auto)";
        smaller.tile = request.tile;
    }
    if (request.optimizer != Optimizer::lbfgs) return "";
    // The history is 2m image-sized vectors: first the same m stored in bf16
    // (half the bytes), then the largest m that fits, if any.
    if (request.lbfgs_history_precision == HistoryPrecision::fp32) {
        smaller.lbfgs_history_precision = HistoryPrecision::bf16;
        if (fits(smaller)) return "--lbfgs-history-precision bf16";
        smaller.lbfgs_history_precision = request.lbfgs_history_precision;
    }
    const int m = largest_fitting(1, request.lbfgs_history - 1, [&](int history) {
        smaller.lbfgs_history = history;
        return fits(smaller);
    });
    return m > 0 ? "--lbfgs-history " + std::to_string(m) : "";
}

// Memory grows with the pixel count: shrink the output (and every scale) in 5 %
// steps of the side until it fits, or the network no longer admits it. Says
// what the smallest output tried needs when none fits.
std::string smaller_output(const Backend& backend, const VggWeights& weights, const TransferRequest& request,
                           std::size_t budget) {
    std::size_t smallest_bytes = 0;
    int smallest_size = 0;
    for (double f = 0.95; f > 0.0; f -= 0.05) {
        TransferRequest smaller = request;
        smaller.size = std::max(16, int(request.size * f));
        smaller.scale_sizes.clear();
        if (request.sizes().size() > 1)
            for (int side : request.sizes()) smaller.scale_sizes.push_back(std::max(16, int(side * f)));
        try {
            if (plan_memory(backend, weights, smaller).peak_bytes <= budget)
                return "try --size " + std::to_string(smaller.size);
            smaller.lbfgs_history = 1;
            smallest_bytes = plan_memory(backend, weights, smaller).peak_bytes;
            smallest_size = smaller.size;
        } catch (const Error&) {
            break;  // too small for the deepest layer, or scales that collapsed onto each other
        }
        if (smaller.size == 16) break;
    }
    if (smallest_size == 0) return "more memory (the output cannot be smaller for these layers)";
    return "more memory: even --size " + std::to_string(smallest_size) + " with --lbfgs-history 1 needs " +
           mebibytes(smallest_bytes) + " (the weights and their cache)";
}

}  // namespace

void check_memory_budget(const Backend& backend, const VggWeights& weights,
                         const TransferRequest& request) {
    const std::size_t available = backend.available_bytes();
    const bool capped = request.max_memory > 0 && request.max_memory < available;
    const std::size_t budget = memory_budget(backend, request);
    const MemoryPlan plan = plan_memory(backend, weights, request);
    if (plan.largest_tensor_elements > backend.max_tensor_elements())
        refuse_tensor(backend, weights, request, plan, budget);
    if (plan.peak_bytes <= budget) return;
    std::string fix = cheaper_options(backend, weights, request, budget);
    fix = fix.empty() ? smaller_output(backend, weights, request, budget) : "try " + fix;
    throw OutOfMemory("out of memory before starting: this run needs " + mebibytes(plan.peak_bytes) + " of " +
                      backend.name() + " memory but " + mebibytes(budget) +
                      (capped ? " are allowed (--max-memory)" : " are free") + "; " + fix +
                      " (the table: neural-style --plan)");
}

}  // namespace nst
