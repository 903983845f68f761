// The style loss (DESIGN.md, "The objective"), weight β = style_weight:
//   G^l = F^l F^lᵀ,   E_l = Σ_ij (G^l_ij − A^l_ij)² / (4 N_l² M_l²),   L_s = Σ_{l∈S} w_l E_l
//   ∂E_l/∂F^l = (G^l − A^l) F^l / (N_l² M_l²)
// with A^l one style image's Gram matrix, or blended: A^l = Σ_k b_k A^l_k; or,
// guided by masks (set_guided_styles, formulas in engine/objective/objective.h), a sum over
// regions r of the same loss on F ⊙ m_r against Ã_r, normalised by M_r.
// Tiled: pass 1 sums G^l (or each region's G_r) over the tiles' cores; pass 2
// adds the gradient over each tile's extent with the global G − A. The loss op
// normalises by the extent's plane m: the gradient's weight carries m²/M² (or
// m²/M_r²), and the value, kept from the first tile, is rescaled on the host.
// The style images' Gram matrices (the targets) are in style_targets.cpp.
#pragma once

#include <string>
#include <optional>
#include <vector>

#include "engine/io/image.h"
#include "engine/objective/loss_term.h"
#include "engine/objective/style_targets.h"

namespace nst {

class StyleTerm final : public LossTerm {
public:
    // Allocates A^l and G^l for each style layer of the context's config.
    explicit StyleTerm(LossContext& context);

    // A^l = Σ_k b_k A^l_k; blend weights normalised to sum to 1 (empty: equal).
    void set_styles(const std::vector<Image>& styles, std::vector<double> blend_weights);
    // Style k for the output region output_masks[k], from the region
    // style_masks[k] of its image (StyleTransferObjective::set_guided_styles).
    void set_guided_styles(const std::vector<Image>& styles,
                           const std::vector<std::vector<float>>& output_masks,
                           const std::vector<std::vector<float>>& style_masks);
    // Host copies of A^l and of region r's Ã_r; UsageError for another layer.
    std::vector<float> target(const std::string& layer) const;
    std::vector<float> region_target(const std::string& layer, std::size_t region) const;
    // A key for the targets that set_inputs(inputs) makes: a 128-bit hash (hex) of
    // all they are made from but the network itself (the style images' pixels,
    // blend weights, masks, the style layers, pooling, mask erosion, the tile
    // spec and the output's size). Targets are only shared between objectives on
    // the same backend and weights, which the cache's owner ensures.
    std::string targets_key(const ObjectiveInputs& inputs) const;
    // The targets as host copies, and back: import_targets(t, inputs) leaves the
    // term as set_inputs(inputs) would have, bit for bit, when t was exported
    // after it (set_inputs then finds them made and computes nothing).
    StyleTargets export_targets() const;
    void import_targets(const StyleTargets& targets, const ObjectiveInputs& inputs);
    // E_l of the last read_value(), in config order.
    const std::vector<double>& per_layer() const { return per_layer_; }

    // Blended styles, or guided by output_masks when there are any (no style layers: nothing).
    void set_inputs(const ObjectiveInputs& inputs) override;
    std::vector<int> layers() const override;
    std::size_t held_bytes() const override;
    std::size_t slot_count() const override { return layers_.size() * region_slots(); }
    void check_ready() const override;
    void add_core(const TileView& view) override;
    void add_layer_gradient(const TileView& view, int layer, float* layer_grad) override;
    double read_value() override;

private:
    struct Region {
        Buffer mask;        // m_r at this layer (h·w), the whole image's
        Buffer target;      // Ã_r (C, C)
        Buffer gram;        // tiled only: G_r summed over the tiles (C, C)
        double size = 0.0;  // M_r = Σ m_r²
    };
    struct Layer {
        int index = 0;
        double weight = 0.0;  // w_l
        Buffer target;        // A^l (C, C)
        Buffer gram;          // G^l of the current image (C, C)
        std::vector<Region> regions;  // with spatial control
        // The plane m whose 1/(4 N² m²) style_loss_into applied to the value in
        // its slot (the image's, or the first tile's when tiled).
        double value_plane = 0.0;
    };
    // Host-side per-layer masks of one style image (empty: the whole image).
    using LayerMasks = std::vector<std::vector<float>>;

    std::size_t region_slots() const {
        return layers_.empty() ? 1 : std::max<std::size_t>(1, layers_[0].regions.size());
    }
    const Layer& layer_named(const std::string& name) const;
    // The gradient of layer i (and its value, for a whole view or the first tile).
    void add_plain_gradient(const TileView& view, std::size_t i, float* layer_grad);
    void add_region_gradient(const TileView& view, std::size_t i, std::size_t r, float* layer_grad);
    // Style k's region at each layer, its target Ã_r from grams (style_targets.cpp).
    void add_regions(std::size_t k, const Image& style, const std::vector<float>& output_mask,
                     const LayerMasks& style_masks, bool whole_style, std::vector<Buffer>& grams);

    // ---- the style images' Gram matrices (style_targets.cpp) ----
    // Each style layer's Gram matrix of `image`, its features multiplied by
    // masks[i] (layer i's mask at that layer; none when masks is empty or
    // masks[i] is), summed over tiles when the tile spec tiles it. grams[i] (C, C).
    void style_image_grams(const Image& image, const LayerMasks& masks, std::vector<Buffer>& grams);
    void whole_image_grams(const float* pixels, int width, int height,
                           std::vector<Buffer>& masks, std::vector<Buffer>& grams);
    void tiled_image_grams(const float* pixels, int width, int height, const std::vector<Tile>& tiles,
                           std::vector<Buffer>& masks, std::vector<Buffer>& grams);
    // gram_sum (C, C) = (first ? 0 : gram_sum) + Gram of the features of `layer`
    // in acts (a tile) over `core`, multiplied by the whole image's mask of that
    // layer (mask (mask_height, mask_width) or null).
    void add_core_gram(const Vgg19::Activations& acts, int layer, const LayerWindow& core,
                       const float* mask, int mask_height, int mask_width, bool first,
                       float* features_scratch, float* mask_scratch, float* gram_scratch,
                       float* gram_sum);

    std::vector<Layer> layers_;
    // What the targets were last computed from (set_inputs): a video sets the same
    // styles for every frame, and their Gram matrices are computed once.
    struct StyleInputs {
        std::vector<Image> styles;
        std::vector<double> blend_weights;
        std::vector<std::vector<float>> output_masks, style_masks;
        bool operator==(const StyleInputs& other) const;
    };
    std::optional<StyleInputs> computed_from_;
    Buffer tile_gram_;  // tiled only: one Gram matrix of a core
    std::vector<double> per_layer_;
    bool has_style_ = false;
};

}  // namespace nst
