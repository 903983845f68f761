// plan_memory (engine/run/memory_plan.h): the engine's allocations, counted without
// making them.
#include "engine/run/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/run/request.h"
#include "engine/objective/tiles.h"
#include "engine/io/vgg19_layers.h"

namespace nst {

namespace {

constexpr std::size_t kFloat = sizeof(float);

// Width and height of `image` resized so its longest side is `longest`
// (resize_longest_side's arithmetic, without the pixels).
std::pair<int, int> resized(int width, int height, int longest) {
    const int current = std::max(width, height);
    if (current == longest) return {width, height};
    const double scale = double(longest) / current;
    const auto side = [&](int length) {
        return length == current ? longest : std::max(1, int(std::lround(length * scale)));
    };
    return {side(width), side(height)};
}

// The network's convolutions and Vgg19::plan's buffers for one input size.
struct NetworkAt {
    std::vector<ConvShape> convolutions;
    std::vector<std::size_t> planes;  // h·w of each conv layer
    std::size_t activation_floats = 0;  // the outputs and the scratch (two where widths shrink)
    std::size_t scratch_floats = 0;     // the scratch (Vgg19::feature_scratch_floats)
    std::size_t first_output_floats = 0;
    int largest_layer = -1;             // the layer of scratch_floats (-1: the image)
};

NetworkAt network_at(const VggWeights& weights, int deepest, int width, int height) {
    NetworkAt net;
    std::size_t largest = 3 * std::size_t(width) * height;
    bool shrinks = false;
    int h = height, w = width;
    for (int l = 0; l <= deepest; ++l) {
        if (h < 1 || w < 1)
            throw InputError("an image of " + std::to_string(width) + "x" + std::to_string(height) +
                             " is too small for layer " + vgg19_layer_names()[l] + " (each pool halves it)");
        const ConvWeights& layer = weights.layers[std::size_t(l)];
        net.convolutions.push_back({layer.in_channels, layer.out_channels, h, w});
        const std::size_t plane = std::size_t(h) * w;
        net.planes.push_back(plane);
        net.activation_floats += std::size_t(layer.out_channels) * plane;
        const std::size_t widest = std::size_t(std::max(layer.in_channels, layer.out_channels)) * plane;
        if (widest > largest) {
            largest = widest;
            net.largest_layer = l;
        }
        shrinks = shrinks || layer.in_channels > layer.out_channels;
        if (vgg19_pool_after(l)) {
            h /= 2;
            w /= 2;
        }
    }
    net.first_output_floats = std::size_t(weights.layers[0].out_channels) * net.planes[0];
    net.activation_floats += (shrinks ? 2 : 1) * largest;
    net.scratch_floats = largest;
    return net;
}

// The tiles of a width × height image for `core` (none when untiled or one tile).
std::vector<Tile> tiles_of(int width, int height, int core, int deepest) {
    if (core <= 0) return {};
    TileSpec spec;
    spec.core = core;
    std::vector<Tile> tiles = tile_layout(width, height, spec, deepest);
    if (tiles.size() <= 1) tiles.clear();
    return tiles;
}

// The backend's weight cache and scratch for the convolutions of every extent
// size the run uses: the cache per layer at its largest (a layer's cached filters
// do not depend on the size), the scratch at its largest.
std::pair<std::size_t, std::size_t> cache_and_scratch(const Backend& backend, const VggWeights& weights,
                                                      int deepest, const std::vector<std::pair<int, int>>& sizes,
                                                      const std::vector<int>& style_channels) {
    std::vector<std::size_t> cache(std::size_t(deepest) + 1, 0);
    std::size_t scratch = 0;
    for (const auto& [w, h] : sizes) {
        const NetworkAt net = network_at(weights, deepest, w, h);
        for (std::size_t l = 0; l < net.convolutions.size(); ++l)
            cache[l] = std::max(cache[l], backend.planned_weight_cache_bytes({net.convolutions[l]}));
        scratch = std::max(scratch, backend.planned_scratch_bytes(net.convolutions, style_channels));
    }
    std::size_t total = 0;
    for (std::size_t bytes : cache) total += bytes;
    return {total, scratch};
}

std::string mebibytes(std::size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / (1 << 20));
    return text;
}

}  // namespace

