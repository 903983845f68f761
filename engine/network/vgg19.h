// VGG-19's convolutional part on a backend: 16 conv 3×3 + bias + ReLU layers and
// 4 2×2 pools, run only up to the deepest layer in use. Weights are uploaded
// once; activations for one image size are planned and allocated once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/io/weights.h"

namespace nst {

class Vgg19 {
public:
    // Uploads layers 0..deepest_layer of `weights` (throws InputError if the
    // file stops earlier).
    Vgg19(Backend& backend, const VggWeights& weights, int deepest_layer, PoolMode pool);

    int deepest_layer() const { return deepest_layer_; }
    // The layer whose filters are `weight` (a buffer of this network), else -1.
    int layer_of_weight(const float* weight) const;
    const Preprocessing& preprocessing() const { return preprocessing_; }
    int channels(int layer) const { return layers_[layer].shape.out_channels; }
    PoolMode pool_mode() const { return pool_; }

    // Activations of every layer for one input size (allocated once).
    class Activations {
    public:
        int height(int layer) const { return heights_[layer]; }
        int width(int layer) const { return widths_[layer]; }
        std::size_t plane(int layer) const { return std::size_t(heights_[layer]) * widths_[layer]; }
        const float* output(int layer) const { return outputs_[layer].data(); }  // post-ReLU (C, h, w)
        float* output(int layer) { return outputs_[layer].data(); }
        int input_height() const { return input_height_; }
        int input_width() const { return input_width_; }
        int planned_height(int layer) const { return planned_heights_[layer]; }
        int planned_width(int layer) const { return planned_widths_[layer]; }
        // The plane of `layer` at the planned (largest) input size.
        std::size_t planned_plane(int layer) const {
            return std::size_t(planned_heights_[layer]) * planned_widths_[layer];
        }

        // The scratch of the passes (the largest layer's size), free for other
        // use outside forward(), backward() and forward_features().
        float* scratch() { return scratch_.data(); }

    private:
        friend class Vgg19;
        int input_height_ = 0, input_width_ = 0;
        std::vector<Buffer> outputs_;       // post-ReLU conv outputs
        std::vector<int> heights_, widths_; // spatial size of each conv layer
        std::vector<int> planned_heights_, planned_widths_;  // at plan(): the buffers' capacity
        // Forward: p(x), then each pool's output, until the next layer reads it.
        // Backward: the gradient where no freed output holds it (engine/network/vgg19.cpp).
        Buffer scratch_;
        Buffer scratch2_;  // only for widths that shrink somewhere (not VGG-19's)
    };

    Activations plan(int height, int width) const;
    // Re-uses activations planned for a larger input for a height × width one
    // (a tile, engine/objective/tiles.h): both sides at most the planned ones, so every
    // buffer is large enough. Nothing is allocated.
    void fit(Activations& acts, int height, int width) const;

    // x (3, H, W) in [0,1] -> all activations up to deepest_layer().
    void forward(const float* image, Activations& acts) const;

    // A layer's post-ReLU output (C_l, height, width), valid during the call.
    using FeatureVisitor = std::function<void(int layer, const float* output, int height, int width)>;

    // Floats of each of the two buffers forward_features() needs for a
    // height × width image: the largest layer's input or output, as the
    // passes' scratch. Throws InputError when the image is too small for the
    // deepest layer.
    std::size_t feature_scratch_floats(int height, int width) const;

    // A forward pass whose activations no backward pass needs (the style
    // images' Gram matrices): visit(l, …) sees each layer's output before the
    // next one overwrites it. The pass ping-pongs between two buffers of
    // feature_scratch_floats(): the scratch and first layer's output of `spare`
    // when both are that large (overwriting them: spare's activations are
    // not valid afterwards), else two allocated for the call.
    // image (3, height, width).
    void forward_features(const float* image, int height, int width, Activations& spare,
                          const FeatureVisitor& visit) const;

    // ∂L/∂output(l) of the losses at layer l, added to grad (C_l, h_l, w_l).
    using LossGradient = std::function<void(int layer, float* grad)>;

    // Backward pass, from the deepest layer with a loss (has_loss[l]) down. At
    // each such layer add_loss_gradient(l, g) adds its losses' gradient to g,
    // the gradient from above (zero at the deepest), while output(l) is intact:
    // the losses' gradients need no buffers of their own. The pass keeps the
    // gradient in the outputs it no longer needs, so acts' outputs are not
    // valid afterwards. image_grad (3, H, W) += ∂L/∂x.
    void backward(Activations& acts, const std::vector<bool>& has_loss,
                  const LossGradient& add_loss_gradient, float* image_grad) const;

private:
    // The layers from p(x) in `input` (3, height, width): layer l writes its
    // output to output(l, its input) and its pool, if any, to pooled(l, its
    // output); visit (if not null) sees each output.
    template <typename Output, typename Pooled>
    void run_layers(const float* input, int height, int width, Output output, Pooled pooled,
                    const FeatureVisitor* visit) const;

    struct Layer {
        ConvShape shape;  // height/width unused here; set per Activations
        Buffer weight;
        Buffer bias;
        bool pool_after = false;
        std::string forward_range, backward_range;  // NVTX range names
    };
    Backend& backend_;
    Preprocessing preprocessing_;
    PoolMode pool_;
    int deepest_layer_;
    std::vector<Layer> layers_;
};

}  // namespace nst
