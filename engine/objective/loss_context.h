// What the loss terms of the objective share (DESIGN.md, "The objective" and
// "Tiling"): the network, the output's size and tiles, the activations an
// evaluation runs in, the scratch that one term uses at a time, and the scalar
// slots of one evaluation. StyleTransferObjective owns one; each term
// (engine/objective/loss_term.h) holds a reference to it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/objective/objective.h"
#include "engine/objective/tiles.h"
#include "engine/network/vgg19.h"

namespace nst {

// One tile's activations, as the terms see them. Untiled, the one tile covers
// the image (core = forward = backward = the image) and is `whole`: what a tiled
// evaluation sums over the cores in pass 1 (G^l, the content value) is then
// taken in pass 2 from the same activations, and there is no pass 1.
struct TileView {
    std::size_t index;        // t, from 0
    const Tile& tile;
    const PixelRect& extent;  // what acts holds: tile.forward (pass 1) or tile.backward (pass 2)
    bool whole;
    Vgg19::Activations& acts;
};

struct LossContext {
    // Validates the layers and weights of `config` (UsageError), builds the
    // network up to its deepest layer, lays out the tiles and plans the
    // activations (for the image, or for the largest tile extent).
    LossContext(Backend& on, const VggWeights& weights, const ObjectiveConfig& objective,
                int image_width, int image_height);

    Backend& backend;
    const ObjectiveConfig config;
    const int width, height;
    const Vgg19 network;
    const std::vector<Tile> tiles;  // empty: untiled (no tiling asked, or one tile covers the image)
    Vgg19::Activations acts;        // the image's, or the largest tile extent's

    // Scratch, allocated at set-up (an evaluation never allocates). Tiled only:
    // the tile's input and image gradient (3, h, w), a mask cropped to a tile
    // (the largest loss layer's plane). With masks: F ⊙ m and ∂L/∂(F ⊙ m) of the
    // largest loss layer; tiled, masked_features is also pass 1's crop of a core.
    Buffer tile_input, tile_grad, tile_mask;
    Buffer masked_features, masked_grad;

    // The scalars of one evaluation in backend memory, read in one wait: the
    // gradient's non-finite count, a slot for values not needed (a tile's
    // second copy of a value), then each term's (LossTerm::slot_count()).
    static constexpr std::size_t kNonFiniteSlot = 0, kDiscardSlot = 1, kFirstTermSlot = 2;
    ScalarBuffer slots;
    double* discard_slot() { return slots.slot(kDiscardSlot); }

    bool tiled() const { return !tiles.empty(); }
    std::size_t tile_count() const { return std::max<std::size_t>(1, tiles.size()); }
    // A layer's size for the whole image.
    int full_height(int layer) const { return height / layer_scale(layer); }
    int full_width(int layer) const { return width / layer_scale(layer); }
    std::size_t full_plane(int layer) const { return std::size_t(full_height(layer)) * full_width(layer); }

    // The layers the terms read (read[l]: layers_read(), loss_term.h) and, tiled,
    // the scratch sized for them: the tile's input and gradient, a mask crop, a
    // core's features.
    void set_loss_layers(const std::vector<bool>& read);
    const std::vector<int>& loss_layers() const { return loss_layers_; }
    // The masked-feature scratch (once; with a content mask or style masks).
    void allocate_mask_scratch();
    // Bytes of the scratch and slots above (not the network's, nor acts').
    std::size_t held_bytes() const;

    enum class Pass { forward, backward };  // pass 1 (tile.forward), pass 2 (tile.backward)
    // Runs the network on `image` (3, H, W) in backend memory tile by tile, on
    // each tile's extent of `pass`, and visits each tile's activations; untiled,
    // one forward pass of the whole image and one visit.
    void for_each_tile(const float* image, Pass pass, const std::function<void(const TileView&)>& visit);
    // `data` ((channels, h_l, w_l) at `layer`, the whole image's) over the view's
    // extent: `data` itself when the view is whole, else cropped into dst.
    const float* crop_to_extent(const TileView& view, int layer, int channels, const float* data,
                                float* dst);

private:
    // Crops rect of x (3, H, W) into tile_input and runs the network on it (acts fitted).
    void forward_rect(const float* x, const PixelRect& rect);
    std::vector<int> loss_layers_;
};

// The bytes of a buffer of floats.
inline std::size_t bytes_of(const Buffer& buffer) { return buffer.size() * sizeof(float); }

// A rows × cols window of `channels` planes from src (src_height, src_width) at
// (src_y, src_x) to dst (dst_height, dst_width) at (dst_y, dst_x).
WindowCopy window(int channels, int rows, int cols, int src_height, int src_width, int src_y,
                  int src_x, int dst_height, int dst_width, int dst_y, int dst_x);

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

}  // namespace nst