MemoryPlan plan_memory(const Backend& backend, const VggWeights& weights,
                       const TransferRequest& request) {
    request.validate();
    if (request.tile == TransferRequest::tile_auto) {
        TransferRequest resolved = request;
        resolved.tile = auto_tile(backend, weights, request);
        return plan_memory(backend, weights, resolved);
    }
    const TransferRequest& r = request;
    int deepest = -1;
    std::vector<int> content_layers, style_layers;
    for (const auto& name : r.content_layers) content_layers.push_back(vgg19_layer_index(name));
    for (const auto& name : r.style_layers) style_layers.push_back(vgg19_layer_index(name));
    for (int l : content_layers) deepest = std::max(deepest, l);
    for (int l : style_layers) deepest = std::max(deepest, l);
    if (deepest >= int(weights.layers.size()))
        throw UsageError("the weights stop at " + weights.layers.back().name + ", before " +
                         vgg19_layer_names()[std::size_t(deepest)]);

    std::size_t weight_floats = 0;
    for (int l = 0; l <= deepest; ++l)
        weight_floats += weights.layers[std::size_t(l)].weight.size() + weights.layers[std::size_t(l)].bias.size();
    const bool masks = !r.style_masks.empty();
    const std::size_t regions = masks ? r.styles.size() : 0;

    MemoryPlan plan;
    for (int side : r.sizes()) {
        const auto [width, height] = resized(r.content.width, r.content.height, side);
        // Tiled: the network's activations are those of the largest tile extent;
        // targets and masks stay image-sized.
        const std::vector<Tile> tiles = tiles_of(width, height, r.tile, deepest);
        const auto [extent_width, extent_height] =
            tiles.empty() ? std::pair<int, int>{width, height} : largest_extent(tiles);
        const NetworkAt net = network_at(weights, deepest, extent_width, extent_height);
        const NetworkAt image_net = tiles.empty() ? net : network_at(weights, deepest, width, height);
        const std::size_t n = 3 * std::size_t(width) * height;  // the image-sized vectors
        std::vector<int> style_channels;
        for (int l : style_layers) style_channels.push_back(weights.layers[std::size_t(l)].out_channels);

        // Loss targets (the losses' gradients go straight into the backward pass's).
        std::size_t targets = 0, largest_loss_layer = 1;
        std::set<int> loss_layers;
        for (int l : content_layers) {
            const std::size_t floats = std::size_t(net.convolutions[std::size_t(l)].out_channels) * image_net.planes[std::size_t(l)];
            targets += floats;
            if (r.content_mask.width > 0) targets += image_net.planes[std::size_t(l)];
            loss_layers.insert(l);
        }
        std::size_t region_floats = 0;  // guided: each style's regions, all layers
        for (int l : style_layers) {
            const std::size_t c = std::size_t(net.convolutions[std::size_t(l)].out_channels);
            targets += 2 * c * c;  // A^l and the current G^l
            // mask and target per region (tiled: and the region's G_r)
            if (masks) region_floats += image_net.planes[std::size_t(l)] + (tiles.empty() ? 1 : 2) * c * c;
            loss_layers.insert(l);
        }
        targets += regions * region_floats;
        for (int l : loss_layers)
            largest_loss_layer = std::max(largest_loss_layer, std::size_t(net.convolutions[std::size_t(l)].out_channels) *
                                                                  net.planes[std::size_t(l)]);
        const bool mask_scratch = masks || r.content_mask.width > 0;
        // Tiled without masks: pass 1's crop of one loss layer's core.
        std::size_t core_scratch = 0;
        if (!tiles.empty() && !mask_scratch) {
            int core_width = 1, core_height = 1;
            for (const Tile& t : tiles) {
                core_width = std::max(core_width, t.core.width());
                core_height = std::max(core_height, t.core.height());
            }
            core_scratch = 1;
            for (int l : loss_layers) {
                const std::size_t s = std::size_t(layer_scale(l));
                core_scratch = std::max(core_scratch, std::size_t(net.convolutions[std::size_t(l)].out_channels) *
                                                          ((core_width + s - 1) / s) * ((core_height + s - 1) / s));
            }
        }
        const std::size_t tile_count = std::max<std::size_t>(1, tiles.size());
        const std::size_t scalar_slots =
            3 + content_layers.size() * tile_count + style_layers.size() * std::max<std::size_t>(1, regions);
        // Tiled: the tile's input and image gradient, a content target and a mask
        // cropped to it, one Gram matrix (LossContext's tile_* buffers and the terms' own).
        std::size_t tile_scratch = 0;
        if (!tiles.empty()) {
            std::size_t target = 1, plane = 1, gram = 1;
            for (int l : content_layers)
                target = std::max(target, std::size_t(net.convolutions[std::size_t(l)].out_channels) * net.planes[std::size_t(l)]);
            for (int l : loss_layers) plane = std::max(plane, net.planes[std::size_t(l)]);
            for (int c : style_channels) gram = std::max(gram, std::size_t(c) * c);
            tile_scratch = 2 * 3 * std::size_t(extent_width) * extent_height + target + plane + gram;
        }

        // The optimiser: x, then L-BFGS's grad, prev_grad, prev_x, best_x, d, s and y
        // candidates, 2m history vectors (Wolfe: 3 more), or Adam's 5 vectors. With
        // 16-bit history storage the 2m history vectors and the two candidates are
        // 16-bit (⌈n/2⌉ floats each), plus one fp32 scratch vector in which s and
        // y are formed before packing.
        std::size_t optimiser_vectors = 1, half_vectors = 0;
        std::string optimiser;
        if (r.optimizer == Optimizer::adam) {
            optimiser_vectors += 5;
            optimiser = "Adam: x and 5 image-sized vectors";
        } else {
            const bool wolfe = r.line_search == LineSearch::wolfe;
            const bool half = r.lbfgs_history_precision != HistoryPrecision::fp32;
            const std::size_t history = 2 * std::size_t(r.lbfgs_history);
            optimiser_vectors += 5 + (half ? 1 : 2) + (half ? 0 : history) + (wolfe ? 3 : 0);
            half_vectors = half ? history + 2 : 0;
            optimiser = "L-BFGS: x, " + std::to_string(2 * r.lbfgs_history) +
                        (half ? " history and 2 candidate vectors in " + std::string(r.lbfgs_history_precision.name()) +
                                    ", " + std::to_string(wolfe ? 9 : 6) + " more in fp32"
                              : " history and " + std::to_string(wolfe ? 10 : 7) +
                                    " more image-sized vectors");
        }
        const std::size_t optimiser_floats = optimiser_vectors * n + half_vectors * ((n + 1) / 2);

        ScalePlan scale;
        scale.width = width;
        scale.height = height;
        if (!tiles.empty()) {
            scale.tile_core = tile_core(r.tile, deepest);
            scale.tiles = int(tiles.size());
            scale.extent_width = extent_width;
            scale.extent_height = extent_height;
        }
        // Every input size the network sees in the run: the image, or each tile
        // extent, and each style image (or its tiles') at set-up; the backend's
        // scratch grows to the largest and stays.
        std::vector<std::pair<int, int>> sizes;
        const auto add_size = [&](int w, int h) {
            if (std::find(sizes.begin(), sizes.end(), std::pair<int, int>{w, h}) == sizes.end())
                sizes.push_back({w, h});
        };
        if (tiles.empty()) add_size(width, height);
        for (const Tile& t : tiles)
            for (const PixelRect& e : {t.forward, t.backward}) add_size(e.width(), e.height());
        std::vector<std::pair<int, int>> style_sizes;
        std::vector<std::vector<Tile>> style_tile_sets;
        for (const Image& style : r.styles) {
            const int style_side = std::max(16, int(std::lround(r.style_scale * std::max(width, height))));
            style_sizes.push_back(resized(style.width, style.height, style_side));
            const auto [sw, sh] = style_sizes.back();
            style_tile_sets.push_back(tiles_of(sw, sh, r.tile, deepest));
            if (style_tile_sets.back().empty()) add_size(sw, sh);
            for (const Tile& t : style_tile_sets.back()) add_size(t.forward.width(), t.forward.height());
        }
        const auto [cache, scratch] = cache_and_scratch(backend, weights, deepest, sizes, style_channels);
        for (const auto& [w, h] : sizes) {
            const NetworkAt at = network_at(weights, deepest, w, h);
            if (at.scratch_floats > scale.largest_tensor_elements) {
                scale.largest_tensor_elements = at.scratch_floats;
                scale.largest_tensor_layer =
                    (at.largest_layer < 0 ? std::string("the input") : vgg19_layer_names()[std::size_t(at.largest_layer)]) +
                    " at " + std::to_string(w) + "x" + std::to_string(h);
            }
        }
        scale.items = {
            {"VGG-19 weights up to " + vgg19_layer_names()[std::size_t(deepest)], weight_floats * kFloat},
            {"backend's cache of the weights", cache},
            {"backend's scratch", scratch},
            {"activations and their gradients", net.activation_floats * kFloat},
            {"loss targets", targets * kFloat},
            {"masked-feature scratch", (mask_scratch ? 2 * largest_loss_layer : core_scratch) * kFloat},
            {"tile scratch", tile_scratch * kFloat},
            {optimiser, optimiser_floats * kFloat + 2 * (scalar_slots + 2 * std::size_t(r.lbfgs_history) + 11) * kFloat},
        };
        std::size_t run = 0;
        for (const auto& item : scale.items) run += item.bytes;

        // While the targets are made, each style image and its Gram matrices are
        // held (the optimiser's vectors are not yet), until blended in (guided:
        // until they become the regions' targets; the regions of the styles
        // after it do not exist yet). Untiled, its forward pass ping-pongs in the
        // objective's scratch and first output, or in two buffers of its own when
        // it needs larger ones; with a mask of the style image, one masked layer
        // at a time. Tiled, a style image larger than a tile runs pass 1 over its
        // own tiles: their activations (unless the output's tiles are as large),
        // the tile input and scratch.
        std::size_t largest_style = 0, style_grams = 0;
        for (int c : style_channels) style_grams += std::size_t(c) * c;
        for (std::size_t k = 0; k < r.styles.size(); ++k) {
            const auto [sw, sh] = style_sizes[k];
            std::size_t floats = 3 * std::size_t(sw) * sh + style_grams;
            const std::vector<Tile>& style_tiles = style_tile_sets[k];
            if (style_tiles.empty()) {
                const NetworkAt style_net = network_at(weights, deepest, sw, sh);
                // forward_features borrows the scratch and the first output
                if (style_net.scratch_floats > std::min(net.scratch_floats, net.first_output_floats))
                    floats += 2 * style_net.scratch_floats;
                if (k < r.style_image_masks.size() && r.style_image_masks[k].width > 0) {
                    std::size_t masked = 0;
                    for (int l : style_layers) {
                        const std::size_t plane = style_net.planes[std::size_t(l)];
                        floats += plane;  // the mask at that layer
                        masked = std::max(masked, std::size_t(style_net.convolutions[std::size_t(l)].out_channels) * plane);
                    }
                    floats += masked;
                }
            } else {
                const auto [fw, fh] = largest_forward_extent(style_tiles);
                const NetworkAt style_net = network_at(weights, deepest, fw, fh);
                const bool reuse = !tiles.empty() && fw <= extent_width && fh <= extent_height;
                if (!reuse) floats += style_net.activation_floats;
                std::size_t features = 1, plane = 1, gram = 1;
                for (int l : style_layers) {
                    const std::size_t c = std::size_t(style_net.convolutions[std::size_t(l)].out_channels);
                    features = std::max(features, c * style_net.planes[std::size_t(l)]);
                    plane = std::max(plane, style_net.planes[std::size_t(l)]);
                    gram = std::max(gram, c * c);
                }
                floats += 3 * std::size_t(fw) * fh + features + plane + gram;
            }
            const std::size_t later_regions = masks ? (regions - k) * region_floats : 0;
            largest_style = std::max(largest_style, floats * kFloat - std::min(floats, later_regions) * kFloat);
        }
        scale.setup_bytes = run - scale.items.back().bytes + largest_style;
        scale.peak_bytes = std::max(run, scale.setup_bytes);
        plan.peak_bytes = std::max(plan.peak_bytes, scale.peak_bytes);
        plan.largest_tensor_elements = std::max(plan.largest_tensor_elements, scale.largest_tensor_elements);
        plan.scales.push_back(std::move(scale));
    }
    return plan;
}

