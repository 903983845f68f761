// The style-transfer objective (DESIGN.md, "The objective"):
//   L = Σ_terms weight · value = α L_c + β L_s + γ L_tv + λ_t L_temporal
// over the terms of NST_LOSS_TERMS, each a unit under engine/objective/ (formulas
// in each one's header). One evaluation path, tiled or not (DESIGN.md, "Tiling";
// engine/objective/tiles.h for the geometry and why it is exact):
//   pass 1 (tiled only): each tile's forward extent; each term sums over the
//     tile's core what pass 2 needs of the whole image (G^l) or its value;
//   pass 2: each tile's backward extent (untiled: the image, as one whole tile
//     whose pass 1 is folded in); VGG-19's backward pass, where each term adds
//     its gradient at its layers while their features are intact (no buffer per
//     loss layer); the core of ∂L/∂x into the gradient;
//   then the terms on the image itself (TV, temporal), and one read of every value.
#include "engine/objective/objective.h"

#include <cmath>
#include <limits>

#include "engine/base/error.h"
#include "engine/base/nvtx.h"
#include "engine/objective/masks.h"
#include "engine/objective/content_term.h"
#include "engine/objective/loss_context.h"
#include "engine/objective/style_term.h"
#include "engine/objective/temporal_term.h"

namespace nst {

namespace {

template <typename Term>
Term& find_term(const std::vector<std::unique_ptr<LossTerm>>& terms) {
    for (const auto& term : terms)
        if (auto* found = dynamic_cast<Term*>(term.get())) return *found;
    throw Error("a loss term of NST_LOSS_TERMS is missing");
}

}  // namespace

StyleTransferObjective::StyleTransferObjective(Backend& backend, const VggWeights& weights,
                                               const ObjectiveConfig& config, int width,
                                               int height)
    : context_(std::make_unique<LossContext>(backend, weights, config, width, height)) {
#define NST_MAKE_LOSS_TERM(name, weight, default_weight, help) terms_.push_back(make_##name##_term(*context_));
    NST_LOSS_TERMS(NST_MAKE_LOSS_TERM)
#undef NST_MAKE_LOSS_TERM
    content_ = &find_term<ContentTerm>(terms_);
    style_ = &find_term<StyleTerm>(terms_);
    temporal_ = &find_term<TemporalTerm>(terms_);
    has_loss_ = layers_read(*context_, terms_);
    context_->set_loss_layers(has_loss_);
    allocate_slots();
}

StyleTransferObjective::~StyleTransferObjective() = default;

const std::vector<Tile>& StyleTransferObjective::tiles() const { return context_->tiles; }
std::size_t StyleTransferObjective::size() const { return 3 * std::size_t(width()) * height(); }
int StyleTransferObjective::width() const { return context_->width; }
int StyleTransferObjective::height() const { return context_->height; }
const Vgg19& StyleTransferObjective::network() const { return context_->network; }
const ObjectiveConfig& StyleTransferObjective::config() const { return context_->config; }

std::size_t StyleTransferObjective::held_bytes() const {
    std::size_t bytes = context_->held_bytes();
    for (const auto& term : terms_) bytes += term->held_bytes();
    return bytes;
}

void StyleTransferObjective::allocate_slots() { allocate_term_slots(*context_, terms_); }

void StyleTransferObjective::set_inputs(const ObjectiveInputs& inputs) {
    for (const auto& term : terms_) term->set_inputs(inputs);
    allocate_slots();
}

void StyleTransferObjective::set_content(const Image& content) { content_->set_content(content); }

void StyleTransferObjective::set_content_mask(const std::vector<float>& mask) { content_->set_mask(mask); }

void StyleTransferObjective::set_styles(const std::vector<Image>& styles, std::vector<double> blend_weights) {
    style_->set_styles(styles, std::move(blend_weights));
    allocate_slots();
}

void StyleTransferObjective::set_guided_styles(const std::vector<Image>& styles,
                                               const std::vector<std::vector<float>>& output_masks,
                                               const std::vector<std::vector<float>>& style_masks) {
    style_->set_guided_styles(styles, output_masks, style_masks);
    allocate_slots();
}

void StyleTransferObjective::set_temporal_targets(const std::vector<TemporalTarget>& targets) {
    temporal_->set_targets(targets);
    allocate_slots();
}

double StyleTransferObjective::evaluate(const float* x, float* grad) {
    queue_evaluation(context_->backend, x, grad);
    context_->backend.synchronize();
    queued_result();
    return last_terms_.loss;
}

void StyleTransferObjective::queue_evaluation(Backend& backend, const float* x, float* grad) {
    NST_ASSERT(&backend == &context_->backend);
    for (const auto& term : terms_) term->check_ready();
    NVTX_RANGE("objective");
    queue_loss_terms(*context_, terms_, has_loss_, x, grad);
    backend.non_finite_into(size(), grad, context_->slots.slot(LossContext::kNonFiniteSlot));
    context_->slots.queue_read();
}

double StyleTransferObjective::queued_result() {
    // L = Σ weight · value in list order, from the first term (not from 0).
    const ObjectiveConfig& config = context_->config;
    for (std::size_t k = 0; k < terms_.size(); ++k) {
        const LossTermField& field = kLossTermFields[k];
        last_terms_.*field.value = terms_[k]->read_value();
        const double weighted = config.*field.weight * last_terms_.*field.value;
        last_terms_.loss = k == 0 ? weighted : last_terms_.loss + weighted;
    }
    last_terms_.style_per_layer = style_->per_layer();
    const bool finite = std::isfinite(last_terms_.loss) &&
                        context_->slots.host(LossContext::kNonFiniteSlot) == 0.0;
    return finite ? last_terms_.loss : std::numeric_limits<double>::infinity();
}

std::vector<float> StyleTransferObjective::activation(const Image& image, const std::string& layer) {
    const int index = vgg19_layer_index(layer);
    const Vgg19& network = context_->network;
    if (index > network.deepest_layer())
        throw UsageError("layer " + layer + " is deeper than the layers this objective uses");
    Backend& backend = context_->backend;
    Vgg19::Activations acts = network.plan(image.height, image.width);
    Buffer input(backend, image.pixels.size());
    backend.upload(input.data(), image.pixels.data(), image.pixels.size());
    network.forward(input.data(), acts);
    std::vector<float> out(network.channels(index) * acts.plane(index));
    backend.download(out.data(), acts.output(index), out.size());
    return out;
}

std::vector<float> StyleTransferObjective::style_target(const std::string& layer) const {
    return style_->target(layer);
}

std::vector<float> StyleTransferObjective::region_style_target(const std::string& layer,
                                                               std::size_t region) const {
    return style_->region_target(layer, region);
}

std::vector<float> StyleTransferObjective::content_target(const std::string& layer) const {
    return content_->target(layer);
}

ObjectiveInputs objective_inputs_at(const TransferInputs& inputs, int longest_side) {
    ObjectiveInputs at;
    at.content = resize_longest_side(inputs.content, longest_side);
    const int width = at.content.width, height = at.content.height;
    const int style_side = std::max(16, int(std::lround(inputs.style_scale * std::max(width, height))));
    for (const Image& style : inputs.styles) at.styles.push_back(resize_longest_side(style, style_side));
    at.blend_weights = inputs.blend_weights;
    for (const Image& mask : inputs.style_masks) at.output_masks.push_back(mask_plane(mask, width, height));
    for (std::size_t k = 0; k < inputs.style_image_masks.size() && k < at.styles.size(); ++k)
        at.style_masks.push_back(inputs.style_image_masks[k].width > 0
                                     ? mask_plane(inputs.style_image_masks[k], at.styles[k].width,
                                                  at.styles[k].height)
                                     : std::vector<float>{});
    if (inputs.content_mask.width > 0) at.content_mask = mask_plane(inputs.content_mask, width, height);
    return at;
}

std::unique_ptr<StyleTransferObjective> make_objective_at(Backend& backend, const VggWeights& weights,
                                                          const ObjectiveConfig& config,
                                                          const TransferInputs& inputs,
                                                          int longest_side) {
    const ObjectiveInputs at = objective_inputs_at(inputs, longest_side);
    auto objective =
        std::make_unique<StyleTransferObjective>(backend, weights, config, at.content.width, at.content.height);
    objective->set_inputs(at);
    return objective;
}

std::vector<int> coarse_to_fine_sizes(int size, int scales) {
    if (scales < 1) throw UsageError("the number of scales must be at least 1");
    std::vector<int> sizes;
    for (int k = 0; k < scales; ++k) {
        const int side = int(std::lround(double(size) / std::pow(2.0, scales - 1 - k)));
        if (side < 16)
            throw UsageError(std::to_string(scales) + " scales halving down from " + std::to_string(size) +
                             " px reach " + std::to_string(side) + " px (the smallest is 16)");
        sizes.push_back(side);
    }
    return sizes;
}

}  // namespace nst
