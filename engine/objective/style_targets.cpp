// The style term's targets: the style images' Gram matrices A^l, blended
// (A^l = Σ_k b_k A^l_k) or per region (Ã_r = A_r · M_r / M^s_r), each style
// image run through the network whole or, when larger than a tile, by tiles
// (pass 1 of "Tiling" in DESIGN.md: G summed over the cores).
#include <cmath>

#include "engine/base/error.h"
#include "engine/base/hash128.h"
#include "engine/base/memory_use.h"
#include "engine/objective/masks.h"
#include "engine/objective/style_term.h"

namespace nst {

void StyleTerm::set_styles(const std::vector<Image>& styles, std::vector<double> blend_weights) {
    computed_from_.reset();  // set directly: set_inputs's record no longer holds
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

    Backend& backend = context_.backend;
    for (auto& layer : layers_) {
        layer.regions.clear();
        backend.fill(layer.target.size(), 0.0f, layer.target.data());
    }
    for (std::size_t k = 0; k < styles.size(); ++k) {
        std::vector<Buffer> grams;
        style_image_grams(styles[k], {}, grams);
        const float blend = static_cast<float>(blend_weights[k] / total);
        for (std::size_t i = 0; i < layers_.size(); ++i)
            backend.axpy(grams[i].size(), blend, grams[i].data(), layers_[i].target.data());
    }
    has_style_ = true;
}

void StyleTerm::set_guided_styles(const std::vector<Image>& styles,
                                  const std::vector<std::vector<float>>& output_masks,
                                  const std::vector<std::vector<float>>& style_masks) {
    computed_from_.reset();
    if (styles.empty()) throw UsageError("no style image given");
    if (output_masks.size() != styles.size())
        throw UsageError("got " + std::to_string(output_masks.size()) + " style masks for " +
                         std::to_string(styles.size()) + " style images");
    if (style_masks.size() > styles.size())
        throw UsageError("got " + std::to_string(style_masks.size()) + " style-image masks for " +
                         std::to_string(styles.size()) + " style images");
    const std::size_t pixels = std::size_t(context_.width) * context_.height;
    for (const auto& mask : output_masks)
        if (mask.size() != pixels)
            throw Error("a style mask has " + std::to_string(mask.size()) + " values, expected " +
                        std::to_string(pixels));
    context_.allocate_mask_scratch();
    for (auto& layer : layers_) layer.regions.clear();

    for (std::size_t k = 0; k < styles.size(); ++k) {
        const Image& style = styles[k];
        const bool whole = k >= style_masks.size() || style_masks[k].empty();
        if (!whole && style_masks[k].size() != style.plane())
            throw Error("the mask of style image " + std::to_string(k + 1) + " has " +
                        std::to_string(style_masks[k].size()) + " values, expected " +
                        std::to_string(style.plane()));
        LayerMasks layer_masks(layers_.size());
        if (!whole)
            for (std::size_t i = 0; i < layers_.size(); ++i)
                layer_masks[i] = mask_at_layer(style_masks[k], style.width, style.height, layers_[i].index,
                                               context_.config.erode_style_masks);
        std::vector<Buffer> grams;
        style_image_grams(style, layer_masks, grams);
        add_regions(k, style, output_masks[k], layer_masks, whole, grams);
    }
    has_style_ = true;
}

void StyleTerm::add_regions(std::size_t k, const Image& style, const std::vector<float>& output_mask,
                            const LayerMasks& style_masks, bool whole_style, std::vector<Buffer>& grams) {
    Backend& backend = context_.backend;
    MemoryUseScope use(MemoryUse::loss_targets);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        Layer& layer = layers_[i];
        const int n = context_.network.channels(layer.index), s = layer_scale(layer.index);
        Region region;
        const std::vector<float> m = mask_at_layer(output_mask, context_.width, context_.height, layer.index,
                                                   context_.config.erode_style_masks);
        region.size = mask_size(m);
        region.mask = Buffer(backend, m.size());
        backend.upload(region.mask.data(), m.data(), m.size());
        region.target = std::move(grams[i]);
        if (context_.tiled()) region.gram = Buffer(backend, std::size_t(n) * n);
        const double style_size = whole_style ? double(style.height / s) * double(style.width / s)
                                              : mask_size(style_masks[i]);
        if (region.size > 0 && !(style_size > 0))
            throw InputError("the mask of style image " + std::to_string(k + 1) + " selects nothing at " +
                             vgg19_layer_names()[layer.index]);
        // Ã_r = A_r · M_r / M^s_r: the style region's Gram at the output region's size.
        if (region.size > 0)
            backend.scale(region.target.size(), static_cast<float>(region.size / style_size),
                          region.target.data());
        layer.regions.push_back(std::move(region));
    }
}