std::string format_memory_plan(const MemoryPlan& plan) {
    std::string text;
    for (std::size_t k = 0; k < plan.scales.size(); ++k) {
        const ScalePlan& scale = plan.scales[k];
        text += "scale " + std::to_string(k + 1) + "/" + std::to_string(plan.scales.size()) + ": " +
                std::to_string(scale.width) + "x" + std::to_string(scale.height);
        if (scale.tiles > 0)
            text += ", " + std::to_string(scale.tiles) + " tiles of " + std::to_string(scale.tile_core) +
                    " px (largest with its halo: " + std::to_string(scale.extent_width) + "x" +
                    std::to_string(scale.extent_height) + ")";
        text += "\n";
        for (const auto& item : scale.items)
            text += "  " + mebibytes(item.bytes) + std::string(12 - std::min<std::size_t>(12, mebibytes(item.bytes).size()), ' ') +
                    "  " + item.what + "\n";
        text += "  setting up the targets: " + mebibytes(scale.setup_bytes) +
                "; peak: " + mebibytes(scale.peak_bytes) + "\n";
    }
    text += "peak of the run: " + mebibytes(plan.peak_bytes) + "\n";
    return text;
}

std::size_t memory_budget(const Backend& backend, const TransferRequest& request) {
    const std::size_t available = backend.available_bytes();
    return request.max_memory > 0 && request.max_memory < available ? request.max_memory : available;
}

