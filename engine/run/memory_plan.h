// What a transfer will hold in backend memory, known before any work: per scale,
// the weights, the backend's own caches and scratch, the activations and their
// gradients, the loss targets, and the optimiser's vectors. The plan is not a
// second description of the allocations: plan_memory runs the run's own steps
// (engine/run/run_steps.h: the objective and its targets, the image, the
// optimiser up to its first evaluation) on a counting backend
// (engine/backends/counting_backend.h) that allocates nothing and computes
// nothing, and files each allocation under the MemoryUse its code names
// (engine/base/memory_use.h). A test holds the plan within 0.3 % of the CPU
// backend's measured peak.
//
// What a backend keeps of its own comes from the backend (planned_conv_memory,
// planned_style_loss_memory): the CUDA backend's cuDNN workspace is chosen at
// the first evaluation, so the plan counts its cap, which it never exceeds. The
// plan also records the largest tensor the network will see, which a backend
// may limit (Backend::max_tensor_elements: cuDNN indexes with int).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/run/request.h"
#include "engine/io/weights.h"

namespace nst {

struct MemoryPlanItem {
    std::string what;   // "activations and their gradients"
    std::size_t bytes = 0;
};

struct ScalePlan {
    int width = 0, height = 0;
    // Tiled evaluation (engine/objective/tiles.h): the core, the number of tiles and the
    // largest tile's extent, whose activations the plan holds; 0: untiled.
    int tile_core = 0, tiles = 0, extent_width = 0, extent_height = 0;
    std::vector<MemoryPlanItem> items;  // held while the scale's optimiser runs
    std::size_t setup_bytes = 0;        // peak while the targets are computed
    std::size_t peak_bytes = 0;         // max(setup, the items' sum)
    // Elements of the largest tensor a convolution sees (the image, an
    // activation or its gradient, at the largest input size of the scale: the
    // image, a tile extent or a style image), and the layer where it is.
    std::size_t largest_tensor_elements = 0;
    std::string largest_tensor_layer;
};

struct MemoryPlan {
    std::vector<ScalePlan> scales;
    std::size_t peak_bytes = 0;  // the largest scale's
    std::size_t largest_tensor_elements = 0;  // the largest scale's

    // Whether a run of this plan fits `budget` bytes and `backend`'s tensor limit.
    bool fits(const Backend& backend, std::size_t budget) const {
        return peak_bytes <= budget && largest_tensor_elements <= backend.max_tensor_elements();
    }
};

// The plan of `request` on `backend` (its caches and scratch depend on it).
// Validates the request like run_transfer (UsageError). A request with
// tile = TransferRequest::tile_auto is planned with auto_tile's core.
MemoryPlan plan_memory(const Backend& backend, const VggWeights& weights,
                       const TransferRequest& request);

// What a run may hold: request.max_memory when set and below what `backend`
// has free, else what it has free.
std::size_t memory_budget(const Backend& backend, const TransferRequest& request);

// --tile auto: 0 when the untiled plan fits memory_budget() and the backend's
// tensor limit (MemoryPlan::fits); else the largest tile core (a multiple of the
// pooling grid) whose plan fits, found by bisection (the plan grows with the
// core); else the smallest core (one grid step), which check_memory_budget then
// refuses with advice.
int auto_tile(const Backend& backend, const VggWeights& weights, const TransferRequest& request);

// The largest n in [lo, hi] with fits(n), by bisection, for a `fits` that holds
// up to some n and not above it (the plans of growing tiles, histories); 0 when
// fits(lo) does not hold. Only values seen to fit are returned.
int largest_fitting(int lo, int hi, const std::function<bool(int)>& fits);

// The plan as a table, one line per item, for --plan.
std::string format_memory_plan(const MemoryPlan& plan);

// Throws RuntimeFailure, before any work, when the memory plan of `request`
// (engine/run/memory_plan.h) exceeds what `backend` has free or request.max_memory:
// the message gives both numbers and the cheapest fix (--tile N when tiles fit,
// else bf16 history storage, else the largest --lbfgs-history, else the largest
// --size that fits); and when a tensor of
// the network would exceed the backend's limit (Backend::max_tensor_elements,
// cuDNN's int indexing), naming the tile size that fits. run_transfer calls it.
void check_memory_budget(const Backend& backend, const VggWeights& weights,
                         const TransferRequest& request);

}  // namespace nst
