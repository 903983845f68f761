// The squared total variation of the image itself (DESIGN.md, "The objective"),
// weight γ = tv_weight:
//   L_tv = Σ_c Σ_ij (x_{c,i,j+1} − x_{c,i,j})² + (x_{c,i+1,j} − x_{c,i,j})²
// (gradient in kernels/losses.h). It reads no layer: it is added once, on the
// whole image, after the tiles (tiled or not).
#pragma once

#include "engine/objective/loss_term.h"

namespace nst {

class TvTerm final : public LossTerm {
public:
    explicit TvTerm(LossContext& context) : LossTerm(context) {}

    std::vector<int> layers() const override { return {}; }
    std::size_t held_bytes() const override { return 0; }
    std::size_t slot_count() const override { return 1; }
    void add_image_gradient(const float* x, float* grad) override;
    double read_value() override { return host_slot(0); }
};

}  // namespace nst