int auto_tile(const Backend& backend, const VggWeights& weights, const TransferRequest& request) {
    const std::size_t budget = memory_budget(backend, request);
    TransferRequest candidate = request;
    candidate.tile = 0;
    if (plan_memory(backend, weights, candidate).fits(backend, budget)) return 0;
    int deepest = 0;
    for (const auto& name : request.content_layers) deepest = std::max(deepest, vgg19_layer_index(name));
    for (const auto& name : request.style_layers) deepest = std::max(deepest, vgg19_layer_index(name));
    const int grid = pooling_grid(deepest);
    int longest = 0;
    for (int side : request.sizes()) longest = std::max(longest, side);
    // Largest first, one grid step at a time (a plan is arithmetic only).
    for (int core = tile_core(longest, deepest) - grid; core > grid; core -= grid) {
        candidate.tile = core;
        if (plan_memory(backend, weights, candidate).fits(backend, budget)) return core;
    }
    return grid;
}

namespace {

std::string mib_text(std::size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / (1 << 20));
    return text;
}

// A tensor beyond the backend's limit: tiles are the one fix that keeps the
// output as asked (the largest core whose tensors and memory fit, if any).
[[noreturn]] void refuse_tensor(const Backend& backend, const VggWeights& weights, const TransferRequest& request,
                                const MemoryPlan& plan, std::size_t budget) {
    TransferRequest tiled = request;
    tiled.tile = auto_tile(backend, weights, request);
    std::string largest_layer;
    for (const ScalePlan& scale : plan.scales)
        if (scale.largest_tensor_elements == plan.largest_tensor_elements) largest_layer = scale.largest_tensor_layer;
    const bool tiles_fit = plan_memory(backend, weights, tiled).fits(backend, budget);
    throw RuntimeFailure("this run's largest tensor (" + largest_layer + ": " +
                         std::to_string(plan.largest_tensor_elements) + " elements) is more than " +
                         backend.name() + " can index (" + std::to_string(backend.max_tensor_elements()) +
                         "); " +
                         (tiles_fit ? "try --tile " + std::to_string(tiled.tile) + " (or --tile auto)"
                                    : std::string("try a smaller --size")) +
                         " (the table: neural-style --plan)");
}

