// The content loss (engine/objective/content_term.h for the formulas).
#include "engine/objective/content_term.h"

#include <algorithm>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/base/nvtx.h"
#include "engine/objective/masks.h"

namespace nst {

std::unique_ptr<LossTerm> make_content_term(LossContext& context) {
    return std::make_unique<ContentTerm>(context);
}

ContentTerm::ContentTerm(LossContext& context) : LossTerm(context) {
    MemoryUseScope use(MemoryUse::loss_targets);
    for (const auto& l : context.config.content_layers) {
        Layer layer;
        layer.index = vgg19_layer_index(l.layer);
        layer.weight = l.weight;
        layer.target = Buffer(context.backend, context.network.channels(layer.index) *
                                                   context.full_plane(layer.index));
        layers_.push_back(std::move(layer));
    }
    if (!context.tiled()) return;
    std::size_t largest = 1;
    for (const auto& layer : layers_)
        largest = std::max(largest, context.network.channels(layer.index) *
                                        context.acts.planned_plane(layer.index));
    MemoryUseScope tile_use(MemoryUse::tiles);
    tile_target_ = Buffer(context.backend, largest);
}

void ContentTerm::set_inputs(const ObjectiveInputs& inputs) {
    if (layers_.empty()) return;
    // A video sets its inputs every frame: the same mask is uploaded once, and a
    // new one replaces it before the content target is made again below.
    if (!inputs.content_mask.empty() && inputs.content_mask != mask_values_) {
        has_content_ = false;
        set_mask(inputs.content_mask);
        mask_values_ = inputs.content_mask;
    }
    set_content(inputs.content);
}

std::vector<int> ContentTerm::layers() const {
    std::vector<int> indices;
    for (const auto& layer : layers_) indices.push_back(layer.index);
    return indices;
}

std::size_t ContentTerm::held_bytes() const {
    std::size_t bytes = bytes_of(tile_target_);
    for (const auto& layer : layers_) bytes += bytes_of(layer.target) + bytes_of(layer.mask);
    return bytes;
}

void ContentTerm::check_ready() const {
    if (!layers_.empty() && !has_content_)
        throw Error("the content image was not set before evaluating the objective");
}

void ContentTerm::set_mask(const std::vector<float>& mask) {
    const int width = context_.width, height = context_.height;
    if (mask.size() != std::size_t(width) * height)
        throw Error("the content mask has " + std::to_string(mask.size()) + " values, expected " +
                    std::to_string(std::size_t(width) * height));
    if (has_content_) throw Error("set_content_mask() must come before set_content()");
    MemoryUseScope use(MemoryUse::loss_targets);
    for (auto& layer : layers_) {
        const std::vector<float> m = mask_at_layer(mask, width, height, layer.index);
        NST_ASSERT(m.size() == context_.full_plane(layer.index));
        layer.mask = Buffer(context_.backend, m.size());
        context_.backend.upload(layer.mask.data(), m.data(), m.size());
    }
    context_.allocate_mask_scratch();
}

void ContentTerm::set_content(const Image& content) {
    Backend& backend = context_.backend;
    const int width = context_.width, height = context_.height;
    if (content.width != width || content.height != height)
        throw Error("content image is " + std::to_string(content.width) + "x" +
                    std::to_string(content.height) + ", expected " + std::to_string(width) + "x" +
                    std::to_string(height));
    Buffer image(backend, content.pixels.size());
    backend.upload(image.data(), content.pixels.data(), content.pixels.size());
    // Each tile's forward pass (pass 1's extent: its core is exact) writes its
    // core into the whole image's P^l; untiled, the one tile is the image.
    context_.for_each_tile(image.data(), LossContext::Pass::forward, [&](const TileView& view) {
        for (auto& layer : layers_) {
            const int index = layer.index;
            const LayerWindow core = window_at_layer(view.tile.core, view.extent, width, height, index);
            backend.copy_window(window(context_.network.channels(index), core.rows, core.cols,
                                       view.acts.height(index), view.acts.width(index), core.local_y,
                                       core.local_x, context_.full_height(index),
                                       context_.full_width(index), core.y, core.x),
                                view.acts.output(index), layer.target.data());
        }
    });
    for (auto& layer : layers_)
        if (!layer.mask.empty())
            backend.mask_channels(context_.network.channels(layer.index), context_.full_plane(layer.index),
                                  layer.target.data(), layer.mask.data(), layer.target.data());
    has_content_ = true;
}

void ContentTerm::add_core(const TileView& view) {
    Backend& backend = context_.backend;
    float* features = context_.masked_features.data();
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        const Layer& layer = layers_[i];
        const int index = layer.index, n = context_.network.channels(index);
        const int full_height = context_.full_height(index), full_width = context_.full_width(index);
        const LayerWindow core =
            window_at_layer(view.tile.core, view.extent, context_.width, context_.height, index);
        const std::size_t count = std::size_t(n) * core.rows * core.cols;
        backend.copy_window(window(n, core.rows, core.cols, view.acts.height(index), view.acts.width(index),
                                   core.local_y, core.local_x, core.rows, core.cols, 0, 0),
                            view.acts.output(index), features);
        backend.copy_window(window(n, core.rows, core.cols, full_height, full_width, core.y, core.x,
                                   core.rows, core.cols, 0, 0),
                            layer.target.data(), tile_target_.data());
        if (!layer.mask.empty()) {
            float* mask = context_.tile_mask.data();
            backend.copy_window(window(1, core.rows, core.cols, full_height, full_width, core.y, core.x,
                                       core.rows, core.cols, 0, 0),
                                layer.mask.data(), mask);
            backend.mask_channels(n, std::size_t(core.rows) * core.cols, features, mask, features);
        }
        // Only the value: with weight 0 the gradient goes to the backward pass's
        // scratch, which pass 2's backward pass clears before use.
        backend.content_loss_into(count, features, tile_target_.data(), 0.0f, view.acts.scratch(),
                                  slot(i * context_.tile_count() + view.index));
    }
}

