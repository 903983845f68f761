// VGG-19 forward and backward (w.r.t. the input image only) on a backend.
//
// Forward, for each conv layer l up to the deepest in use:
//   out_l = ReLU(conv3x3(in_l, W_l) + b_l),  in_0 = p(x),
//   in_{l+1} = pool(out_l) after conv1_2, conv2_2, conv3_4, conv4_4, else out_l.
// Backward, from the deepest layer down, with g = ∂L/∂out_l (losses add theirs):
//   g ← g ⊙ [out_l > 0];  ∂L/∂in_l = conv3x3_backward_data(g, W_l);
//   through a pool: ∂L/∂out_{l−1} = pool_backward(∂L/∂in_l);  finally ∂L/∂x += pᵀ(∂L/∂p(x)).
// Memory: the outputs out_l, kept for the backward pass's ReLU masks (and max
// pooling, and the losses), and one scratch buffer of the largest layer. The
// forward pass puts p(x) and each pool's output there, each read only by the
// next convolution. The backward pass writes ∂L/∂in_l into out_l, free once its
// mask is applied (C_in ≤ C_out: VGG-19's widths never shrink), and a pool's
// gradient into the scratch; so it needs no buffers of its own. Widths that
// shrink somewhere (test networks) get a second scratch for the layers whose
// input gradient does not fit their output.
#include "engine/network/vgg19.h"

#include <algorithm>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/base/nvtx.h"

