// The state the loss terms share, and the tile loop of an evaluation
// (engine/objective/loss_context.h; the tiles' geometry and why a tiled
// evaluation is exact: engine/objective/tiles.h).
#include "engine/objective/loss_context.h"

#include <cmath>
#include <string>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/base/nvtx.h"

namespace nst {

namespace {

// The deepest layer of `config`, its layer names and weights checked (UsageError).
int deepest_of(const ObjectiveConfig& config) {
    int deepest = -1;
    for (const auto* layers : {&config.content_layers, &config.style_layers})
        for (const auto& layer : *layers) {
            deepest = std::max(deepest, vgg19_layer_index(layer.layer));  // throws for an unknown name
            if (!std::isfinite(layer.weight) || layer.weight < 0)
                throw UsageError(std::string(layers == &config.content_layers ? "content" : "style") +
                                 " layer weight for " + layer.layer + " must be a finite number >= 0");
        }
    if (deepest < 0) throw UsageError("no content or style layers given");
    return deepest;
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

LossContext::LossContext(Backend& on, const VggWeights& weights, const ObjectiveConfig& objective,
                         int image_width, int image_height)
    : backend(on), config(objective), width(image_width), height(image_height),
      network(on, weights, deepest_of(objective), objective.pool),
      tiles(output_tiles(objective, image_width, image_height, network.deepest_layer())),
      acts(plan_activations(network, tiles, image_width, image_height)) {
    for (const LossTermField& term : kLossTermFields)
        if (!std::isfinite(config.*term.weight) || config.*term.weight < 0)
            throw UsageError(std::string("the ") + term.name + " weight must be a finite number >= 0");
}

void LossContext::set_loss_layers(const std::vector<bool>& read) {
    loss_layers_.clear();
    for (std::size_t layer = 0; layer < read.size(); ++layer)
        if (read[layer]) loss_layers_.push_back(int(layer));
    if (!tiled()) return;
    const std::size_t input = 3 * acts.planned_plane(0);
    std::size_t plane = 1;
    for (int layer : loss_layers_) plane = std::max(plane, acts.planned_plane(layer));
    {
        MemoryUseScope use(MemoryUse::tiles);
        tile_input = Buffer(backend, input);
        tile_grad = Buffer(backend, input);
        tile_mask = Buffer(backend, plane);
    }
    // Pass 1 crops each loss layer's core into masked_features: the core's size
    // is enough until masks need the whole extent (allocate_mask_scratch).
    int core_width = 1, core_height = 1;
    for (const Tile& t : tiles) {
        core_width = std::max(core_width, t.core.width());
        core_height = std::max(core_height, t.core.height());
    }
    std::size_t core_floats = 1;
    for (int layer : loss_layers_) {
        const int s = layer_scale(layer);
        core_floats = std::max(core_floats, network.channels(layer) * std::size_t((core_width + s - 1) / s) *
                                                std::size_t((core_height + s - 1) / s));
    }
    MemoryUseScope use(MemoryUse::masked_features);
    masked_features = Buffer(backend, core_floats);
}

void LossContext::allocate_mask_scratch() {
    if (!masked_grad.empty()) return;
    std::size_t largest = 0;
    for (int layer : loss_layers_)
        largest = std::max(largest, network.channels(layer) * acts.planned_plane(layer));
    largest = std::max<std::size_t>(largest, 1);
    MemoryUseScope use(MemoryUse::masked_features);
    if (masked_features.size() < largest) masked_features = Buffer(backend, largest);
    masked_grad = Buffer(backend, largest);
}

std::size_t LossContext::held_bytes() const {
    std::size_t bytes = 2 * slots.size() * sizeof(float);  // a double is two floats' room
    for (const Buffer* b : {&tile_input, &tile_grad, &tile_mask, &masked_features, &masked_grad})
        bytes += bytes_of(*b);
    return bytes;
}

void LossContext::forward_rect(const float* x, const PixelRect& rect) {
    network.fit(acts, rect.height(), rect.width());
    backend.copy_window(window(3, rect.height(), rect.width(), height, width, rect.y0, rect.x0,
                               rect.height(), rect.width(), 0, 0),
                        x, tile_input.data());
    network.forward(tile_input.data(), acts);
}

void LossContext::for_each_tile(const float* image, Pass pass,
                                const std::function<void(const TileView&)>& visit) {
    if (!tiled()) {
        const PixelRect all{0, 0, width, height};
        const Tile whole{all, all, all};
        network.forward(image, acts);
        visit(TileView{0, whole, whole.core, true, acts});
        return;
    }
    for (std::size_t t = 0; t < tiles.size(); ++t) {
        NVTX_RANGE(pass == Pass::forward ? "tile pass 1" : "tile pass 2");
        const PixelRect& extent = pass == Pass::forward ? tiles[t].forward : tiles[t].backward;
        forward_rect(image, extent);
        visit(TileView{t, tiles[t], extent, false, acts});
    }
}

const float* LossContext::crop_to_extent(const TileView& view, int layer, int channels,
                                         const float* data, float* dst) {
    if (view.whole) return data;
    const LayerWindow extent = window_at_layer(view.extent, view.extent, width, height, layer);
    NST_ASSERT(std::size_t(extent.rows) * extent.cols == view.acts.plane(layer));
    backend.copy_window(window(channels, extent.rows, extent.cols, full_height(layer), full_width(layer),
                               extent.y, extent.x, extent.rows, extent.cols, 0, 0),
                        data, dst);
    return dst;
}

}  // namespace nst