// The cheapest change of the request that fits `budget`, as options ("--tile 512
// (or --tile auto)"), or "" when only a smaller output would.
std::string cheaper_options(const Backend& backend, const VggWeights& weights, const TransferRequest& request,
                            std::size_t budget) {
    const auto fits = [&](const TransferRequest& candidate) {
        return plan_memory(backend, weights, candidate).fits(backend, budget);
    };
    TransferRequest smaller = request;
    if (request.tile == 0) {
        // Tiles keep the output and the optimiser as asked, at the cost of the halos'
        // extra computation: the largest core that fits, if any.
        smaller.tile = auto_tile(backend, weights, request);
        if (smaller.tile > 0 && fits(smaller)) return "--tile " + std::to_string(smaller.tile) + " (or --tile auto)";
        smaller.tile = request.tile;
    }
    if (request.optimizer != Optimizer::lbfgs) return "";
    // The history is 2m image-sized vectors: first the same m stored in bf16
    // (half the bytes), then the largest m that fits, if any.
    if (request.lbfgs_history_precision == HistoryPrecision::fp32) {
        smaller.lbfgs_history_precision = HistoryPrecision::bf16;
        if (fits(smaller)) return "--lbfgs-history-precision bf16";
        smaller.lbfgs_history_precision = request.lbfgs_history_precision;
    }
    for (int m = request.lbfgs_history - 1; m >= 1; m = m * 9 / 10) {
        smaller.lbfgs_history = m;
        if (fits(smaller)) return "--lbfgs-history " + std::to_string(m);
    }
    return "";
}

