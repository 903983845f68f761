// The steps of one scale of a run that run_transfer (engine/run/transfer.cpp)
// takes and the memory plan (engine/run/memory_plan.cpp) takes again on a
// counting backend: one sequence, so that the plan counts the run's own
// allocations. Per scale: make_objective_at (engine/objective/objective.h) from
// scale_inputs(), the image buffer, then optimize().
#pragma once

#include <cstddef>

#include "engine/backends/backend.h"
#include "engine/objective/objective.h"
#include "engine/optim/optimizer.h"
#include "engine/run/request.h"

namespace nst {

// The objective's layers, weights (style_weight: β as resolved for the run),
// pooling, mask erosion and tile core of `request` (its tile already resolved
// from tile_auto).
ObjectiveConfig objective_config(const TransferRequest& request, double style_weight);

// The request's images as given (the colour control, which changes pixel values
// only, is applied on top by run_transfer).
TransferInputs request_inputs(const TransferRequest& request);

// The image x of a scale: 3·H·W floats of backend memory, the optimiser's.
Buffer image_buffer(Backend& backend, std::size_t floats);

// The optimiser the request names (L-BFGS or Adam, with its settings), over
// `objective` from x.
OptimizationResult optimize(Backend& backend, DifferentiableFunction& objective, float* x, int iterations,
                            const TransferRequest& request, const IterationCallback& on_iteration);

}  // namespace nst
