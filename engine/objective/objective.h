// The style-transfer objective of DESIGN.md ("The objective"):
//   L = α L_c + β L_s + γ L_tv + λ_t L_temporal, with its gradient w.r.t. the image.
// Each loss term is one unit under engine/objective/ (a LossTerm: its targets,
// its value and its gradient at its layers), listed once in NST_LOSS_TERMS below.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/io/image.h"
#include "engine/optim/optimizer.h"
#include "engine/objective/tiles.h"
#include "engine/network/vgg19.h"
#include "engine/io/weights.h"

// The loss terms, listed once. Each entry: X(name, weight, default_weight, help):
//   name            its value in LossTerms, and its unit: make_<name>_term()
//                   (engine/objective/loss_term.h) in engine/objective/<name>_term.cpp
//   weight          its weight in ObjectiveConfig (α, β, γ of L), default_weight its default
//   help            one line for front ends
// Each weight is also a run option of the same name (engine/run/run_options.h),
// whose default and help come from here (LossTermDefaults below).
// The list's order is the order of the terms at a layer of the backward pass and
// of the sum L = Σ weight · value. A new term is its unit (reading its inputs in
// set_inputs), its kernels and backend ops, one line here and its weight's entry
// in NST_RUN_OPTIONS (the build fails until it exists): DESIGN.md, "The loss terms".
// clang-format off
#define NST_LOSS_TERMS(X)                                                                          \
    X(content, content_weight, 1.0, "weight of the content loss (alpha)")                         \
    X(style, style_weight, 1e3, "weight of the style loss (beta; see docs/DEFAULTS.md)")          \
    X(tv, tv_weight, 0.0, "weight of the squared total-variation loss (gamma)")                 \
    /* video: per pixel of the frame (the run applies temporal_weight · W·H); the default   \
       from docs/BENCHMARKS.md, "Video" */                                                      \
    X(temporal, temporal_weight, 1e7,                                                              \
      "weight of the temporal loss between video frames (Ruder et al.), per pixel of the frame; no effect on a still")
// clang-format on

