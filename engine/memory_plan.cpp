// plan_memory (engine/memory_plan.h): the engine's allocations, counted without
// making them.
#include "engine/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/vgg19_layers.h"

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
    std::size_t activation_floats = 0;  // preprocessed input, outputs, pooled, 2 gradient buffers
};

NetworkAt network_at(const VggWeights& weights, int deepest, int width, int height) {
    NetworkAt net;
    net.activation_floats = 3 * std::size_t(width) * height;
    std::size_t largest = net.activation_floats;
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
        largest = std::max(largest, std::size_t(std::max(layer.in_channels, layer.out_channels)) * plane);
        if (vgg19_pool_after(l)) {
            net.activation_floats += std::size_t(layer.out_channels) * std::size_t(h / 2) * (w / 2);
            h /= 2;
            w /= 2;
        }
    }
    net.activation_floats += 2 * largest;
    return net;
}

std::string mebibytes(std::size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / (1 << 20));
    return text;
}

}  // namespace

MemoryPlan plan_memory(const Backend& backend, const VggWeights& weights,
                       const TransferRequest& r) {
    r.validate();
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
        const NetworkAt net = network_at(weights, deepest, width, height);
        const std::size_t n = 3 * std::size_t(width) * height;  // the image-sized vectors
        std::vector<int> style_channels;
        for (int l : style_layers) style_channels.push_back(weights.layers[std::size_t(l)].out_channels);

        // Loss targets and the gradient buffers of the loss layers.
        std::size_t targets = 0, layer_grads = 0, largest_loss_layer = 1;
        std::set<int> loss_layers;
        for (int l : content_layers) {
            const std::size_t floats = std::size_t(net.convolutions[std::size_t(l)].out_channels) * net.planes[std::size_t(l)];
            targets += floats;
            if (r.content_mask.width > 0) targets += net.planes[std::size_t(l)];
            loss_layers.insert(l);
        }
        for (int l : style_layers) {
            const std::size_t c = std::size_t(net.convolutions[std::size_t(l)].out_channels);
            targets += 2 * c * c;  // A^l and the current G^l
            if (masks) targets += regions * (net.planes[std::size_t(l)] + c * c);  // mask and target per region
            loss_layers.insert(l);
        }
        for (int l : loss_layers) {
            const std::size_t floats = std::size_t(net.convolutions[std::size_t(l)].out_channels) * net.planes[std::size_t(l)];
            layer_grads += floats;
            largest_loss_layer = std::max(largest_loss_layer, floats);
        }
        const bool mask_scratch = masks || r.content_mask.width > 0;
        const std::size_t scalar_slots = 2 + content_layers.size() + style_layers.size() * std::max<std::size_t>(1, regions);

        // The optimiser: x, then L-BFGS's grad, prev_grad, prev_x, best_x, d, s and y
        // candidates, 2m history vectors (Wolfe: 3 more), or Adam's 5 vectors. With
        // 16-bit history storage the 2m history vectors and the two candidates are
        // 16-bit (⌈n/2⌉ floats each), plus one fp32 scratch vector in which s and
        // y are formed before packing.
        std::size_t optimiser_vectors = 1, half_vectors = 0;
        std::string optimiser;
        if (r.optimizer == "adam") {
            optimiser_vectors += 5;
            optimiser = "Adam: x and 5 image-sized vectors";
        } else {
            const bool wolfe = r.line_search == "wolfe";
            const bool half = r.lbfgs_history_precision != "fp32";
            const std::size_t history = 2 * std::size_t(r.lbfgs_history);
            optimiser_vectors += 5 + (half ? 1 : 2) + (half ? 0 : history) + (wolfe ? 3 : 0);
            half_vectors = half ? history + 2 : 0;
            optimiser = "L-BFGS: x, " + std::to_string(2 * r.lbfgs_history) +
                        (half ? " history and 2 candidate vectors in " + r.lbfgs_history_precision +
                                    ", " + std::to_string(wolfe ? 9 : 6) + " more in fp32"
                              : " history and " + std::to_string(wolfe ? 10 : 7) +
                                    " more image-sized vectors");
        }
        const std::size_t optimiser_floats = optimiser_vectors * n + half_vectors * ((n + 1) / 2);

        ScalePlan scale;
        scale.width = width;
        scale.height = height;
        const std::size_t cache = backend.planned_weight_cache_bytes(net.convolutions);
        const std::size_t scratch = backend.planned_scratch_bytes(net.convolutions, style_channels);
        scale.items = {
            {"VGG-19 weights up to " + vgg19_layer_names()[std::size_t(deepest)], weight_floats * kFloat},
            {"backend's cache of the weights", cache},
            {"backend's scratch", scratch},
            {"activations and their gradients", net.activation_floats * kFloat},
            {"loss targets", targets * kFloat},
            {"gradients at the loss layers", layer_grads * kFloat},
            {"masked-feature scratch", mask_scratch ? 2 * largest_loss_layer * kFloat : 0},
            {optimiser, optimiser_floats * kFloat + 2 * (scalar_slots + 2 * std::size_t(r.lbfgs_history) + 11) * kFloat},
        };
        std::size_t run = 0;
        for (const auto& item : scale.items) run += item.bytes;

        // While the targets are made, each style image's own activations and the
        // uploaded image are held too (the optimiser's vectors are not yet).
        std::size_t largest_style = 0;
        for (const Image& style : r.styles) {
            const int style_side = std::max(16, int(std::lround(r.style_scale * std::max(width, height))));
            const auto [sw, sh] = resized(style.width, style.height, style_side);
            const NetworkAt style_net = network_at(weights, deepest, sw, sh);
            largest_style = std::max(largest_style, (style_net.activation_floats + 3 * std::size_t(sw) * sh) * kFloat);
        }
        scale.setup_bytes = run - scale.items.back().bytes + largest_style;
        scale.peak_bytes = std::max(run, scale.setup_bytes);
        plan.peak_bytes = std::max(plan.peak_bytes, scale.peak_bytes);
        plan.scales.push_back(std::move(scale));
    }
    return plan;
}

std::string format_memory_plan(const MemoryPlan& plan) {
    std::string text;
    for (std::size_t k = 0; k < plan.scales.size(); ++k) {
        const ScalePlan& scale = plan.scales[k];
        text += "scale " + std::to_string(k + 1) + "/" + std::to_string(plan.scales.size()) + ": " +
                std::to_string(scale.width) + "x" + std::to_string(scale.height) + "\n";
        for (const auto& item : scale.items)
            text += "  " + mebibytes(item.bytes) + std::string(12 - std::min<std::size_t>(12, mebibytes(item.bytes).size()), ' ') +
                    "  " + item.what + "\n";
        text += "  setting up the targets: " + mebibytes(scale.setup_bytes) +
                "; peak: " + mebibytes(scale.peak_bytes) + "\n";
    }
    text += "peak of the run: " + mebibytes(plan.peak_bytes) + "\n";
    return text;
}

}  // namespace nst