namespace nst {

namespace {

// Throws InputError when layer l's plane h × w, of an input (`what`) of
// width × height, is empty: the pools before it halved it away.
void require_plane(const char* what, int width, int height, int l, int h, int w) {
    if (h < 1 || w < 1)
        throw InputError(std::string(what) + " of " + std::to_string(width) + "x" +
                         std::to_string(height) + " is too small for layer " +
                         vgg19_layer_names()[l] + " (each pool halves it)");
}

}  // namespace

Vgg19::Vgg19(Backend& backend, const VggWeights& weights, int deepest_layer, PoolMode pool)
    : backend_(backend), preprocessing_(weights.preprocessing), pool_(pool),
      deepest_layer_(deepest_layer) {
    const auto& names = vgg19_layer_names();
    NST_ASSERT(deepest_layer >= 0 && deepest_layer < int(names.size()));
    if (int(weights.layers.size()) <= deepest_layer)
        throw InputError("the weights stop at " + weights.layers.back().name + " but layer " +
                         names[deepest_layer] + " is used");
    layers_.reserve(deepest_layer + 1);
    MemoryUseScope use(MemoryUse::weights);
    for (int l = 0; l <= deepest_layer; ++l) {
        const ConvWeights& source = weights.layers[l];
        Layer layer;
        layer.shape.in_channels = source.in_channels;
        layer.shape.out_channels = source.out_channels;
        layer.weight = Buffer(backend, source.weight.size());
        backend.upload(layer.weight.data(), source.weight.data(), source.weight.size());
        layer.bias = Buffer(backend, source.bias.size());
        backend.upload(layer.bias.data(), source.bias.data(), source.bias.size());
        layer.pool_after = vgg19_pool_after(l) && l < deepest_layer;
        layer.forward_range = source.name + " forward";
        layer.backward_range = source.name + " backward";
        layers_.push_back(std::move(layer));
    }
}

int Vgg19::layer_of_weight(const float* weight) const {
    for (std::size_t l = 0; l < layers_.size(); ++l)
        if (layers_[l].weight.data() == weight) return int(l);
    return -1;
}

Vgg19::Activations Vgg19::plan(int height, int width) const {
    NST_ASSERT(height >= 1 && width >= 1);
    Activations acts;
    acts.input_height_ = height;
    acts.input_width_ = width;
    MemoryUseScope use(MemoryUse::activations);
    const std::size_t scratch = feature_scratch_floats(height, width);  // checks the size
    int h = height, w = width;
    bool shrinks = false;
    for (int l = 0; l <= deepest_layer_; ++l) {
        const Layer& layer = layers_[l];
        acts.heights_.push_back(h);
        acts.widths_.push_back(w);
        acts.outputs_.emplace_back(backend_, layer.shape.out_channels * std::size_t(h) * w);
        shrinks = shrinks || layer.shape.in_channels > layer.shape.out_channels;
        if (layer.pool_after) {
            h /= 2;
            w /= 2;
        }
    }
    acts.scratch_ = Buffer(backend_, scratch);
    if (shrinks) acts.scratch2_ = Buffer(backend_, scratch);
    acts.planned_heights_ = acts.heights_;
    acts.planned_widths_ = acts.widths_;
    return acts;
}

void Vgg19::fit(Activations& acts, int height, int width) const {
    NST_ASSERT(height >= 1 && width >= 1 && !acts.planned_heights_.empty() &&
               height <= acts.planned_heights_[0] && width <= acts.planned_widths_[0]);
    acts.input_height_ = height;
    acts.input_width_ = width;
    int h = height, w = width;
    for (int l = 0; l <= deepest_layer_; ++l) {
        require_plane("a tile", width, height, l, h, w);
        acts.heights_[l] = h;
        acts.widths_[l] = w;
        if (layers_[l].pool_after) {
            h /= 2;
            w /= 2;
        }
    }
}

template <typename Output, typename Pooled>
void Vgg19::run_layers(const float* input, int height, int width, Output output, Pooled pooled,
                       const FeatureVisitor* visit) const {
    int h = height, w = width;
    for (int l = 0; l <= deepest_layer_; ++l) {
        const Layer& layer = layers_[l];
        NVTX_RANGE(layer.forward_range.c_str());
        ConvShape shape = layer.shape;
        shape.height = h;
        shape.width = w;
        float* out = output(l, input);
        backend_.conv3x3_forward(shape, input, layer.weight.data(), out);
        backend_.bias_relu_forward(shape.out_channels, std::size_t(h) * w, layer.bias.data(), out);
        if (visit) (*visit)(l, out, h, w);
        input = out;
        if (layer.pool_after) {
            float* pool_out = pooled(l, out);
            backend_.pool_forward(pool_, shape.out_channels, h, w, out, pool_out);
            input = pool_out;
            h /= 2;
            w /= 2;
        }
    }
}

void Vgg19::forward(const float* image, Activations& acts) const {
    float* scratch = acts.scratch_.data();
    {
        NVTX_RANGE("preprocess");
        backend_.preprocess(preprocessing_, std::size_t(acts.input_height_) * acts.input_width_, image,
                            scratch);
    }
    run_layers(
        scratch, acts.input_height_, acts.input_width_,
        [&](int l, const float*) { return acts.outputs_[l].data(); },
        [&](int, const float*) { return scratch; }, nullptr);
}

std::size_t Vgg19::feature_scratch_floats(int height, int width) const {
    NST_ASSERT(height >= 1 && width >= 1);
    std::size_t largest = 3 * std::size_t(height) * width;
    int h = height, w = width;
    for (int l = 0; l <= deepest_layer_; ++l) {
        require_plane("an image", width, height, l, h, w);
        const ConvShape& shape = layers_[l].shape;
        largest = std::max(largest, std::size_t(std::max(shape.out_channels, shape.in_channels)) *
                                        std::size_t(h) * w);
        if (layers_[l].pool_after) {
            h /= 2;
            w /= 2;
        }
    }
    return largest;
}

void Vgg19::forward_features(const float* image, int height, int width, Activations& spare,
                             const FeatureVisitor& visit) const {
    const std::size_t floats = feature_scratch_floats(height, width);
    Buffer own_a, own_b;
    float* a = spare.scratch_.data();
    float* b = spare.outputs_[0].data();
    if (spare.scratch_.size() < floats || spare.outputs_[0].size() < floats) {
        own_a = Buffer(backend_, floats);
        own_b = Buffer(backend_, floats);
        a = own_a.data();
        b = own_b.data();
    }
    // Each op reads one buffer and writes the other.
    const auto other = [a, b](const float* p) { return p == a ? b : a; };
    backend_.preprocess(preprocessing_, std::size_t(height) * width, image, a);
    run_layers(
        a, height, width, [&](int, const float* input) { return other(input); },
        [&](int, const float* out) { return other(out); }, &visit);
}

void Vgg19::backward(Activations& acts, const std::vector<bool>& has_loss,
                     const LossGradient& add_loss_gradient, float* image_grad) const {
    NST_ASSERT(int(has_loss.size()) > deepest_layer_);
    // `grad` holds ∂L/∂out_l, in the scratch or in an output already used.
    // One live gradient at a time: a scratch that does not hold it is free.
    float* grad = nullptr;
    const auto free_scratch = [&] {
        if (grad != acts.scratch_.data()) return acts.scratch_.data();
        NST_ASSERT(!acts.scratch2_.empty());
        return acts.scratch2_.data();
    };
    for (int l = deepest_layer_; l >= 0; --l) {
        const Layer& layer = layers_[l];
        const std::size_t count = layer.shape.out_channels * acts.plane(l);
        if (has_loss[l]) {
            if (!grad) {
                grad = acts.scratch_.data();
                backend_.fill(count, 0.0f, grad);
            }
            add_loss_gradient(l, grad);
        }
        if (!grad) continue;  // no loss at or above this layer
        NVTX_RANGE(layer.backward_range.c_str());
        backend_.relu_backward(count, acts.output(l), grad);
        ConvShape shape = layer.shape;
        shape.height = acts.heights_[l];
        shape.width = acts.widths_[l];
        // out_l's values are no longer needed: it receives ∂L/∂in_l where it fits.
        float* input_grad = layer.shape.in_channels <= layer.shape.out_channels ? acts.output(l)
                                                                                 : free_scratch();
        backend_.conv3x3_backward_data(shape, grad, layer.weight.data(), input_grad);
        grad = input_grad;
        if (l == 0) {
            const std::size_t plane = std::size_t(acts.input_height_) * acts.input_width_;
            backend_.preprocess_backward(preprocessing_, plane, grad, image_grad);
            return;
        }
        const Layer& below = layers_[l - 1];
        if (below.pool_after) {
            float* unpooled = free_scratch();
            backend_.pool_backward(pool_, below.shape.out_channels, acts.heights_[l - 1],
                                   acts.widths_[l - 1], acts.output(l - 1), grad, unpooled);
            grad = unpooled;
        }
    }
    // No loss anywhere: the image gradient gets nothing from the network.
}

}  // namespace nst
