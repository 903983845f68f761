// The style-transfer objective of DESIGN.md ("The objective"):
//   L = α L_c + β L_s + γ L_tv, with its gradient w.r.t. the image.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/image.h"
#include "engine/optimizer.h"
#include "engine/tiles.h"
#include "engine/vgg19.h"
#include "engine/weights.h"

namespace nst {

struct LayerWeight {
    std::string layer;  // "conv4_2"
    double weight = 1.0;
};

struct ObjectiveConfig {
    std::vector<LayerWeight> content_layers{{"conv4_2", 1.0}};
    std::vector<LayerWeight> style_layers{{"conv1_1", 0.2}, {"conv2_1", 0.2}, {"conv3_1", 0.2},
                                          {"conv4_1", 0.2}, {"conv5_1", 0.2}};
    double content_weight = 1.0;  // α
    double style_weight = 1e3;    // β
    double tv_weight = 0.0;       // γ
    PoolMode pool = PoolMode::average;
    // Spatial control: propagate style masks with erosion ("inside" guidance,
    // masks.h) instead of average pooling.
    bool erode_style_masks = false;
    // Tiled evaluation (engine/tiles.h): the loss and gradient over tiles of
    // tile.core pixels, equal to the untiled ones up to float rounding, with the
    // network's activations held for one tile only. tile.core = 0, or a core
    // covering the image: untiled. Style images larger than a tile are tiled too.
    TileSpec tile;
};

// Values of the last evaluation: loss = L, the others unweighted.
struct LossTerms {
    double loss = 0.0;
    double content = 0.0;
    double style = 0.0;
    double tv = 0.0;
    std::vector<double> style_per_layer;  // E_l, in config order
};

class StyleTransferObjective final : public DifferentiableFunction {
public:
    // The output image is width × height. Validates layer names (UsageError).
    StyleTransferObjective(Backend& backend, const VggWeights& weights,
                           const ObjectiveConfig& config, int width, int height);

    // P^l from the content image (must be width × height).
    void set_content(const Image& content);
    // A^l = Σ_k b_k A^l_k from style images of any size; blend weights are
    // normalised to sum to 1 (empty: equal weights).
    void set_styles(const std::vector<Image>& styles, std::vector<double> blend_weights = {});

    // Spatial control (Gatys et al. 2017, §4.1, guided Gram matrices): style k
    // applies to the output region output_masks[k] ((H·W) in [0,1]), taken from
    // the region style_masks[k] of style image k ((h_k·w_k) in [0,1]; an empty
    // vector or a missing entry: the whole style image). Replaces set_styles().
    // Masks go to each layer's size by 2×2 average pooling, or with erosion when
    // config.erode_style_masks (mask_at_layer, masks.h). At layer l,
    // with m_r, s_r the masks there and F_s the style image's features:
    //   G_r = (F ⊙ m_r)(F ⊙ m_r)ᵀ,   A_r = (F_s ⊙ s_r)(F_s ⊙ s_r)ᵀ,
    //   M_r = Σ_p m_r(p)²,  M^s_r = Σ_p s_r(p)²,  Ã_r = A_r · M_r / M^s_r,
    //   E_{l,r} = Σ_ij (G_r − Ã_r)²_ij / (4 N_l² M_r²) = Σ_ij (G_r/M_r − A_r/M^s_r)²_ij / (4 N_l²),
    //   L_s = Σ_l w_l Σ_r E_{l,r}
    // (each region's Gram matrix normalised by its own size, so a small region is
    // matched as strongly as a large one; a region empty at a layer adds nothing
    // there). ∂E_{l,r}/∂F = m_r ⊙ [(G_r − Ã_r)(F ⊙ m_r) / (N_l² M_r²)].
    // Throws InputError when a style region is empty where its output region is not.
    void set_guided_styles(const std::vector<Image>& styles,
                           const std::vector<std::vector<float>>& output_masks,
                           const std::vector<std::vector<float>>& style_masks = {});

    // Limits the content loss to a region: with m_l the mask (H·W, [0,1]) pooled to
    // layer l, L_c = ½ Σ_{l∈C} c_l Σ_ij m_l(j)² (F_ij − P_ij)² (the features and the
    // target are both multiplied by the mask). Call before set_content().
    void set_content_mask(const std::vector<float>& mask);

    // The tiles of the output (empty: untiled).
    const std::vector<Tile>& tiles() const { return tiles_; }

    std::size_t size() const override { return 3 * std::size_t(width_) * height_; }
    // x, grad: (3, H, W) in backend memory. Returns L; one host wait.
    double evaluate(const float* x, float* grad) override;
    // Queues the evaluation: every loss term goes to a slot in backend memory,
    // with the gradient's non-finite count, and one read of all of them is
    // queued. queued_result() (after the backend's synchronize()) sets
    // last_terms() and returns L, or +∞ when L or the gradient is not finite.
    void queue_evaluation(Backend& backend, const float* x, float* grad) override;
    double queued_result() override;
    const LossTerms& last_terms() const { return terms_; }

    int width() const { return width_; }
    int height() const { return height_; }
    const Vgg19& network() const { return network_; }
    const ObjectiveConfig& config() const { return config_; }

