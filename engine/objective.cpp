// The style-transfer objective (DESIGN.md, "The objective"):
//   L_c = ½ Σ_{l∈C} c_l Σ_ij (F^l_ij − P^l_ij)²
//   E_l = Σ_ij (G^l_ij − A^l_ij)² / (4 N_l² M_l²),  G^l = F^l F^lᵀ,  L_s = Σ_{l∈S} w_l E_l
//   L_tv = Σ_c Σ_ij (x_{c,i,j+1} − x_{c,i,j})² + (x_{c,i+1,j} − x_{c,i,j})²
//   L = α L_c + β L_s + γ L_tv
// The backend's loss ops accumulate α c_l ∂/∂F (content) and β w_l ∂E_l/∂F (style)
// into the gradient of VGG-19's backward pass when it reaches their layer (no
// buffer per loss layer); the values are those of the forward pass's features.
// Spatial control (guided Gram matrices, the masked content loss; formulas in
// objective.h) runs the same loss ops on F ⊙ m and multiplies their gradient by m
// again (the chain rule through the mask multiply) before adding it.
// Tiled evaluation (config.tile, engine/tiles.h for the geometry and why it is
// exact): queue_tiled_evaluation() runs the same loss ops per tile, in two passes.
#include "engine/objective.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/base/error.h"
#include "engine/masks.h"
#include "engine/base/nvtx.h"

