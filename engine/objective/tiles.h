// Tiled evaluation of the objective: the geometry of the tiles, and why the
// tiled loss and gradient equal the untiled ones (queue_loss_terms() in
// engine/objective/loss_term.cpp runs it, each term's part in its own unit).
//
// Why it can be tiled. G^l = F^l F^lᵀ = Σ_tiles F^l_core F^l_coreᵀ is a sum over
// positions; L_c is a sum over positions; and given G^l, every gradient is local:
//   ∂E_l/∂F^l = (G^l − A^l) F^l / (N_l² M_l²),   ∂L_c/∂F^l = F^l − P^l.
// So one evaluation is two passes over tiles that partition the image:
//   pass 1: forward each tile's "forward extent"; add the Gram matrix of each
//     style layer over the tile's core positions at that layer (and the content
//     loss over the core);
//   pass 2: forward each tile's "backward extent"; seed every loss layer with its
//     gradient over the whole extent, using the global G^l − A^l (and P^l cropped
//     to the extent); run backward; keep ∂L/∂x only on the tile's core.
//
// Exactness. Write s_l = 2^(pools before layer l) (input pixels per position at
// layer l), P the pools before the deepest layer L, and g = 2^P (the pooling
// grid). Tile borders that are not image edges ("artificial" borders) sit on
// multiples of g; halos are multiples of g, so an extent's artificial borders do
// too. Then every 2×2 pool of a tile pairs the same positions as the untiled pool
// (the extent's origin is even at every level), and an extent that ends at the
// image's right or bottom edge has ⌊(W − x0)/s_l⌋ = ⌊W/s_l⌋ − x0/s_l positions,
// dropping the same trailing odd row or column as the untiled network.
//
// Forward: a value is wrong only if its dependence reaches the zero padding at
// an artificial border. Count the wrong band, in input pixels from that border,
// through the layers: a 3×3 convolution at scale s widens it by s; a pool from s
// to 2s rounds it up to a multiple of 2s (a window with one wrong input is
// wrong). The band after layer L is the receptive radius
//   r_L:  conv1_1 1, conv1_2 2, pool 2, conv2_x 6, pool 8, conv3_1 12, … conv3_4 24,
//         pool 24, conv4_x 32…56, pool 64, conv5_1 80, … conv5_4 128.
// r_l grows with l, so a forward halo ≥ r_L (rounded up to g) makes every layer's
// values on the core exact: pass 1 is exact.
//
// Backward: the tile's ∂L/∂F^l is wrong within r_l of an artificial border (its
// features are) and misses the positions beyond it. Going down, a wrong band of
// ∂L/∂out grows by s at each 3×3 convolution (conv backward-data reaches one
// position further) and keeps its width through a pool (each pooled position
// sends its gradient to its own 2×2 window; with max pooling the argmax is exact
// outside r_l ≤ the band); ReLU masks are exact outside r_l ≤ the band too. So
// ∂L/∂x is wrong within
//   r_L + b_L,  b_L = Σ_{convs l ≤ L} s_l   (conv5_1: 80 + 70 = 150 ≤ 2 r_L = 160)
// of an artificial border, and a backward halo ≥ r_L + b_L (rounded up to g) makes
// the core of ∂L/∂x exact. At image edges nothing is clipped: the extent meets the
// same zero padding as the untiled network.
//
// What remains is float rounding: the Gram matrices are summed tile by tile (a
// different order), and the style gradient's normaliser is applied as
// weight · m_t²/M² with the kernel's 1/m_t² (m_t the extent's plane, M the
// image's). tests/test_tiles.cpp measures the difference and shows a halo one
// grid step short, or a misaligned grid, breaks it.
#pragma once

#include <utility>
#include <vector>

namespace nst {

// How to tile (ObjectiveConfig::tile). core = 0: untiled. The overrides exist
// for the tests that show the exact values are needed; leave them at 0 / −1.
struct TileSpec {
    int core = 0;            // core side in input pixels, rounded up to the pooling grid
    int grid = 0;            // 0: the pooling grid 2^P of the deepest layer
    int halo_forward = -1;   // −1: forward_halo(deepest)
    int halo_backward = -1;  // −1: backward_halo(deepest)
};

// [x0, x1) × [y0, y1) in input pixels.
struct PixelRect {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    int width() const { return x1 - x0; }
    int height() const { return y1 - y0; }
};

struct Tile {
    PixelRect core;      // the tiles' cores partition the image
    PixelRect forward;   // core + forward halo, clipped to the image (pass 1)
    PixelRect backward;  // core + backward halo, clipped to the image (pass 2)
};

int layer_scale(int layer);            // s_l = 2^(pools before layer l)
int pooling_grid(int deepest_layer);   // g = s_L
int receptive_radius(int deepest_layer);  // r_L (derivation above)
int backward_spread(int deepest_layer);   // b_L = Σ_{l ≤ L} s_l
int forward_halo(int deepest_layer);   // r_L rounded up to g
int backward_halo(int deepest_layer);  // r_L + b_L rounded up to g
// A requested core size rounded up to the pooling grid.
int tile_core(int requested, int deepest_layer);

// The tiles of a width × height image, row-major: cores of tile_core(spec.core)
// pixels from the top-left, the last row and column of tiles reaching the
// image's edge (smaller cores). One tile when the core covers the image.
std::vector<Tile> tile_layout(int width, int height, const TileSpec& spec, int deepest_layer);
// The largest backward (pass 2) extent, {width, height}, each taken separately.
std::pair<int, int> largest_extent(const std::vector<Tile>& tiles);
// The largest forward (pass 1) extent, {width, height}.
std::pair<int, int> largest_forward_extent(const std::vector<Tile>& tiles);

// `rect` (inside `extent`) at layer l, for an image of width × height: where it
// lies in the extent's own activations (local_x, local_y) and in the whole
// image's (x, y), and its size in positions. A rect ending at the image's edge
// ends at the layer's edge (⌊W/s_l⌋).
struct LayerWindow {
    int local_x = 0, local_y = 0;
    int x = 0, y = 0;
    int cols = 0, rows = 0;
};
LayerWindow window_at_layer(const PixelRect& rect, const PixelRect& extent, int width, int height,
                            int layer);

}  // namespace nst