void StyleTerm::style_image_grams(const Image& image, const LayerMasks& masks, std::vector<Buffer>& grams) {
    Backend& backend = context_.backend;
    grams.clear();
    {
        // A style image's Gram matrices: blended into A^l, or (guided) its regions' targets.
        MemoryUseScope use(MemoryUse::loss_targets);
        for (const auto& layer : layers_) {
            const std::size_t n = context_.network.channels(layer.index);
            grams.emplace_back(backend, n * n);
        }
    }
    Buffer pixels(backend, image.pixels.size());
    backend.upload(pixels.data(), image.pixels.data(), image.pixels.size());
    std::vector<Buffer> mask_buffers(layers_.size());
    for (std::size_t i = 0; i < masks.size() && i < layers_.size(); ++i)
        if (!masks[i].empty()) {
            mask_buffers[i] = Buffer(backend, masks[i].size());
            backend.upload(mask_buffers[i].data(), masks[i].data(), masks[i].size());
        }
    const TileSpec& spec = context_.config.tile;
    const std::vector<Tile> tiles =
        spec.core > 0 ? tile_layout(image.width, image.height, spec, context_.network.deepest_layer())
                      : std::vector<Tile>{};
    if (tiles.size() <= 1)
        whole_image_grams(pixels.data(), image.width, image.height, mask_buffers, grams);
    else
        tiled_image_grams(pixels.data(), image.width, image.height, tiles, mask_buffers, grams);
}

void StyleTerm::whole_image_grams(const float* pixels, int width, int height, std::vector<Buffer>& masks,
                                  std::vector<Buffer>& grams) {
    Backend& backend = context_.backend;
    // Only the Gram matrices are kept: a forward pass in the objective's scratch
    // and first output, unused at set-up (or two buffers of its own when the
    // style image needs larger ones), not a second set of activations.
    context_.network.forward_features(pixels, height, width, context_.acts,
                                      [&](int index, const float* features, int h, int w) {
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            if (layers_[i].index != index) continue;
            const int n = context_.network.channels(index);
            const std::size_t plane = std::size_t(h) * w;
            if (masks[i].empty()) {
                backend.gram(n, plane, features, grams[i].data());
            } else {
                NST_ASSERT(masks[i].size() == plane);
                Buffer masked(backend, n * plane);
                backend.mask_channels(n, plane, features, masks[i].data(), masked.data());
                backend.gram(n, plane, masked.data(), grams[i].data());
            }
        }
    });
}

void StyleTerm::tiled_image_grams(const float* pixels, int width, int height, const std::vector<Tile>& tiles,
                                  std::vector<Buffer>& masks, std::vector<Buffer>& grams) {
    Backend& backend = context_.backend;
    const Vgg19& network = context_.network;
    // The objective's own activations serve when its tiles are at least as
    // large (set-up comes before any evaluation), else the style image's tiles
    // get their own.
    const auto [extent_width, extent_height] = largest_forward_extent(tiles);
    const bool reuse = context_.tiled() && extent_height <= context_.acts.planned_height(0) &&
                       extent_width <= context_.acts.planned_width(0);
    Vgg19::Activations own;
    if (!reuse) own = network.plan(extent_height, extent_width);
    Vgg19::Activations& acts = reuse ? context_.acts : own;
    std::size_t features = 1, plane = 1, gram = 1;
    for (const auto& layer : layers_) {
        const std::size_t n = network.channels(layer.index);
        features = std::max(features, n * acts.planned_plane(layer.index));
        plane = std::max(plane, acts.planned_plane(layer.index));
        gram = std::max(gram, n * n);
    }
    Buffer input(backend, 3 * std::size_t(extent_width) * extent_height);
    Buffer features_scratch(backend, features), mask_scratch(backend, plane), gram_scratch(backend, gram);
    for (std::size_t t = 0; t < tiles.size(); ++t) {
        const PixelRect& rect = tiles[t].forward;
        network.fit(acts, rect.height(), rect.width());
        backend.copy_window(window(3, rect.height(), rect.width(), height, width, rect.y0, rect.x0,
                                   rect.height(), rect.width(), 0, 0),
                            pixels, input.data());
        network.forward(input.data(), acts);
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            const int index = layers_[i].index, s = layer_scale(index);
            const LayerWindow core = window_at_layer(tiles[t].core, rect, width, height, index);
            add_core_gram(acts, index, core, masks[i].empty() ? nullptr : masks[i].data(), height / s,
                          width / s, t == 0, features_scratch.data(), mask_scratch.data(),
                          gram_scratch.data(), grams[i].data());
        }
    }
}

