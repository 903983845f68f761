// DifferentiableFunction's default queued evaluation (engine/optim/optimizer.h).
#include <cmath>
#include <limits>

#include "engine/optim/optimizer.h"

namespace nst {

void DifferentiableFunction::queue_evaluation(Backend& backend, const float* x, float* grad) {
    const double loss = evaluate(x, grad);
    queued_loss_ = std::isfinite(loss) && backend.all_finite(size(), grad)
                       ? loss
                       : std::numeric_limits<double>::infinity();
}

}  // namespace nst
