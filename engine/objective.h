// The style-transfer objective of DESIGN.md ("The objective"):
//   L = α L_c + β L_s + γ L_tv, with its gradient w.r.t. the image.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/image.h"
#include "engine/optimizer.h"
#include "engine/vgg19.h"
#include "engine/weights.h"

namespace nst {

struct LayerWeight {
    std::string layer;  // "conv4_2"
    double weight = 1.0;
};

struct ObjectiveConfig {
    std::vector<LayerWeight> content_layers{{"conv4_2", 1.0}};
    std::vector<LayerWeight> style_layers{{"conv1_1", 0.2}, {"conv2_1", 0.2}, {"conv3_1", 0.2},
                                          {"conv4_1", 0.2}, {"conv5_1", 0.2}};
    double content_weight = 1.0;  // α
    double style_weight = 1e3;    // β
    double tv_weight = 0.0;       // γ
    PoolMode pool = PoolMode::average;
};

// Values of the last evaluation: loss = L, the others unweighted.
struct LossTerms {
    double loss = 0.0;
    double content = 0.0;
    double style = 0.0;
    double tv = 0.0;
    std::vector<double> style_per_layer;  // E_l, in config order
};

class StyleTransferObjective final : public DifferentiableFunction {
public:
    // The output image is width × height. Validates layer names (UsageError).
    StyleTransferObjective(Backend& backend, const VggWeights& weights,
                           const ObjectiveConfig& config, int width, int height);

    // P^l from the content image (must be width × height).
    void set_content(const Image& content);
    // A^l = Σ_k b_k A^l_k from style images of any size; blend weights are
    // normalised to sum to 1 (empty: equal weights).
    void set_styles(const std::vector<Image>& styles, std::vector<double> blend_weights = {});

    std::size_t size() const override { return 3 * std::size_t(width_) * height_; }
    // x, grad: (3, H, W) in backend memory.
    double evaluate(const float* x, float* grad) override;
    const LossTerms& last_terms() const { return terms_; }

    int width() const { return width_; }
    int height() const { return height_; }
    const Vgg19& network() const { return network_; }
    const ObjectiveConfig& config() const { return config_; }

    // Host copies, for tests and tools: the activation of `layer` for an image,
    // and the style target A^l.
    std::vector<float> activation(const Image& image, const std::string& layer);
    std::vector<float> style_target(const std::string& layer) const;

private:
    struct LossLayer {
        int index = 0;
        double weight = 0.0;
        Buffer target;  // P^l (C, h, w) or A^l (C, C)
        Buffer gram;    // style only: G^l of the current image (C, C)
    };
    static int deepest_of(const ObjectiveConfig& config);

    Backend& backend_;
    ObjectiveConfig config_;
    int width_, height_;
    Vgg19 network_;
    Vgg19::Activations acts_;
    std::vector<LossLayer> content_layers_, style_layers_;
    std::vector<Buffer> layer_grads_;       // ∂L/∂output(l) for layers with a loss
    std::vector<float*> layer_grad_ptrs_;   // per layer index, null where no loss
    bool has_content_ = false, has_style_ = false;
    LossTerms terms_;
};

}  // namespace nst