namespace nst {

namespace {

std::vector<LayerWeight> checked(const std::vector<LayerWeight>& layers, const char* what) {
    for (const auto& layer : layers) {
        vgg19_layer_index(layer.layer);  // throws UsageError for an unknown name
        if (!std::isfinite(layer.weight) || layer.weight < 0)
            throw UsageError(std::string(what) + " layer weight for " + layer.layer +
                             " must be a finite number >= 0");
    }
    return layers;
}

// A loss on masked features F ⊙ m (the masked content loss, guided Gram matrices):
// `loss(masked, masked_grad)` reads F ⊙ m and accumulates ∂L/∂(F ⊙ m) into the
// zeroed masked_grad; the chain rule through the mask multiply then adds
// m ⊙ masked_grad to layer_grad. features, masked, masked_grad, layer_grad:
// (C, plane); mask: (plane).
template <typename Loss>
void add_masked_loss(Backend& backend, int channels, std::size_t plane, const float* features,
                     const float* mask, float* masked, float* masked_grad, float* layer_grad,
                     Loss&& loss) {
    const std::size_t count = std::size_t(channels) * plane;
    backend.mask_channels(channels, plane, features, mask, masked);
    backend.fill(count, 0.0f, masked_grad);
    loss(masked, masked_grad);
    backend.mask_channels(channels, plane, masked_grad, mask, masked_grad);
    backend.axpy(count, 1.0f, masked_grad, layer_grad);
}

WindowCopy window(int channels, int rows, int cols, int src_height, int src_width, int src_y,
                  int src_x, int dst_height, int dst_width, int dst_y, int dst_x) {
    WindowCopy w;
    w.channels = channels;
    w.rows = rows;
    w.cols = cols;
    w.src_height = src_height;
    w.src_width = src_width;
    w.src_y = src_y;
    w.src_x = src_x;
    w.dst_height = dst_height;
    w.dst_width = dst_width;
    w.dst_y = dst_y;
    w.dst_x = dst_x;
    return w;
}

// The output's tiles: none when untiled or when one tile covers the image.
std::vector<Tile> output_tiles(const ObjectiveConfig& config, int width, int height, int deepest) {
    if (config.tile.core <= 0) return {};
    std::vector<Tile> tiles = tile_layout(width, height, config.tile, deepest);
    if (tiles.size() <= 1) tiles.clear();
    return tiles;
}

Vgg19::Activations plan_activations(const Vgg19& network, const std::vector<Tile>& tiles, int width,
                                    int height) {
    if (tiles.empty()) return network.plan(height, width);
    const auto [extent_width, extent_height] = largest_extent(tiles);
    return network.plan(extent_height, extent_width);
}

}  // namespace

int StyleTransferObjective::deepest_of(const ObjectiveConfig& config) {
    int deepest = -1;
    for (const auto& l : checked(config.content_layers, "content"))
        deepest = std::max(deepest, vgg19_layer_index(l.layer));
    for (const auto& l : checked(config.style_layers, "style"))
        deepest = std::max(deepest, vgg19_layer_index(l.layer));
    if (deepest < 0) throw UsageError("no content or style layers given");
    return deepest;
}

StyleTransferObjective::StyleTransferObjective(Backend& backend, const VggWeights& weights,
                                               const ObjectiveConfig& config, int width,
                                               int height)
    : backend_(backend), config_(config), width_(width), height_(height),
      network_(backend, weights, deepest_of(config), config.pool),
      tiles_(output_tiles(config, width, height, network_.deepest_layer())),
      acts_(plan_activations(network_, tiles_, width, height)) {
    for (double w : {config.content_weight, config.style_weight, config.tv_weight})
        if (!std::isfinite(w) || w < 0)
            throw UsageError("content, style and TV weights must be finite numbers >= 0");
    has_loss_.assign(network_.deepest_layer() + 1, false);
    for (const auto& l : config.content_layers) {
        LossLayer layer;
        layer.index = vgg19_layer_index(l.layer);
        layer.weight = l.weight;
        layer.target = Buffer(backend_, network_.channels(layer.index) * full_plane(layer.index));
        has_loss_[layer.index] = true;
        content_layers_.push_back(std::move(layer));
    }
    for (const auto& l : config.style_layers) {
        LossLayer layer;
        layer.index = vgg19_layer_index(l.layer);
        layer.weight = l.weight;
        const std::size_t n = network_.channels(layer.index);
        layer.target = Buffer(backend_, n * n);
        layer.gram = Buffer(backend_, n * n);
        has_loss_[layer.index] = true;
        style_layers_.push_back(std::move(layer));
    }
    terms_.style_per_layer.assign(style_layers_.size(), 0.0);
    if (!tiles_.empty()) {
        const std::size_t input = 3 * acts_.planned_plane(0);
        std::size_t target = 1, plane = 1, gram = 1;
        for (const auto& layer : content_layers_)
            target = std::max(target, network_.channels(layer.index) * acts_.planned_plane(layer.index));
        for (const auto* layers : {&content_layers_, &style_layers_})
            for (const auto& layer : *layers) plane = std::max(plane, acts_.planned_plane(layer.index));
        for (const auto& layer : style_layers_)
            gram = std::max(gram, std::size_t(network_.channels(layer.index)) * network_.channels(layer.index));
        tile_input_ = Buffer(backend_, input);
        tile_grad_ = Buffer(backend_, input);
        tile_target_ = Buffer(backend_, target);
        tile_mask_ = Buffer(backend_, plane);
        tile_gram_ = Buffer(backend_, gram);
        // Pass 1 crops each loss layer's core into masked_features_: the core's
        // size is enough until masks need the whole extent (allocate_mask_scratch).
        int core_width = 1, core_height = 1;
        for (const Tile& t : tiles_) {
            core_width = std::max(core_width, t.core.width());
            core_height = std::max(core_height, t.core.height());
        }
        std::size_t core_floats = 1;
        for (const auto* layers : {&content_layers_, &style_layers_})
            for (const auto& layer : *layers) {
                const int s = layer_scale(layer.index);
                core_floats = std::max(core_floats, network_.channels(layer.index) *
                                                        std::size_t((core_width + s - 1) / s) *
                                                        std::size_t((core_height + s - 1) / s));
            }
        masked_features_ = Buffer(backend_, core_floats);
    }
    allocate_loss_slots();
}

int StyleTransferObjective::full_height(int layer) const { return height_ / layer_scale(layer); }
int StyleTransferObjective::full_width(int layer) const { return width_ / layer_scale(layer); }

void StyleTransferObjective::forward_tile(const float* x, const PixelRect& rect) {
    network_.fit(acts_, rect.height(), rect.width());
    backend_.copy_window(window(3, rect.height(), rect.width(), height_, width_, rect.y0, rect.x0,
                                rect.height(), rect.width(), 0, 0),
                         x, tile_input_.data());
    network_.forward(tile_input_.data(), acts_);
}

void StyleTransferObjective::add_core_gram(const Vgg19::Activations& acts, int layer,
                                           const LayerWindow& core, const float* mask,
                                           int mask_height, int mask_width, bool first,
                                           float* features_scratch, float* mask_scratch,
                                           float* gram_scratch, float* gram_sum) {
    const int n = network_.channels(layer);
    const std::size_t entries = std::size_t(n) * n;
    if (first) backend_.fill(entries, 0.0f, gram_sum);
    const std::size_t m = std::size_t(core.rows) * core.cols;
    if (m == 0) return;  // the last tiles' cores can vanish at deep layers
    backend_.copy_window(window(n, core.rows, core.cols, acts.height(layer), acts.width(layer),
                                core.local_y, core.local_x, core.rows, core.cols, 0, 0),
                         acts.output(layer), features_scratch);
    if (mask) {
        backend_.copy_window(window(1, core.rows, core.cols, mask_height, mask_width, core.y, core.x,
                                    core.rows, core.cols, 0, 0),
                             mask, mask_scratch);
        backend_.mask_channels(n, m, features_scratch, mask_scratch, features_scratch);
    }
    backend_.gram(n, m, features_scratch, gram_scratch);
    backend_.axpy(entries, 1.0f, gram_scratch, gram_sum);
}

void StyleTransferObjective::style_image_grams(const Image& image, const LayerMasks& masks,
                                               std::vector<Buffer>& grams) {
    grams.clear();
    for (const auto& layer : style_layers_) {
        const std::size_t n = network_.channels(layer.index);
        grams.emplace_back(backend_, n * n);
    }
    Buffer pixels(backend_, image.pixels.size());
    backend_.upload(pixels.data(), image.pixels.data(), image.pixels.size());
    std::vector<Buffer> mask_buffers(style_layers_.size());
    for (std::size_t i = 0; i < masks.size() && i < style_layers_.size(); ++i)
        if (!masks[i].empty()) {
            mask_buffers[i] = Buffer(backend_, masks[i].size());
            backend_.upload(mask_buffers[i].data(), masks[i].data(), masks[i].size());
        }
    const int deepest = network_.deepest_layer();
    const std::vector<Tile> tiles = config_.tile.core > 0
                                        ? tile_layout(image.width, image.height, config_.tile, deepest)
                                        : std::vector<Tile>{};
    if (tiles.size() <= 1) {
        // Only the Gram matrices are kept: a forward pass in the objective's
        // scratch and first output, unused at set-up (or two buffers of its own
        // when the style image needs larger ones), not a second set of activations.
        network_.forward_features(pixels.data(), image.height, image.width, acts_,
                                  [&](int index, const float* features, int h, int w) {
            for (std::size_t i = 0; i < style_layers_.size(); ++i) {
                if (style_layers_[i].index != index) continue;
                const int n = network_.channels(index);
                const std::size_t plane = std::size_t(h) * w;
                if (mask_buffers[i].empty()) {
                    backend_.gram(n, plane, features, grams[i].data());
                } else {
                    NST_ASSERT(mask_buffers[i].size() == plane);
                    Buffer masked(backend_, n * plane);
                    backend_.mask_channels(n, plane, features, mask_buffers[i].data(), masked.data());
                    backend_.gram(n, plane, masked.data(), grams[i].data());
                }
            }
        });
        return;
    }
    // Pass 1 of the tiled evaluation on the style image. The objective's own
    // activations serve when its tiles are at least as large (set-up comes
    // before any evaluation), else the style image's tiles get their own.
    const auto [extent_width, extent_height] = largest_forward_extent(tiles);
    const bool reuse = !tiles_.empty() && extent_height <= acts_.planned_height(0) &&
                       extent_width <= acts_.planned_width(0);
    Vgg19::Activations own;
    if (!reuse) own = network_.plan(extent_height, extent_width);
    Vgg19::Activations& acts = reuse ? acts_ : own;
    std::size_t features = 1, plane = 1, gram = 1;
    for (const auto& layer : style_layers_) {
        const std::size_t n = network_.channels(layer.index);
        features = std::max(features, n * acts.planned_plane(layer.index));
        plane = std::max(plane, acts.planned_plane(layer.index));
        gram = std::max(gram, n * n);
    }
    Buffer input(backend_, 3 * std::size_t(extent_width) * extent_height);
    Buffer features_scratch(backend_, features), mask_scratch(backend_, plane), gram_scratch(backend_, gram);
    for (std::size_t t = 0; t < tiles.size(); ++t) {
        const PixelRect& rect = tiles[t].forward;
        network_.fit(acts, rect.height(), rect.width());
        backend_.copy_window(window(3, rect.height(), rect.width(), image.height, image.width,
                                    rect.y0, rect.x0, rect.height(), rect.width(), 0, 0),
                             pixels.data(), input.data());
        network_.forward(input.data(), acts);
        for (std::size_t i = 0; i < style_layers_.size(); ++i) {
            const int index = style_layers_[i].index, s = layer_scale(index);
            const LayerWindow core = window_at_layer(tiles[t].core, rect, image.width, image.height, index);
            add_core_gram(acts, index, core, mask_buffers[i].empty() ? nullptr : mask_buffers[i].data(),
                          image.height / s, image.width / s, t == 0, features_scratch.data(),
                          mask_scratch.data(), gram_scratch.data(), grams[i].data());
        }
    }
}

std::size_t StyleTransferObjective::style_slot(std::size_t layer, std::size_t region) const {
    const std::size_t regions = style_layers_.empty() ? 1 : std::max<std::size_t>(1, style_layers_[0].regions.size());
    return kFirstLayerSlot + content_layers_.size() * tile_count() + layer * regions + region;
}

void StyleTransferObjective::allocate_loss_slots() {
    const std::size_t count = style_slot(style_layers_.size(), 0);
    if (loss_slots_.size() == count) return;
    loss_slots_ = ScalarBuffer(backend_, count);
}

void StyleTransferObjective::set_content(const Image& content) {
    if (content.width != width_ || content.height != height_)
        throw Error("content image is " + std::to_string(content.width) + "x" +
                    std::to_string(content.height) + ", expected " + std::to_string(width_) + "x" +
                    std::to_string(height_));
    Buffer image(backend_, content.pixels.size());
    backend_.upload(image.data(), content.pixels.data(), content.pixels.size());
    if (tiles_.empty()) {
        network_.forward(image.data(), acts_);
        for (auto& layer : content_layers_)
            backend_.copy(layer.target.size(), acts_.output(layer.index), layer.target.data());
    }
    // Tiled: each tile's forward pass (pass 1's extent: its core is exact)
    // writes its core into the whole image's P^l.
    for (const Tile& tile : tiles_) {
        forward_tile(image.data(), tile.forward);
        for (auto& layer : content_layers_) {
            const int index = layer.index;
            const LayerWindow core = window_at_layer(tile.core, tile.forward, width_, height_, index);
            backend_.copy_window(window(network_.channels(index), core.rows, core.cols,
                                        acts_.height(index), acts_.width(index), core.local_y,
                                        core.local_x, full_height(index), full_width(index), core.y,
                                        core.x),
                                 acts_.output(index), layer.target.data());
        }
    }
    for (auto& layer : content_layers_) {
        if (!layer.mask.empty())
            backend_.mask_channels(network_.channels(layer.index), full_plane(layer.index),
                                   layer.target.data(), layer.mask.data(), layer.target.data());
    }
    has_content_ = true;
}

void StyleTransferObjective::set_styles(const std::vector<Image>& styles,
                                        std::vector<double> blend_weights) {
    if (styles.empty()) throw UsageError("no style image given");
    if (blend_weights.empty()) blend_weights.assign(styles.size(), 1.0);
    if (blend_weights.size() != styles.size())
        throw UsageError("got " + std::to_string(blend_weights.size()) + " style blend weights for " +
                         std::to_string(styles.size()) + " style images");
    double total = 0.0;
    for (double b : blend_weights) {
        if (!std::isfinite(b) || b < 0) throw UsageError("style blend weights must be finite and >= 0");
        total += b;
    }
    if (!(total > 0)) throw UsageError("style blend weights must not all be zero");

    for (auto& layer : style_layers_) {
        layer.regions.clear();
        backend_.fill(layer.target.size(), 0.0f, layer.target.data());
    }
    for (std::size_t k = 0; k < styles.size(); ++k) {
        std::vector<Buffer> grams;
        style_image_grams(styles[k], {}, grams);
        const float blend = static_cast<float>(blend_weights[k] / total);
        for (std::size_t i = 0; i < style_layers_.size(); ++i)
            backend_.axpy(grams[i].size(), blend, grams[i].data(), style_layers_[i].target.data());
    }
    has_style_ = true;
    allocate_loss_slots();
}

void StyleTransferObjective::allocate_mask_scratch() {
    if (!masked_grad_.empty()) return;
    std::size_t largest = 0;
    for (const auto* layers : {&content_layers_, &style_layers_})
        for (const auto& layer : *layers)
            largest = std::max(largest, network_.channels(layer.index) * acts_.planned_plane(layer.index));
    largest = std::max<std::size_t>(largest, 1);
    if (masked_features_.size() < largest) masked_features_ = Buffer(backend_, largest);
    masked_grad_ = Buffer(backend_, largest);
}

void StyleTransferObjective::set_content_mask(const std::vector<float>& mask) {
    if (mask.size() != std::size_t(width_) * height_)
        throw Error("the content mask has " + std::to_string(mask.size()) + " values, expected " +
                    std::to_string(std::size_t(width_) * height_));
    if (has_content_) throw Error("set_content_mask() must come before set_content()");
    for (auto& layer : content_layers_) {
        const std::vector<float> m = mask_at_layer(mask, width_, height_, layer.index);
        NST_ASSERT(m.size() == full_plane(layer.index));
        layer.mask = Buffer(backend_, m.size());
        backend_.upload(layer.mask.data(), m.data(), m.size());
    }
    allocate_mask_scratch();
}

void StyleTransferObjective::set_guided_styles(const std::vector<Image>& styles,
                                               const std::vector<std::vector<float>>& output_masks,
                                               const std::vector<std::vector<float>>& style_masks) {
    if (styles.empty()) throw UsageError("no style image given");
    if (output_masks.size() != styles.size())
        throw UsageError("got " + std::to_string(output_masks.size()) + " style masks for " +
                         std::to_string(styles.size()) + " style images");
    if (style_masks.size() > styles.size())
        throw UsageError("got " + std::to_string(style_masks.size()) + " style-image masks for " +
                         std::to_string(styles.size()) + " style images");
    for (const auto& mask : output_masks)
        if (mask.size() != std::size_t(width_) * height_)
            throw Error("a style mask has " + std::to_string(mask.size()) + " values, expected " +
                        std::to_string(std::size_t(width_) * height_));
    allocate_mask_scratch();
    for (auto& layer : style_layers_) layer.regions.clear();

    for (std::size_t k = 0; k < styles.size(); ++k) {
        const Image& style = styles[k];
        const bool whole = k >= style_masks.size() || style_masks[k].empty();
        if (!whole && style_masks[k].size() != style.plane())
            throw Error("the mask of style image " + std::to_string(k + 1) + " has " +
                        std::to_string(style_masks[k].size()) + " values, expected " +
                        std::to_string(style.plane()));
        const bool erode = config_.erode_style_masks;
        LayerMasks layer_masks(style_layers_.size());
        if (!whole)
            for (std::size_t i = 0; i < style_layers_.size(); ++i)
                layer_masks[i] = mask_at_layer(style_masks[k], style.width, style.height,
                                               style_layers_[i].index, erode);
        std::vector<Buffer> grams;
        style_image_grams(style, layer_masks, grams);
        for (std::size_t i = 0; i < style_layers_.size(); ++i) {
            LossLayer& layer = style_layers_[i];
            const int n = network_.channels(layer.index), s = layer_scale(layer.index);
            StyleRegion region;
            const std::vector<float> m =
                mask_at_layer(output_masks[k], width_, height_, layer.index, erode);
            region.size = mask_size(m);
            region.mask = Buffer(backend_, m.size());
            backend_.upload(region.mask.data(), m.data(), m.size());
            region.target = std::move(grams[i]);
            if (!tiles_.empty()) region.gram = Buffer(backend_, std::size_t(n) * n);
            const double style_size = whole ? double(style.height / s) * double(style.width / s)
                                            : mask_size(layer_masks[i]);
            if (region.size > 0 && !(style_size > 0))
                throw InputError("the mask of style image " + std::to_string(k + 1) +
                                 " selects nothing at " + vgg19_layer_names()[layer.index]);
            // Ã_r = A_r · M_r / M^s_r: the style region's Gram at the output region's size.
            if (region.size > 0)
                backend_.scale(region.target.size(), static_cast<float>(region.size / style_size),
                               region.target.data());
            layer.regions.push_back(std::move(region));
        }
    }
    has_style_ = true;
    allocate_loss_slots();
}

double StyleTransferObjective::evaluate(const float* x, float* grad) {
    queue_evaluation(backend_, x, grad);
    backend_.synchronize();
    queued_result();
    return terms_.loss;
}

void StyleTransferObjective::queue_evaluation(Backend& backend, const float* x, float* grad) {
    NST_ASSERT(&backend == &backend_);
    if (!content_layers_.empty() && !has_content_)
        throw Error("the content image was not set before evaluating the objective");
    if (!style_layers_.empty() && !has_style_)
        throw Error("the style images were not set before evaluating the objective");

    NVTX_RANGE("objective");
    if (!tiles_.empty()) {
        queue_tiled_evaluation(x, grad);
        return;
    }
    network_.forward(x, acts_);
    backend_.fill(size(), 0.0f, grad);
    {
        NVTX_RANGE("tv loss");
        backend_.tv_loss_into(3, height_, width_, x, static_cast<float>(config_.tv_weight), grad,
                              loss_slots_.slot(kTvSlot));
    }
    const double alpha = config_.content_weight, beta = config_.style_weight;
    // The loss ops of layer `index`, their gradients added to layer_grad.
    auto add_losses = [&](int index, float* layer_grad) {
        for (std::size_t i = 0; i < content_layers_.size(); ++i) {
            LossLayer& layer = content_layers_[i];
            if (layer.index != index) continue;
            NVTX_RANGE("content loss");
            const float weight = static_cast<float>(alpha * layer.weight);
            double* value = loss_slots_.slot(content_slot(i));
            if (layer.mask.empty()) {
                backend_.content_loss_into(layer.target.size(), acts_.output(index), layer.target.data(),
                                           weight, layer_grad, value);
            } else {
                // ½ Σ (m ⊙ F − m ⊙ P)², the target masked at set_content().
                add_masked_loss(backend_, network_.channels(index), acts_.plane(index),
                                acts_.output(index), layer.mask.data(), masked_features_.data(),
                                masked_grad_.data(), layer_grad,
                                [&](const float* masked, float* masked_grad) {
                                    backend_.content_loss_into(layer.target.size(), masked,
                                                               layer.target.data(), weight,
                                                               masked_grad, value);
                                });
            }
        }
        for (std::size_t i = 0; i < style_layers_.size(); ++i) {
            LossLayer& layer = style_layers_[i];
            if (layer.index != index) continue;
            NVTX_RANGE("style loss");
            const int n = network_.channels(index);
            const std::size_t m = acts_.plane(index);
            const float* features = acts_.output(index);
            layer.value_plane = double(m);
            if (layer.regions.empty()) {
                backend_.gram(n, m, features, layer.gram.data());
                backend_.style_loss_into(n, m, features, layer.gram.data(), layer.target.data(),
                                         static_cast<float>(beta * layer.weight), layer_grad,
                                         loss_slots_.slot(style_slot(i, 0)));
            }
            for (std::size_t r = 0; r < layer.regions.size(); ++r) {
                StyleRegion& region = layer.regions[r];
                if (!(region.size > 0)) continue;
                // style_loss normalises by the plane m, E_{l,r} by the region's size M_r:
                // the gradient's weight is rescaled here by m² / M_r², the value in
                // queued_result().
                const double renormalise = (double(m) * double(m)) / (region.size * region.size);
                add_masked_loss(backend_, n, m, features, region.mask.data(), masked_features_.data(),
                                masked_grad_.data(), layer_grad,
                                [&](const float* masked, float* masked_grad) {
                                    backend_.gram(n, m, masked, layer.gram.data());
                                    backend_.style_loss_into(
                                        n, m, masked, layer.gram.data(), region.target.data(),
                                        static_cast<float>(beta * layer.weight * renormalise),
                                        masked_grad, loss_slots_.slot(style_slot(i, r)));
                                });
            }
        }
    };
    network_.backward(acts_, has_loss_, add_losses, grad);
    backend_.non_finite_into(size(), grad, loss_slots_.slot(kNonFiniteSlot));
    loss_slots_.queue_read();
}

void StyleTransferObjective::queue_tiled_evaluation(const float* x, float* grad) {
    const double alpha = config_.content_weight, beta = config_.style_weight;
    // Pass 1: G^l (or each region's G_r) summed over the tiles' cores, and the
    // content loss of each core.
    for (std::size_t t = 0; t < tiles_.size(); ++t) {
        NVTX_RANGE("tile pass 1");
        const Tile& tile = tiles_[t];
        forward_tile(x, tile.forward);
        for (std::size_t i = 0; i < content_layers_.size(); ++i) {
            LossLayer& layer = content_layers_[i];
            const int index = layer.index, n = network_.channels(index);
            const LayerWindow core = window_at_layer(tile.core, tile.forward, width_, height_, index);
            const std::size_t count = std::size_t(n) * core.rows * core.cols;
            backend_.copy_window(window(n, core.rows, core.cols, acts_.height(index), acts_.width(index),
                                        core.local_y, core.local_x, core.rows, core.cols, 0, 0),
                                 acts_.output(index), masked_features_.data());
            backend_.copy_window(window(n, core.rows, core.cols, full_height(index), full_width(index),
                                        core.y, core.x, core.rows, core.cols, 0, 0),
                                 layer.target.data(), tile_target_.data());
            if (!layer.mask.empty()) {
                backend_.copy_window(window(1, core.rows, core.cols, full_height(index),
                                            full_width(index), core.y, core.x, core.rows, core.cols, 0, 0),
                                     layer.mask.data(), tile_mask_.data());
                backend_.mask_channels(n, std::size_t(core.rows) * core.cols, masked_features_.data(),
                                       tile_mask_.data(), masked_features_.data());
            }
            // Only the value: with weight 0 the gradient goes to the backward
            // pass's scratch, which pass 2's backward pass clears before use.
            backend_.content_loss_into(count, masked_features_.data(), tile_target_.data(), 0.0f,
                                       acts_.scratch(), loss_slots_.slot(content_slot(i, t)));
        }
        for (auto& layer : style_layers_) {
            const int index = layer.index;
            const LayerWindow core = window_at_layer(tile.core, tile.forward, width_, height_, index);
            if (layer.regions.empty())
                add_core_gram(acts_, index, core, nullptr, 0, 0, t == 0, masked_features_.data(),
                              tile_mask_.data(), tile_gram_.data(), layer.gram.data());
            for (StyleRegion& region : layer.regions)
                if (region.size > 0)
                    add_core_gram(acts_, index, core, region.mask.data(), full_height(index),
                                  full_width(index), t == 0, masked_features_.data(),
                                  tile_mask_.data(), tile_gram_.data(), region.gram.data());
        }
    }
    // Pass 2: each tile's loss-layer gradients over its whole extent, with the
    // global G − A; backward; the core of ∂L/∂x into grad. The cores cover the
    // image, so every element of grad is written before the TV term adds to it.
    for (std::size_t t = 0; t < tiles_.size(); ++t) {
        NVTX_RANGE("tile pass 2");
        const Tile& tile = tiles_[t];
        forward_tile(x, tile.backward);
        // The loss ops of layer `index` on this tile, their gradients added to layer_grad.
        auto add_losses = [&](int index, float* layer_grad) {
            for (auto& layer : content_layers_) {
                if (layer.index != index) continue;
                const int n = network_.channels(index);
                const LayerWindow extent = window_at_layer(tile.backward, tile.backward, width_, height_, index);
                const std::size_t plane = acts_.plane(index), count = std::size_t(n) * plane;
                NST_ASSERT(std::size_t(extent.rows) * extent.cols == plane);
                const float weight = static_cast<float>(alpha * layer.weight);
                backend_.copy_window(window(n, extent.rows, extent.cols, full_height(index), full_width(index),
                                            extent.y, extent.x, extent.rows, extent.cols, 0, 0),
                                     layer.target.data(), tile_target_.data());
                if (layer.mask.empty()) {
                    backend_.content_loss_into(count, acts_.output(index), tile_target_.data(), weight,
                                               layer_grad, loss_slots_.slot(kDiscardSlot));
                } else {
                    backend_.copy_window(window(1, extent.rows, extent.cols, full_height(index),
                                                full_width(index), extent.y, extent.x, extent.rows,
                                                extent.cols, 0, 0),
                                         layer.mask.data(), tile_mask_.data());
                    add_masked_loss(backend_, n, plane, acts_.output(index), tile_mask_.data(),
                                    masked_features_.data(), masked_grad_.data(), layer_grad,
                                    [&](const float* masked, float* masked_grad) {
                                        backend_.content_loss_into(count, masked, tile_target_.data(),
                                                                   weight, masked_grad,
                                                                   loss_slots_.slot(kDiscardSlot));
                                    });
                }
            }
            for (std::size_t i = 0; i < style_layers_.size(); ++i) {
                LossLayer& layer = style_layers_[i];
                if (layer.index != index) continue;
                const int n = network_.channels(index);
                const std::size_t m = acts_.plane(index);
                // style_loss_into normalises by this tile's plane m; E_l by the image's
                // M (or the region's M_r): the weight carries m² / M².
                const double tile_plane = double(m), image_plane = double(full_plane(index));
                // The value (computed by every tile alike) is kept from the first.
                if (t == 0) layer.value_plane = tile_plane;
                if (layer.regions.empty()) {
                    const double renormalise = (tile_plane * tile_plane) / (image_plane * image_plane);
                    backend_.style_loss_into(n, m, acts_.output(index), layer.gram.data(),
                                             layer.target.data(),
                                             static_cast<float>(beta * layer.weight * renormalise),
                                             layer_grad,
                                             loss_slots_.slot(t == 0 ? style_slot(i, 0) : kDiscardSlot));
                }
                const LayerWindow extent = window_at_layer(tile.backward, tile.backward, width_, height_, index);
                for (std::size_t r = 0; r < layer.regions.size(); ++r) {
                    StyleRegion& region = layer.regions[r];
                    if (!(region.size > 0)) continue;
                    backend_.copy_window(window(1, extent.rows, extent.cols, full_height(index),
                                                full_width(index), extent.y, extent.x, extent.rows,
                                                extent.cols, 0, 0),
                                         region.mask.data(), tile_mask_.data());
                    const double renormalise = (tile_plane * tile_plane) / (region.size * region.size);
                    add_masked_loss(backend_, n, m, acts_.output(index), tile_mask_.data(),
                                    masked_features_.data(), masked_grad_.data(), layer_grad,
                                    [&](const float* masked, float* masked_grad) {
                                        backend_.style_loss_into(
                                            n, m, masked, region.gram.data(), region.target.data(),
                                            static_cast<float>(beta * layer.weight * renormalise),
                                            masked_grad,
                                            loss_slots_.slot(t == 0 ? style_slot(i, r) : kDiscardSlot));
                                    });
                }
            }
        };
        const PixelRect& rect = tile.backward;
        backend_.fill(3 * std::size_t(rect.width()) * rect.height(), 0.0f, tile_grad_.data());
        network_.backward(acts_, has_loss_, add_losses, tile_grad_.data());
        const LayerWindow core = window_at_layer(tile.core, rect, width_, height_, 0);
        backend_.copy_window(window(3, core.rows, core.cols, rect.height(), rect.width(), core.local_y,
                                    core.local_x, height_, width_, core.y, core.x),
                             tile_grad_.data(), grad);
    }
    {
        NVTX_RANGE("tv loss");
        backend_.tv_loss_into(3, height_, width_, x, static_cast<float>(config_.tv_weight), grad,
                              loss_slots_.slot(kTvSlot));
    }
    backend_.non_finite_into(size(), grad, loss_slots_.slot(kNonFiniteSlot));
    loss_slots_.queue_read();
}

double StyleTransferObjective::queued_result() {
    terms_.content = 0.0;
    for (std::size_t i = 0; i < content_layers_.size(); ++i)
        for (std::size_t t = 0; t < tile_count(); ++t)
            terms_.content += content_layers_[i].weight * loss_slots_.host(content_slot(i, t));
    terms_.style = 0.0;
    for (std::size_t i = 0; i < style_layers_.size(); ++i) {
        const LossLayer& layer = style_layers_[i];
        // The slots hold Σ(G − A)²/(4 N² m²) with m = value_plane: rescaled to
        // the image's M (or the region's M_r). Untiled without regions m = M.
        const double m = layer.value_plane, image_plane = double(full_plane(layer.index));
        double value = 0.0;
        if (layer.regions.empty())
            value = m == image_plane ? loss_slots_.host(style_slot(i, 0))
                                     : (m * m) / (image_plane * image_plane) * loss_slots_.host(style_slot(i, 0));
        for (std::size_t r = 0; r < layer.regions.size(); ++r) {
            const double size = layer.regions[r].size;
            if (size > 0) value += (m * m) / (size * size) * loss_slots_.host(style_slot(i, r));
        }
        terms_.style_per_layer[i] = value;
        terms_.style += layer.weight * value;
    }
    terms_.tv = loss_slots_.host(kTvSlot);
    terms_.loss = config_.content_weight * terms_.content + config_.style_weight * terms_.style +
                  config_.tv_weight * terms_.tv;
    const bool finite = std::isfinite(terms_.loss) && loss_slots_.host(kNonFiniteSlot) == 0.0;
    return finite ? terms_.loss : std::numeric_limits<double>::infinity();
}

std::vector<float> StyleTransferObjective::activation(const Image& image, const std::string& layer) {
    const int index = vgg19_layer_index(layer);
    if (index > network_.deepest_layer())
        throw UsageError("layer " + layer + " is deeper than the layers this objective uses");
    Vgg19::Activations acts = network_.plan(image.height, image.width);
    Buffer input(backend_, image.pixels.size());
    backend_.upload(input.data(), image.pixels.data(), image.pixels.size());
    network_.forward(input.data(), acts);
    std::vector<float> out(network_.channels(index) * acts.plane(index));
    backend_.download(out.data(), acts.output(index), out.size());
    return out;
}

const StyleTransferObjective::LossLayer& StyleTransferObjective::style_layer(const std::string& name) const {
    const int index = vgg19_layer_index(name);
    for (const auto& l : style_layers_)
        if (l.index == index) return l;
    throw UsageError("layer " + name + " is not a style layer of this objective");
}

std::vector<float> StyleTransferObjective::style_target(const std::string& layer) const {
    const LossLayer& l = style_layer(layer);
    std::vector<float> out(l.target.size());
    backend_.download(out.data(), l.target.data(), out.size());
    return out;
}

std::vector<float> StyleTransferObjective::region_style_target(const std::string& layer,
                                                               std::size_t region) const {
    const LossLayer& l = style_layer(layer);
    if (region >= l.regions.size())
        throw UsageError("no style region " + std::to_string(region) + " at " + layer);
    std::vector<float> out(l.regions[region].target.size());
    backend_.download(out.data(), l.regions[region].target.data(), out.size());
    return out;
}

std::vector<float> StyleTransferObjective::content_target(const std::string& layer) const {
    const int index = vgg19_layer_index(layer);
    for (const auto& l : content_layers_)
        if (l.index == index) {
            std::vector<float> out(l.target.size());
            backend_.download(out.data(), l.target.data(), out.size());
            return out;
        }
    throw UsageError("layer " + layer + " is not a content layer of this objective");
}

std::unique_ptr<StyleTransferObjective> make_objective_at(Backend& backend, const VggWeights& weights,
                                                          const ObjectiveConfig& config,
                                                          const TransferInputs& inputs,
                                                          int longest_side) {
    const Image content = resize_longest_side(inputs.content, longest_side);
    const int style_side =
        std::max(16, int(std::lround(inputs.style_scale * std::max(content.width, content.height))));
    std::vector<Image> styles;
    for (const Image& style : inputs.styles) styles.push_back(resize_longest_side(style, style_side));

    auto objective = std::make_unique<StyleTransferObjective>(backend, weights, config,
                                                              content.width, content.height);
    if (!config.content_layers.empty()) {
        if (inputs.content_mask.width > 0)
            objective->set_content_mask(mask_plane(inputs.content_mask, content.width, content.height));
        objective->set_content(content);
    }
    if (!config.style_layers.empty()) {
        if (inputs.style_masks.empty()) {
            objective->set_styles(styles, inputs.blend_weights);
        } else {
            if (!inputs.blend_weights.empty())
                throw UsageError("style blend weights do not apply with style masks (each style has its region)");
            std::vector<std::vector<float>> output_masks, style_masks;
            for (const Image& mask : inputs.style_masks)
                output_masks.push_back(mask_plane(mask, content.width, content.height));
            for (std::size_t k = 0; k < inputs.style_image_masks.size() && k < styles.size(); ++k)
                style_masks.push_back(inputs.style_image_masks[k].width > 0
                                          ? mask_plane(inputs.style_image_masks[k], styles[k].width,
                                                       styles[k].height)
                                          : std::vector<float>{});
            objective->set_guided_styles(styles, output_masks, style_masks);
        }
    }
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