// Memory grows with the pixel count: shrink the output (and every scale) in 5 %
// steps of the side until it fits, or the network no longer admits it. Says
// what the smallest output tried needs when none fits.
std::string smaller_output(const Backend& backend, const VggWeights& weights, const TransferRequest& request,
                           std::size_t budget) {
    std::size_t smallest_bytes = 0;
    int smallest_size = 0;
    for (double f = 0.95; f > 0.0; f -= 0.05) {
        TransferRequest smaller = request;
        smaller.size = std::max(16, int(request.size * f));
        smaller.scale_sizes.clear();
        if (request.sizes().size() > 1)
            for (int side : request.sizes()) smaller.scale_sizes.push_back(std::max(16, int(side * f)));
        try {
            if (plan_memory(backend, weights, smaller).peak_bytes <= budget)
                return "try --size " + std::to_string(smaller.size);
            smaller.lbfgs_history = 1;
            smallest_bytes = plan_memory(backend, weights, smaller).peak_bytes;
            smallest_size = smaller.size;
        } catch (const Error&) {
            break;  // too small for the deepest layer, or scales that collapsed onto each other
        }
        if (smaller.size == 16) break;
    }
    if (smallest_size == 0) return "more memory (the output cannot be smaller for these layers)";
    return "more memory: even --size " + std::to_string(smallest_size) + " with --lbfgs-history 1 needs " +
           mib_text(smallest_bytes) + " (the weights and their cache)";
}

}  // namespace

void check_memory_budget(const Backend& backend, const VggWeights& weights,
                         const TransferRequest& request) {
    const std::size_t available = backend.available_bytes();
    const bool capped = request.max_memory > 0 && request.max_memory < available;
    const std::size_t budget = memory_budget(backend, request);
    const MemoryPlan plan = plan_memory(backend, weights, request);
    if (plan.largest_tensor_elements > backend.max_tensor_elements())
        refuse_tensor(backend, weights, request, plan, budget);
    if (plan.peak_bytes <= budget) return;
    std::string fix = cheaper_options(backend, weights, request, budget);
    fix = fix.empty() ? smaller_output(backend, weights, request, budget) : "try " + fix;
    throw OutOfMemory("out of memory before starting: this run needs " + mib_text(plan.peak_bytes) + " of " +
                      backend.name() + " memory but " + mib_text(budget) +
                      (capped ? " are allowed (--max-memory)" : " are free") + "; " + fix +
                      " (the table: neural-style --plan)");
}

}  // namespace nst
