// The style loss over the output (engine/objective/style_term.h for the
// formulas); its targets are made in style_targets.cpp.
#include "engine/objective/style_term.h"

#include <algorithm>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/base/nvtx.h"

namespace nst {

std::unique_ptr<LossTerm> make_style_term(LossContext& context) {
    return std::make_unique<StyleTerm>(context);
}

StyleTerm::StyleTerm(LossContext& context) : LossTerm(context) {
    MemoryUseScope use(MemoryUse::loss_targets);
    std::size_t largest_gram = 1;
    for (const auto& l : context.config.style_layers) {
        Layer layer;
        layer.index = vgg19_layer_index(l.layer);
        layer.weight = l.weight;
        const std::size_t n = context.network.channels(layer.index);
        layer.target = Buffer(context.backend, n * n);
        layer.gram = Buffer(context.backend, n * n);
        largest_gram = std::max(largest_gram, n * n);
        layers_.push_back(std::move(layer));
    }
    per_layer_.assign(layers_.size(), 0.0);
    MemoryUseScope tile_use(MemoryUse::tiles);
    if (context.tiled()) tile_gram_ = Buffer(context.backend, largest_gram);
}

bool StyleTerm::StyleInputs::operator==(const StyleInputs& other) const {
    const auto same_image = [](const Image& a, const Image& b) {
        return a.width == b.width && a.height == b.height && a.pixels == b.pixels;
    };
    return std::equal(styles.begin(), styles.end(), other.styles.begin(), other.styles.end(), same_image) &&
           blend_weights == other.blend_weights && output_masks == other.output_masks &&
           style_masks == other.style_masks;
}

void StyleTerm::set_inputs(const ObjectiveInputs& inputs) {
    if (layers_.empty()) return;
    StyleInputs given{inputs.styles, inputs.blend_weights, inputs.output_masks, inputs.style_masks};
    if (computed_from_ && *computed_from_ == given) return;  // the targets are these inputs' already
    computed_from_.reset();  // until the targets below are complete
    if (inputs.output_masks.empty()) {
        set_styles(inputs.styles, inputs.blend_weights);
    } else {
        if (!inputs.blend_weights.empty())
            throw UsageError("style blend weights do not apply with style masks (each style has its region)");
        set_guided_styles(inputs.styles, inputs.output_masks, inputs.style_masks);
    }
    computed_from_ = std::move(given);
}

std::vector<int> StyleTerm::layers() const {
    std::vector<int> indices;
    for (const auto& layer : layers_) indices.push_back(layer.index);
    return indices;
}

std::size_t StyleTerm::held_bytes() const {
    std::size_t bytes = bytes_of(tile_gram_);
    for (const auto& layer : layers_) {
        bytes += bytes_of(layer.target) + bytes_of(layer.gram);
        for (const auto& region : layer.regions)
            bytes += bytes_of(region.mask) + bytes_of(region.target) + bytes_of(region.gram);
    }
    return bytes;
}

void StyleTerm::check_ready() const {
    if (!layers_.empty() && !has_style_)
        throw Error("the style images were not set before evaluating the objective");
}

void StyleTerm::add_core(const TileView& view) {
    for (auto& layer : layers_) {
        const int index = layer.index;
        const LayerWindow core =
            window_at_layer(view.tile.core, view.extent, context_.width, context_.height, index);
        const bool first = view.index == 0;
        float* features = context_.masked_features.data();
        float* mask = context_.tile_mask.data();
        if (layer.regions.empty())
            add_core_gram(view.acts, index, core, nullptr, 0, 0, first, features, mask,
                          tile_gram_.data(), layer.gram.data());
        for (Region& region : layer.regions)
            if (region.size > 0)
                add_core_gram(view.acts, index, core, region.mask.data(), context_.full_height(index),
                              context_.full_width(index), first, features, mask, tile_gram_.data(),
                              region.gram.data());
    }
}

void StyleTerm::add_layer_gradient(const TileView& view, int index, float* layer_grad) {
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        Layer& layer = layers_[i];
        if (layer.index != index) continue;
        NVTX_RANGE("style loss");
        // The value (computed by every tile alike) is kept from the first.
        if (view.index == 0) layer.value_plane = double(view.acts.plane(index));
        if (layer.regions.empty()) add_plain_gradient(view, i, layer_grad);
        for (std::size_t r = 0; r < layer.regions.size(); ++r) add_region_gradient(view, i, r, layer_grad);
    }
}