void StyleTerm::add_core_gram(const Vgg19::Activations& acts, int layer, const LayerWindow& core,
                              const float* mask, int mask_height, int mask_width, bool first,
                              float* features_scratch, float* mask_scratch, float* gram_scratch,
                              float* gram_sum) {
    Backend& backend = context_.backend;
    const int n = context_.network.channels(layer);
    const std::size_t entries = std::size_t(n) * n;
    if (first) backend.fill(entries, 0.0f, gram_sum);
    const std::size_t m = std::size_t(core.rows) * core.cols;
    if (m == 0) return;  // the last tiles' cores can vanish at deep layers
    backend.copy_window(window(n, core.rows, core.cols, acts.height(layer), acts.width(layer), core.local_y,
                               core.local_x, core.rows, core.cols, 0, 0),
                        acts.output(layer), features_scratch);
    if (mask) {
        backend.copy_window(window(1, core.rows, core.cols, mask_height, mask_width, core.y, core.x, core.rows,
                                   core.cols, 0, 0),
                            mask, mask_scratch);
        backend.mask_channels(n, m, features_scratch, mask_scratch, features_scratch);
    }
    backend.gram(n, m, features_scratch, gram_scratch);
    backend.axpy(entries, 1.0f, gram_scratch, gram_sum);
}

// ---- targets shared between objectives (a batch of runs in one style) ----

std::string StyleTerm::targets_key(const ObjectiveInputs& inputs) const {
    Hash128 hash;
    hash.value(layers_.size());
    for (const Layer& layer : layers_) hash.value(layer.index);
    const ObjectiveConfig& config = context_.config;
    hash.value(static_cast<int>(config.pool));
    hash.value(config.erode_style_masks);
    hash.value(config.tile.core);
    hash.value(config.tile.grid);
    hash.value(config.tile.halo_forward);
    hash.value(config.tile.halo_backward);
    hash.value(context_.width);
    hash.value(context_.height);
    hash.value(inputs.styles.size());
    for (const Image& style : inputs.styles) {
        hash.value(style.width);
        hash.value(style.height);
        hash.values(style.pixels);
    }
    hash.values(inputs.blend_weights);
    for (const auto* masks : {&inputs.output_masks, &inputs.style_masks}) {
        hash.value(masks->size());
        for (const std::vector<float>& mask : *masks) hash.values(mask);
    }
    return hash.hex();
}

StyleTargets StyleTerm::export_targets() const {
    check_ready();
    Backend& backend = context_.backend;
    const auto host = [&backend](const Buffer& buffer) {
        std::vector<float> copy(buffer.size());
        backend.download(copy.data(), buffer.data(), copy.size());
        return copy;
    };
    StyleTargets targets;
    for (const Layer& layer : layers_) {
        StyleTargets::Layer& out = targets.layers.emplace_back();
        if (layer.regions.empty()) out.target = host(layer.target);
        for (const Region& region : layer.regions)
            out.regions.push_back({host(region.mask), host(region.target), region.size});
    }
    return targets;
}

void StyleTerm::import_targets(const StyleTargets& targets, const ObjectiveInputs& inputs) {
    if (targets.layers.size() != layers_.size()) throw Error("style targets of another objective");
    Backend& backend = context_.backend;
    computed_from_.reset();
    MemoryUseScope use(MemoryUse::loss_targets);
    const auto device = [&backend](const std::vector<float>& host) {
        Buffer buffer(backend, host.size());
        backend.upload(buffer.data(), host.data(), host.size());
        return buffer;
    };
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        Layer& layer = layers_[i];
        const StyleTargets::Layer& in = targets.layers[i];
        layer.regions.clear();
        if (in.regions.empty()) {
            if (in.target.size() != layer.target.size()) throw Error("style targets of another objective");
            backend.upload(layer.target.data(), in.target.data(), in.target.size());
            continue;
        }
        context_.allocate_mask_scratch();
        const std::size_t n = std::size_t(context_.network.channels(layer.index));
        for (const StyleTargets::Region& region : in.regions) {
            Region& made = layer.regions.emplace_back();
            made.mask = device(region.mask);
            made.target = device(region.target);
            made.size = region.size;
            if (context_.tiled()) made.gram = Buffer(backend, n * n);
        }
    }
    has_style_ = true;
    computed_from_ = StyleInputs{inputs.styles, inputs.blend_weights, inputs.output_masks, inputs.style_masks};
}

}  // namespace nst