    // Host copies, for tests and tools: the activation of `layer` for an image,
    // and the style target A^l.
    std::vector<float> activation(const Image& image, const std::string& layer);
    std::vector<float> style_target(const std::string& layer) const;
    // P^l (masked, with a content mask) and, with spatial control, Ã_r of region r.
    std::vector<float> content_target(const std::string& layer) const;
    std::vector<float> region_style_target(const std::string& layer, std::size_t region) const;

private:
    struct StyleRegion {
        Buffer mask;        // m_r at this layer (h·w), the whole image's
        Buffer target;      // Ã_r (C, C)
        Buffer gram;        // tiled only: G_r summed over the tiles (C, C)
        double size = 0.0;  // M_r = Σ m_r²
    };
    struct LossLayer {
        int index = 0;
        double weight = 0.0;
        Buffer target;  // P^l (C, h, w) of the whole image, or A^l (C, C)
        Buffer gram;    // style only: G^l of the current image (C, C)
        Buffer mask;    // content only, with a content mask: m_l (h·w), the whole image's
        std::vector<StyleRegion> regions;  // style only, with spatial control
        // Style only: the plane m whose 1/(4 N² m²) style_loss_into applied to
        // the value in its slot (the image's, or the first tile's when tiled).
        double value_plane = 0.0;
    };
    // Host-side per-layer masks of one style image (empty: the whole image).
    using LayerMasks = std::vector<std::vector<float>>;
    // Each style layer's Gram matrix of `image`, its features multiplied by
    // masks[i] (style layer i's mask at that layer; none when masks is empty or
    // masks[i] is), summed over tiles when the spec tiles it. grams[i] (C, C).
    void style_image_grams(const Image& image, const LayerMasks& masks, std::vector<Buffer>& grams);
    // Crops rect of x (3, H, W) into tile_input_ and runs the network on it (acts_ fitted).
    void forward_tile(const float* x, const PixelRect& rect);
    // gram_sum (C, C) = (first ? 0 : gram_sum) + Gram of the features of `layer`
    // in acts (a tile) over `core`, multiplied by the whole image's mask of that
    // layer (mask (mask_height, mask_width) or null).
    void add_core_gram(const Vgg19::Activations& acts, int layer, const LayerWindow& core,
                       const float* mask, int mask_height, int mask_width, bool first,
                       float* features_scratch, float* mask_scratch, float* gram_scratch,
                       float* gram_sum);
    void queue_tiled_evaluation(const float* x, float* grad);
    int full_height(int layer) const;
    int full_width(int layer) const;
    std::size_t full_plane(int layer) const { return std::size_t(full_height(layer)) * full_width(layer); }
    const LossLayer& style_layer(const std::string& name) const;
    // Allocates, once, the scratch for masked features and their gradient (the
    // largest loss layer's size), at set-up: evaluate() never allocates.
    void allocate_mask_scratch();
    // Sizes loss_slots_ for the current layers and regions (at set-up).
    void allocate_loss_slots();
    std::size_t tile_count() const { return std::max<std::size_t>(1, tiles_.size()); }
    std::size_t content_slot(std::size_t layer, std::size_t tile = 0) const {
        return kFirstLayerSlot + layer * tile_count() + tile;
    }
    std::size_t style_slot(std::size_t layer, std::size_t region) const;
    static int deepest_of(const ObjectiveConfig& config);

    Backend& backend_;
    ObjectiveConfig config_;
    int width_, height_;
    Vgg19 network_;
    std::vector<Tile> tiles_;  // empty: untiled
    Vgg19::Activations acts_;  // the image's, or the largest tile's when tiled
    std::vector<LossLayer> content_layers_, style_layers_;
    std::vector<bool> has_loss_;  // per layer index: a content or style loss there
    bool has_content_ = false, has_style_ = false;
    LossTerms terms_;
    Buffer masked_features_, masked_grad_;
    // Tiled only: the tile's input and image gradient (3, h, w), a loss layer's
    // content target or mask cropped to the tile, one Gram matrix.
    Buffer tile_input_, tile_grad_, tile_target_, tile_mask_, tile_gram_;
    // The scalars of one evaluation, in backend memory: TV, the gradient's
    // non-finite count, a slot for values not needed (tiled), one per content
    // layer and tile, one per style layer and region.
    static constexpr std::size_t kTvSlot = 0, kNonFiniteSlot = 1, kDiscardSlot = 2,
                                 kFirstLayerSlot = 3;
    ScalarBuffer loss_slots_;
};

// Everything a run stylises, before resizing: each scale of a coarse-to-fine run
// resizes its inputs from these, as a single-scale run at that size would.
struct TransferInputs {
    Image content;
    std::vector<Image> styles;
    std::vector<double> blend_weights;     // empty: equal (not with style_masks)
    double style_scale = 1.0;              // style's longest side = style_scale × output's
    std::vector<Image> style_masks;        // empty, or one output region per style
    std::vector<Image> style_image_masks;  // empty, or one per style (width 0: whole image)
    Image content_mask;                    // width 0: none
};

// The objective for an output whose longest side is `longest_side`: the content
// resized to it (resize_longest_side), each style to style_scale × it, masks to
// the output's (and each style image's) size, all targets set.
std::unique_ptr<StyleTransferObjective> make_objective_at(Backend& backend, const VggWeights& weights,
                                                          const ObjectiveConfig& config,
                                                          const TransferInputs& inputs,
                                                          int longest_side);

// The longest sides of a coarse-to-fine run of `scales` sizes ending at `size`,
// coarsest first: round(size / 2^(scales−1−k)). Throws UsageError below 16 px.
std::vector<int> coarse_to_fine_sizes(int size, int scales);

}  // namespace nst