namespace nst {

// Each term's default weight and help, by the weight's name (content_weight,
// content_weight_help, ...), for the run's options.
struct LossTermDefaults {
#define NST_LOSS_TERM_DEFAULT(name, weight, default_weight, help) \
    static constexpr double weight = default_weight;               \
    static constexpr const char* weight##_help = help;
    NST_LOSS_TERMS(NST_LOSS_TERM_DEFAULT)
#undef NST_LOSS_TERM_DEFAULT
};

struct LayerWeight {
    std::string layer;  // "conv4_2"
    double weight = 1.0;
};

struct ObjectiveConfig {
    std::vector<LayerWeight> content_layers{{"conv4_2", 1.0}};
    std::vector<LayerWeight> style_layers{{"conv1_1", 0.2}, {"conv2_1", 0.2}, {"conv3_1", 0.2},
                                          {"conv4_1", 0.2}, {"conv5_1", 0.2}};
#define NST_LOSS_TERM_WEIGHT(name, weight, default_weight, help) double weight = default_weight;
    NST_LOSS_TERMS(NST_LOSS_TERM_WEIGHT)  // α, β, γ, and temporal_weight λ_t
#undef NST_LOSS_TERM_WEIGHT
    PoolMode pool = PoolMode::average;
    // Spatial control: propagate style masks with erosion ("inside" guidance,
    // masks.h) instead of average pooling.
    bool erode_style_masks = false;
    // Tiled evaluation (engine/objective/tiles.h): the loss and gradient over tiles of
    // tile.core pixels, equal to the untiled ones up to float rounding, with the
    // network's activations held for one tile only. tile.core = 0, or a core
    // covering the image: untiled. Style images larger than a tile are tiled too.
    TileSpec tile;
};

// Values of the last evaluation: loss = L, the others unweighted (content,
// style, tv, temporal: one per NST_LOSS_TERMS entry).
struct LossTerms {
    double loss = 0.0;
#define NST_LOSS_TERM_VALUE(name, weight, default_weight, help) double name = 0.0;
    NST_LOSS_TERMS(NST_LOSS_TERM_VALUE)
#undef NST_LOSS_TERM_VALUE
    std::vector<double> style_per_layer;  // E_l, in config order
};

// NST_LOSS_TERMS as data, for code that walks every term (a log, a table):
//   for (const LossTermField& f : kLossTermFields) out[f.name] = terms.*f.value;
struct LossTermField {
    const char* name;                  // "content"
    double ObjectiveConfig::*weight;   // &ObjectiveConfig::content_weight
    double LossTerms::*value;          // &LossTerms::content
    const char* help;
};
#define NST_LOSS_TERM_FIELD(name, weight, default_weight, help) \
    LossTermField{#name, &ObjectiveConfig::weight, &LossTerms::name, help},
inline constexpr LossTermField kLossTermFields[] = {NST_LOSS_TERMS(NST_LOSS_TERM_FIELD)};
#undef NST_LOSS_TERM_FIELD

// One earlier stylised frame warped onto this one, for the temporal loss
// (engine/objective/temporal_term.h): warped is width × height of the output,
// weights its per-pixel consistency weights c (H·W, in [0,1]; 0 where the flow
// is not to be trusted: occlusions, motion boundaries, points leaving the frame).
struct TemporalTarget {
    Image warped;
    std::vector<float> weights;
};

// What the loss terms of one scale are made from: make_objective_at's inputs
// resized to the scale (masks as planes in [0,1]). The objective hands the same
// inputs to every term (LossTerm::set_inputs), each taking what it needs: a new
// term that needs an input adds it here and reads it in its own unit.
struct ObjectiveInputs {
    Image content;                                 // width × height of the output
    std::vector<Image> styles;                     // each at style_scale × the output's side
    std::vector<double> blend_weights;             // empty: equal (not with output_masks)
    std::vector<std::vector<float>> output_masks;  // guided: each style's output region (H·W); empty: not guided
    std::vector<std::vector<float>> style_masks;   // guided: a region of each style image (empty entry: all of it)
    std::vector<float> content_mask;               // (H·W), or empty: none
    std::vector<TemporalTarget> temporal;          // video: earlier frames warped here; empty: none
};

class LossTerm;
struct LossContext;
class ContentTerm;
class StyleTerm;
class TemporalTerm;

class StyleTransferObjective final : public DifferentiableFunction {
public:
    // The output image is width × height. Validates layer names (UsageError).
    StyleTransferObjective(Backend& backend, const VggWeights& weights,
                           const ObjectiveConfig& config, int width, int height);

    // Every term's targets from `inputs` (LossTerm::set_inputs), as
    // make_objective_at sets them. The setters below set one term's, for tests.
    void set_inputs(const ObjectiveInputs& inputs);
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

    // The temporal loss's targets (TemporalTerm::set_targets): earlier stylised
    // frames warped onto this one with their consistency weights; empty: none.
    // A video sets new ones every frame; the same number of targets as before
    // allocates nothing.
    void set_temporal_targets(const std::vector<TemporalTarget>& targets);

    // The tiles of the output (empty: untiled).
    const std::vector<Tile>& tiles() const;

    std::size_t size() const override;
    // x, grad: (3, H, W) in backend memory. Returns L; one host wait.
    double evaluate(const float* x, float* grad) override;
    // Queues the evaluation: every loss term goes to a slot in backend memory,
    // with the gradient's non-finite count, and one read of all of them is
    // queued. queued_result() (after the backend's synchronize()) sets
    // last_terms() and returns L, or +∞ when L or the gradient is not finite.
    void queue_evaluation(Backend& backend, const float* x, float* grad) override;
    double queued_result() override;
    const LossTerms& last_terms() const { return last_terms_; }

    int width() const;
    int height() const;
    const Vgg19& network() const;
    const ObjectiveConfig& config() const;
    // The loss terms' units, in NST_LOSS_TERMS order (engine/objective/loss_term.h).
    const std::vector<std::unique_ptr<LossTerm>>& loss_terms() const { return terms_; }
    // Backend memory the terms and their shared scratch hold (not the network's).
    std::size_t held_bytes() const;

    // Host copies, for tests and tools: the activation of `layer` for an image,
    // and the style target A^l.
    std::vector<float> activation(const Image& image, const std::string& layer);
    std::vector<float> style_target(const std::string& layer) const;
    // P^l (masked, with a content mask) and, with spatial control, Ã_r of region r.
    std::vector<float> content_target(const std::string& layer) const;
    std::vector<float> region_style_target(const std::string& layer, std::size_t region) const;

    ~StyleTransferObjective() override;
    StyleTransferObjective(const StyleTransferObjective&) = delete;
    StyleTransferObjective& operator=(const StyleTransferObjective&) = delete;

private:
    // Gives each term its scalar slots (at set-up, when their count changes).
    void allocate_slots();

    std::unique_ptr<LossContext> context_;  // the network, tiles, activations, scratch, slots
    std::vector<std::unique_ptr<LossTerm>> terms_;
    ContentTerm* content_ = nullptr;  // terms_'s, for the setters above
    StyleTerm* style_ = nullptr;
    TemporalTerm* temporal_ = nullptr;
    std::vector<bool> has_loss_;  // per layer index: a term reads that layer
    LossTerms last_terms_;
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

// The objective's inputs for an output whose longest side is `longest_side`: the
// content resized to it (resize_longest_side), each style to style_scale × it,
// masks to the output's (and each style image's) size.
ObjectiveInputs objective_inputs_at(const TransferInputs& inputs, int longest_side);

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
