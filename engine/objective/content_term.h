// The content loss (DESIGN.md, "The objective"), weight α = content_weight:
//   L_c = ½ Σ_{l∈C} c_l Σ_ij (F^l_ij − P^l_ij)²,     ∂L_c/∂F^l = c_l (F^l − P^l)
// and with a content mask m, pooled to each layer (m_l):
//   L_c = ½ Σ_{l∈C} c_l Σ_ij m_l(j)² (F^l_ij − P^l_ij)²
// (the features and the target both multiplied by m_l; the gradient through the
// mask multiply is m_l ⊙ ∂/∂(F ⊙ m_l)).
// Tiled: pass 1 takes the value over each tile's core (one slot per layer and
// tile, summed on the host); pass 2 adds the gradient over the tile's extent
// with P^l (and m_l) cropped to it.
#pragma once

#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/objective/loss_term.h"

namespace nst {

class ContentTerm final : public LossTerm {
public:
    // Allocates P^l for each content layer of the context's config.
    explicit ContentTerm(LossContext& context);

    // mask (H·W) in [0,1]. Before set_content().
    void set_mask(const std::vector<float>& mask);
    // P^l (masked, with a mask) from the content image, width × height.
    void set_content(const Image& content);
    // Host copy of P^l; UsageError when `layer` is not a content layer.
    std::vector<float> target(const std::string& layer) const;

    // The content mask (if any), then P^l from the content (no content layers: nothing).
    void set_inputs(const ObjectiveInputs& inputs) override;
    std::vector<int> layers() const override;
    std::size_t held_bytes() const override;
    std::size_t slot_count() const override { return layers_.size() * context_.tile_count(); }
    void check_ready() const override;
    void add_core(const TileView& view) override;
    void add_layer_gradient(const TileView& view, int layer, float* layer_grad) override;
    double read_value() override;

private:
    struct Layer {
        int index = 0;
        double weight = 0.0;  // c_l
        Buffer target;        // P^l (C, h, w) of the whole image
        Buffer mask;          // with a content mask: m_l (h·w), the whole image's
    };
    std::vector<Layer> layers_;
    Buffer tile_target_;  // tiled only: a layer's P^l cropped to a tile
    bool has_content_ = false;
    std::vector<float> mask_values_;  // the mask set_inputs last set (H·W)
};

}  // namespace nst
