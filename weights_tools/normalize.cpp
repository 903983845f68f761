// Gatys' normalisation of VGG-19 (Gatys, Ecker, Bethge 2016, section 2: "We
// normalized the network by scaling the weights such that the mean activation of
// each convolutional filter over images and positions is equal to one").
//
// For layer l with weights W_l (C_out, C_in, 3, 3), bias b_l and post-ReLU
// output F_l, let s_{l,o} be the mean of F_l[o] over all images and positions
// (s = 1 for a dead filter, whose mean is 0, and for the three colour inputs of
// conv1_1). The normalised network is
//   W'_l[o, i] = W_l[o, i] · s_{l−1,i} / s_{l,o},    b'_l[o] = b_l[o] / s_{l,o}.
// By induction F'_l = F_l / s_l per channel: conv is linear, the bias is divided
// by the same s_{l,o}, ReLU(z / s) = ReLU(z) / s for s > 0, and both poolings
// commute with a positive per-channel scale (zero padding stays zero). So F'_l
// has mean exactly 1 per live filter, and everything downstream is unchanged.
//
// The same identity means the layer-by-layer procedure (normalise conv1_1, run
// the network again, measure conv1_2, ...) measures, at each layer, exactly the
// means of the original network: normalising earlier layers does not change
// F_l. We therefore measure all layers in one forward pass per image with the
// original weights, apply all scales at once (in double precision, rounded once
// to float), then run a second pass with the new weights to confirm that every
// live filter's mean is 1 (reported as max_deviation).
#include <algorithm>
#include <cmath>

#include "engine/base/error.h"
#include "engine/network/vgg19.h"
#include "weights_tools/tools.h"

namespace nst::weights_tools {

namespace {

// means[l][c]: mean of F_l[c] over every image and position (positions of
// different images counted alike, so larger images weigh more).
std::vector<std::vector<double>> mean_activations(const VggWeights& weights,
                                                  const std::vector<Image>& images,
                                                  PoolMode pool, Backend& backend) {
    const int layer_count = static_cast<int>(weights.layers.size());
    const Vgg19 network(backend, weights, layer_count - 1, pool);
    std::vector<std::vector<double>> sums(layer_count);
    std::vector<double> positions(layer_count, 0.0);
    for (int l = 0; l < layer_count; ++l) sums[l].assign(weights.layers[l].out_channels, 0.0);

    Vgg19::Activations acts;
    int planned_height = -1, planned_width = -1;
    Buffer input;
    std::vector<float> host;  // one layer's output (C, h, w)
    for (const Image& image : images) {
        if (image.height != planned_height || image.width != planned_width) {
            acts = network.plan(image.height, image.width);
            input = Buffer(backend, image.pixels.size());
            planned_height = image.height;
            planned_width = image.width;
        }
        backend.upload(input.data(), image.pixels.data(), image.pixels.size());
        network.forward(input.data(), acts);
        // One download per layer, summed on the host in double: far cheaper than
        // a reduction call per channel (thousands of tiny parallel regions or
        // kernel launches per image), and the copy is small next to the convolutions.
        for (int l = 0; l < layer_count; ++l) {
            const std::size_t plane = acts.plane(l);
            const int channels = weights.layers[l].out_channels;
            host.resize(std::size_t(channels) * plane);
            backend.download(host.data(), acts.output(l), host.size());
            for (int c = 0; c < channels; ++c) {
                const float* values = host.data() + std::size_t(c) * plane;
                double sum = 0.0;
                for (std::size_t i = 0; i < plane; ++i) sum += values[i];
                sums[l][c] += sum;
            }
            positions[l] += static_cast<double>(plane);
        }
    }
    for (int l = 0; l < layer_count; ++l)
        for (double& sum : sums[l]) sum /= positions[l];
    return sums;
}

}  // namespace

VggWeights normalize(const VggWeights& weights, const std::vector<Image>& images, PoolMode pool,
                     Backend& backend, std::vector<LayerScales>& report) {
    if (images.empty()) throw UsageError("normalisation needs at least one image");
    const std::vector<std::vector<double>> means =
        mean_activations(weights, images, pool, backend);

    VggWeights normalized = weights;
    report.clear();
    std::vector<double> input_scales(3, 1.0);  // s_{l−1}: none for the colour channels
    for (std::size_t l = 0; l < weights.layers.size(); ++l) {
        const ConvWeights& layer = weights.layers[l];
        ConvWeights& out = normalized.layers[l];
        LayerScales entry;
        entry.name = layer.name;
        entry.scales.resize(layer.out_channels);
        for (int o = 0; o < layer.out_channels; ++o) {
            const double mean = means[l][o];
            // A filter that never fires keeps its weights: there is nothing to measure.
            const bool dead = !(mean > 0.0);
            entry.dead_filters += dead;
            entry.scales[o] = dead ? 1.0 : mean;
        }
        for (int o = 0; o < layer.out_channels; ++o) {
            const double out_scale = entry.scales[o];
            for (int i = 0; i < layer.in_channels; ++i) {
                const double factor = input_scales[i] / out_scale;
                for (std::size_t k = 0; k < 9; ++k) {
                    const std::size_t at = (std::size_t(o) * layer.in_channels + i) * 9 + k;
                    out.weight[at] = static_cast<float>(double(layer.weight[at]) * factor);
                }
            }
            out.bias[o] = static_cast<float>(double(layer.bias[o]) / out_scale);
        }
        input_scales = entry.scales;
        report.push_back(std::move(entry));
    }

    // Confirm on the same images: every live filter's mean should now be 1.
    const std::vector<std::vector<double>> after =
        mean_activations(normalized, images, pool, backend);
    for (std::size_t l = 0; l < report.size(); ++l) {
        double worst = 0.0;
        for (std::size_t o = 0; o < after[l].size(); ++o)
            if (means[l][o] > 0.0) worst = std::max(worst, std::fabs(after[l][o] - 1.0));
        report[l].max_deviation = worst;
    }
    return normalized;
}

}  // namespace nst::weights_tools
