// One style transfer, end to end: the API that the CLI (apps/neural_style.cpp),
// the Python module (python/) and programs that link libnst call.
//
//   TransferRequest request;            // every option of the CLI, same defaults
//   request.content = load_image("photo.jpg");
//   request.styles = {load_image("painting.jpg")};
//   const VggWeights weights = read_weights("vgg19.h5");
//   TransferResult result = run_transfer(weights, request);
//   save_image("out.png", result.image);
//
// run_transfer validates the request (UsageError with the CLI's messages), picks
// the backend, applies the colour control, runs each scale of a coarse-to-fine
// run (or the one scale) with L-BFGS or Adam, and returns the finished image.
// Progress goes to the callbacks; nothing is printed or written.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/run/memory_plan.h"
#include "engine/objective/objective.h"
#include "engine/objective/style_targets.h"
#include "engine/optim/optimizer.h"
#include "engine/run/request.h"
#include "engine/io/weights.h"

namespace nst {

// Reported once per iteration of each scale (iteration 0: the starting image).
struct TransferProgress {
    int scale = 0;          // 0-based
    int scales = 1;
    int size = 0;           // this scale's longest side
    int iteration = 0;      // within this scale
    int iterations = 0;     // of this scale
    int evaluations = 0;    // within this scale
    LossTerms terms;        // of the reported iterate: loss = L, content, style, tv
    std::string event;      // e.g. a rejected step
    double seconds = 0.0;   // since run_transfer started
    std::size_t peak_bytes = 0;
    // The current image as it would be returned (colour control applied, clamped);
    // downloads from the device, so call it only when needed (snapshots).
    std::function<Image()> current_image;
};

// Said once at the start of each scale.
struct ScaleStart {
    int scale = 0, scales = 1;
    int width = 0, height = 0, iterations = 0;
    std::string backend;  // "cpu", "cuda:0"
    double style_weight = 0.0;
    std::size_t style_count = 0;
};

struct TransferCallbacks {
    std::function<void(const ScaleStart&)> on_scale;
    // Return false to stop after this iteration (the image so far is returned).
    std::function<bool(const TransferProgress&)> on_iteration;
    // Checked between iterations; when set, the run stops as if on_iteration
    // had returned false.
    const std::atomic<bool>* cancel = nullptr;
};

struct TransferResult {
    Image image;                      // the finished image (colour control applied), in [0, 1]
    OptimizationResult optimization;  // of the last scale that ran
    bool stopped_early = false;       // by a callback or the cancel flag
    std::string backend;
    double style_weight = 0.0;        // β used
    std::size_t peak_bytes = 0;
    double seconds = 0.0;
};

// Runs the transfer. Throws UsageError (bad request), InputError (masks or
// images the objective refuses), RuntimeFailure/DeviceError (out of memory, a
// device error, or a non-finite image: nothing is returned then). An
// optimisation that fails (StopReason::failed) still returns the best image it
// found, with optimization.reason saying so.
TransferResult run_transfer(const VggWeights& weights, const TransferRequest& request,
                            const TransferCallbacks& callbacks = {});

// The style targets of earlier runs, by StyleTerm::targets_key: runs that share
// one backend and one set of weights (a batch, engine/batch/runner.h) and a style
// compute its Gram matrices once. The targets are the same bits either way.
class StyleTargetCache {
public:
    const StyleTargets* find(const std::string& key) const {
        const auto found = targets_.find(key);
        return found == targets_.end() ? nullptr : &found->second;
    }
    void store(const std::string& key, StyleTargets targets) {
        targets_[key] = std::move(targets);
        ++computed_;
    }
    void count_reuse() { ++reused_; }
    // Targets computed (stored) and reused so far.
    int computed() const { return computed_; }
    int reused() const { return reused_; }

private:
    std::map<std::string, StyleTargets> targets_;
    int computed_ = 0, reused_ = 0;
};

// run_transfer on a backend the caller keeps (one per device for a batch of runs:
// set up once, its peak_bytes counting from its construction), with an optional
// cache of style targets for that backend and those weights. The request's
// device, threads and precision are those the backend was made for (the caller's
// to ensure: make_backend(parse_device(r.device), r.threads, r.precision != fp32)).
TransferResult run_transfer(Backend& backend, const VggWeights& weights, const TransferRequest& request,
                            const TransferCallbacks& callbacks = {}, StyleTargetCache* style_targets = nullptr);

// β for a request: as given, else the default for the kind of weights
// (docs/DEFAULTS.md): normalised weights need a far larger style weight.
double default_style_weight(const TransferRequest& request, const VggWeights& weights);

}  // namespace nst
