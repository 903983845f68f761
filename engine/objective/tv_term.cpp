// The squared total-variation loss (engine/objective/tv_term.h).
#include "engine/objective/tv_term.h"

#include "engine/base/nvtx.h"

namespace nst {

std::unique_ptr<LossTerm> make_tv_term(LossContext& context) { return std::make_unique<TvTerm>(context); }

void TvTerm::add_image_gradient(const float* x, float* grad) {
    NVTX_RANGE("tv loss");
    context_.backend.tv_loss_into(3, context_.height, context_.width, x,
                                  static_cast<float>(context_.config.tv_weight), grad, slot(0));
}

}  // namespace nst