void StyleTerm::add_plain_gradient(const TileView& view, std::size_t i, float* layer_grad) {
    Layer& layer = layers_[i];
    const int index = layer.index, n = context_.network.channels(index);
    const std::size_t m = view.acts.plane(index);
    const float* features = view.acts.output(index);
    // A whole view has had no pass 1: G^l is its own.
    if (view.whole) context_.backend.gram(n, m, features, layer.gram.data());
    // style_loss_into normalises by this extent's plane m; E_l by the image's M:
    // the weight carries m² / M² (1 when whole).
    const double tile_plane = double(m), image_plane = double(context_.full_plane(index));
    const double renormalise = (tile_plane * tile_plane) / (image_plane * image_plane);
    context_.backend.style_loss_into(
        n, m, features, layer.gram.data(), layer.target.data(),
        static_cast<float>(context_.config.style_weight * layer.weight * renormalise), layer_grad,
        view.index == 0 ? slot(i * region_slots()) : context_.discard_slot());
}

void StyleTerm::add_region_gradient(const TileView& view, std::size_t i, std::size_t r,
                                    float* layer_grad) {
    Layer& layer = layers_[i];
    Region& region = layer.regions[r];
    if (!(region.size > 0)) return;
    const int index = layer.index, n = context_.network.channels(index);
    const std::size_t m = view.acts.plane(index);
    const float* mask = context_.crop_to_extent(view, index, 1, region.mask.data(), context_.tile_mask.data());
    // style_loss_into normalises by the plane m, E_{l,r} by the region's size M_r:
    // the gradient's weight is rescaled here by m² / M_r², the value in read_value().
    const double renormalise = (double(m) * double(m)) / (region.size * region.size);
    const float weight = static_cast<float>(context_.config.style_weight * layer.weight * renormalise);
    // A whole view has had no pass 1: G_r is computed here, in the layer's G^l.
    float* gram = view.whole ? layer.gram.data() : region.gram.data();
    double* value = view.index == 0 ? slot(i * region_slots() + r) : context_.discard_slot();
    add_masked_loss(context_.backend, n, m, view.acts.output(index), mask, context_.masked_features.data(),
                    context_.masked_grad.data(), layer_grad,
                    [&](const float* masked, float* masked_grad) {
                        if (view.whole) context_.backend.gram(n, m, masked, gram);
                        context_.backend.style_loss_into(n, m, masked, gram, region.target.data(), weight,
                                                         masked_grad, value);
                    });
}

double StyleTerm::read_value() {
    double style = 0.0;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        const Layer& layer = layers_[i];
        const std::size_t first = i * region_slots();
        // The slots hold Σ(G − A)²/(4 N² m²) with m = value_plane: rescaled to
        // the image's M (or the region's M_r). Untiled without regions m = M.
        const double m = layer.value_plane, image_plane = double(context_.full_plane(layer.index));
        double value = 0.0;
        if (layer.regions.empty())
            value = m == image_plane ? host_slot(first)
                                     : (m * m) / (image_plane * image_plane) * host_slot(first);
        for (std::size_t r = 0; r < layer.regions.size(); ++r) {
            const double size = layer.regions[r].size;
            if (size > 0) value += (m * m) / (size * size) * host_slot(first + r);
        }
        per_layer_[i] = value;
        style += layer.weight * value;
    }
    return style;
}

const StyleTerm::Layer& StyleTerm::layer_named(const std::string& name) const {
    const int index = vgg19_layer_index(name);
    for (const auto& layer : layers_)
        if (layer.index == index) return layer;
    throw UsageError("layer " + name + " is not a style layer of this objective");
}

std::vector<float> StyleTerm::target(const std::string& name) const {
    const Layer& layer = layer_named(name);
    std::vector<float> out(layer.target.size());
    context_.backend.download(out.data(), layer.target.data(), out.size());
    return out;
}

std::vector<float> StyleTerm::region_target(const std::string& name, std::size_t region) const {
    const Layer& layer = layer_named(name);
    if (region >= layer.regions.size())
        throw UsageError("no style region " + std::to_string(region) + " at " + name);
    std::vector<float> out(layer.regions[region].target.size());
    context_.backend.download(out.data(), layer.regions[region].target.data(), out.size());
    return out;
}

}  // namespace nst