void ContentTerm::add_layer_gradient(const TileView& view, int index, float* layer_grad) {
    Backend& backend = context_.backend;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        const Layer& layer = layers_[i];
        if (layer.index != index) continue;
        NVTX_RANGE("content loss");
        const int n = context_.network.channels(index);
        const std::size_t plane = view.acts.plane(index), count = std::size_t(n) * plane;
        const float weight = static_cast<float>(context_.config.content_weight * layer.weight);
        // Tiled, pass 1 took the value (over the cores) and this is the gradient only.
        double* value = view.whole ? slot(i) : context_.discard_slot();
        const float* features = view.acts.output(index);
        const float* target = context_.crop_to_extent(view, index, n, layer.target.data(), tile_target_.data());
        if (layer.mask.empty()) {
            backend.content_loss_into(count, features, target, weight, layer_grad, value);
            continue;
        }
        // ½ Σ (m ⊙ F − m ⊙ P)², the target masked at set_content().
        const float* mask = context_.crop_to_extent(view, index, 1, layer.mask.data(), context_.tile_mask.data());
        add_masked_loss(backend, n, plane, features, mask, context_.masked_features.data(),
                        context_.masked_grad.data(), layer_grad,
                        [&](const float* masked, float* masked_grad) {
                            backend.content_loss_into(count, masked, target, weight, masked_grad, value);
                        });
    }
}

double ContentTerm::read_value() {
    double value = 0.0;
    for (std::size_t i = 0; i < layers_.size(); ++i)
        for (std::size_t t = 0; t < context_.tile_count(); ++t)
            value += layers_[i].weight * host_slot(i * context_.tile_count() + t);
    return value;
}

std::vector<float> ContentTerm::target(const std::string& name) const {
    const int index = vgg19_layer_index(name);
    for (const auto& layer : layers_)
        if (layer.index == index) {
            std::vector<float> out(layer.target.size());
            context_.backend.download(out.data(), layer.target.data(), out.size());
            return out;
        }
    throw UsageError("layer " + name + " is not a content layer of this objective");
}

}  // namespace nst
