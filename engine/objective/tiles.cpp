// Tile geometry (engine/objective/tiles.h, where the derivation is).
#include "engine/objective/tiles.h"

#include <algorithm>

#include "engine/base/error.h"
#include "engine/io/vgg19_layers.h"

namespace nst {

namespace {

int round_up(int value, int step) { return (value + step - 1) / step * step; }

// [begin, end) of one axis in tiles of `core` pixels, the halos clipped to [0, size).
struct Span {
    int core0, core1, forward0, forward1, backward0, backward1;
};

std::vector<Span> spans(int size, int core, int halo_forward, int halo_backward) {
    std::vector<Span> out;
    for (int begin = 0; begin < size; begin += core) {
        const int end = std::min(size, begin + core);
        out.push_back({begin, end, std::max(0, begin - halo_forward), std::min(size, end + halo_forward),
                       std::max(0, begin - halo_backward), std::min(size, end + halo_backward)});
    }
    return out;
}

}  // namespace

int layer_scale(int layer) {
    int scale = 1;
    for (int l = 0; l < layer; ++l)
        if (vgg19_pool_after(l)) scale *= 2;
    return scale;
}

int pooling_grid(int deepest_layer) { return layer_scale(deepest_layer); }

int receptive_radius(int deepest_layer) {
    int band = 0;  // wrong band from an artificial border, in input pixels
    for (int l = 0; l <= deepest_layer; ++l) {
        if (l > 0 && vgg19_pool_after(l - 1)) band = round_up(band, layer_scale(l));
        band += layer_scale(l);
    }
    return band;
}

int backward_spread(int deepest_layer) {
    int spread = 0;
    for (int l = 0; l <= deepest_layer; ++l) spread += layer_scale(l);
    return spread;
}

int forward_halo(int deepest_layer) {
    return round_up(receptive_radius(deepest_layer), pooling_grid(deepest_layer));
}

int backward_halo(int deepest_layer) {
    return round_up(receptive_radius(deepest_layer) + backward_spread(deepest_layer),
                    pooling_grid(deepest_layer));
}

int tile_core(int requested, int deepest_layer) {
    if (requested < 1) throw UsageError("the tile size must be at least 1 px");
    return round_up(requested, pooling_grid(deepest_layer));
}

std::vector<Tile> tile_layout(int width, int height, const TileSpec& spec, int deepest_layer) {
    NST_ASSERT(width >= 1 && height >= 1 && spec.core >= 1);
    const int grid = spec.grid > 0 ? spec.grid : pooling_grid(deepest_layer);
    const int core = round_up(spec.core, grid);
    const int halo_forward = spec.halo_forward >= 0 ? spec.halo_forward : forward_halo(deepest_layer);
    const int halo_backward =
        spec.halo_backward >= 0 ? spec.halo_backward : backward_halo(deepest_layer);
    const std::vector<Span> columns = spans(width, core, halo_forward, halo_backward);
    const std::vector<Span> rows = spans(height, core, halo_forward, halo_backward);
    std::vector<Tile> tiles;
    for (const Span& r : rows)
        for (const Span& c : columns)
            tiles.push_back({{c.core0, r.core0, c.core1, r.core1},
                             {c.forward0, r.forward0, c.forward1, r.forward1},
                             {c.backward0, r.backward0, c.backward1, r.backward1}});
    return tiles;
}

std::pair<int, int> largest_extent(const std::vector<Tile>& tiles) {
    int w = 0, h = 0;
    for (const Tile& t : tiles) {
        w = std::max(w, t.backward.width());
        h = std::max(h, t.backward.height());
    }
    return {w, h};
}

std::pair<int, int> largest_forward_extent(const std::vector<Tile>& tiles) {
    int w = 0, h = 0;
    for (const Tile& t : tiles) {
        w = std::max(w, t.forward.width());
        h = std::max(h, t.forward.height());
    }
    return {w, h};
}

LayerWindow window_at_layer(const PixelRect& rect, const PixelRect& extent, int width, int height,
                            int layer) {
    const int s = layer_scale(layer);
    // One axis: the extent has ⌊length/s⌋ positions (as the network pools it).
    const auto axis = [s](int r0, int r1, int e0, int e1, int size, int& local, int& global,
                          int& count) {
        const int extent_count = (e1 - e0) / s;
        local = std::min(extent_count, (r0 - e0) / s);
        const int local_end = r1 == e1 ? extent_count : std::min(extent_count, (r1 - e0) / s);
        global = e0 / s + local;
        count = std::max(0, std::min(local_end, size / s - e0 / s) - local);
    };
    LayerWindow w;
    axis(rect.x0, rect.x1, extent.x0, extent.x1, width, w.local_x, w.x, w.cols);
    axis(rect.y0, rect.y1, extent.y0, extent.y1, height, w.local_y, w.y, w.rows);
    return w;
}

}  // namespace nst
