// The style-transfer objective (DESIGN.md, "The objective"):
//   L_c = ½ Σ_{l∈C} c_l Σ_ij (F^l_ij − P^l_ij)²
//   E_l = Σ_ij (G^l_ij − A^l_ij)² / (4 N_l² M_l²),  G^l = F^l F^lᵀ,  L_s = Σ_{l∈S} w_l E_l
//   L_tv = Σ_c Σ_ij (x_{c,i,j+1} − x_{c,i,j})² + (x_{c,i+1,j} − x_{c,i,j})²
//   L = α L_c + β L_s + γ L_tv
// The backend's loss ops accumulate α c_l ∂/∂F (content) and β w_l ∂E_l/∂F (style)
// into one gradient buffer per loss layer; VGG-19's backward pass carries them to x.
#include "engine/objective.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "kernels/nvtx.h"

namespace nst {

namespace {

std::vector<LayerWeight> checked(const std::vector<LayerWeight>& layers, const char* what) {
    for (const auto& layer : layers) {
        vgg19_layer_index(layer.layer);  // throws UsageError for an unknown name
        if (!std::isfinite(layer.weight) || layer.weight < 0)
            throw UsageError(std::string(what) + " layer weight for " + layer.layer +
                             " must be a finite number >= 0");
    }
    return layers;
}

}  // namespace

int StyleTransferObjective::deepest_of(const ObjectiveConfig& config) {
    int deepest = -1;
    for (const auto& l : checked(config.content_layers, "content"))
        deepest = std::max(deepest, vgg19_layer_index(l.layer));
    for (const auto& l : checked(config.style_layers, "style"))
        deepest = std::max(deepest, vgg19_layer_index(l.layer));
    if (deepest < 0) throw UsageError("no content or style layers given");
    return deepest;
}

StyleTransferObjective::StyleTransferObjective(Backend& backend, const VggWeights& weights,
                                               const ObjectiveConfig& config, int width,
                                               int height)
    : backend_(backend), config_(config), width_(width), height_(height),
      network_(backend, weights, deepest_of(config), config.pool),
      acts_(network_.plan(height, width)) {
    for (double w : {config.content_weight, config.style_weight, config.tv_weight})
        if (!std::isfinite(w) || w < 0)
            throw UsageError("content, style and TV weights must be finite numbers >= 0");
    const int layer_count = network_.deepest_layer() + 1;
    layer_grad_ptrs_.assign(layer_count, nullptr);
    auto grad_for = [&](int index) {
        if (!layer_grad_ptrs_[index]) {
            layer_grads_.emplace_back(backend_, network_.channels(index) * acts_.plane(index));
            layer_grad_ptrs_[index] = layer_grads_.back().data();
        }
    };
    for (const auto& l : config.content_layers) {
        LossLayer layer;
        layer.index = vgg19_layer_index(l.layer);
        layer.weight = l.weight;
        layer.target = Buffer(backend_, network_.channels(layer.index) * acts_.plane(layer.index));
        grad_for(layer.index);
        content_layers_.push_back(std::move(layer));
    }
    for (const auto& l : config.style_layers) {
        LossLayer layer;
        layer.index = vgg19_layer_index(l.layer);
        layer.weight = l.weight;
        const std::size_t n = network_.channels(layer.index);
        layer.target = Buffer(backend_, n * n);
        layer.gram = Buffer(backend_, n * n);
        grad_for(layer.index);
        style_layers_.push_back(std::move(layer));
    }
    terms_.style_per_layer.assign(style_layers_.size(), 0.0);
}

void StyleTransferObjective::set_content(const Image& content) {
    if (content.width != width_ || content.height != height_)
        throw Error("content image is " + std::to_string(content.width) + "x" +
                    std::to_string(content.height) + ", expected " + std::to_string(width_) + "x" +
                    std::to_string(height_));
    Buffer image(backend_, content.pixels.size());
    backend_.upload(image.data(), content.pixels.data(), content.pixels.size());
    network_.forward(image.data(), acts_);
    for (auto& layer : content_layers_)
        backend_.copy(layer.target.size(), acts_.output(layer.index), layer.target.data());
    has_content_ = true;
}

void StyleTransferObjective::set_styles(const std::vector<Image>& styles,
                                        std::vector<double> blend_weights) {
    if (styles.empty()) throw UsageError("no style image given");
    if (blend_weights.empty()) blend_weights.assign(styles.size(), 1.0);
    if (blend_weights.size() != styles.size())
        throw UsageError("got " + std::to_string(blend_weights.size()) + " style blend weights for " +
                         std::to_string(styles.size()) + " style images");
    double total = 0.0;
    for (double b : blend_weights) {
        if (!std::isfinite(b) || b < 0) throw UsageError("style blend weights must be finite and >= 0");
        total += b;
    }
    if (!(total > 0)) throw UsageError("style blend weights must not all be zero");

    for (auto& layer : style_layers_) backend_.fill(layer.target.size(), 0.0f, layer.target.data());
    for (std::size_t k = 0; k < styles.size(); ++k) {
        const Image& style = styles[k];
        Vgg19::Activations acts = network_.plan(style.height, style.width);
        Buffer image(backend_, style.pixels.size());
        backend_.upload(image.data(), style.pixels.data(), style.pixels.size());
        network_.forward(image.data(), acts);
        const float blend = static_cast<float>(blend_weights[k] / total);
        for (auto& layer : style_layers_) {
            const int n = network_.channels(layer.index);
            // The gram buffer is free at set-up: use it for this style's Gram.
            backend_.gram(n, acts.plane(layer.index), acts.output(layer.index), layer.gram.data());
            backend_.axpy(layer.gram.size(), blend, layer.gram.data(), layer.target.data());
        }
    }
    has_style_ = true;
}

double StyleTransferObjective::evaluate(const float* x, float* grad) {
    if (!content_layers_.empty() && !has_content_)
        throw Error("the content image was not set before evaluating the objective");
    if (!style_layers_.empty() && !has_style_)
        throw Error("the style images were not set before evaluating the objective");

    NVTX_RANGE("objective");
    network_.forward(x, acts_);
    for (auto& buffer : layer_grads_) backend_.fill(buffer.size(), 0.0f, buffer.data());

    const double alpha = config_.content_weight, beta = config_.style_weight;
    terms_.content = 0.0;
    for (auto& layer : content_layers_) {
        NVTX_RANGE("content loss");
        const double value = backend_.content_loss(layer.target.size(), acts_.output(layer.index),
                                                   layer.target.data(),
                                                   static_cast<float>(alpha * layer.weight),
                                                   layer_grad_ptrs_[layer.index]);
        terms_.content += layer.weight * value;
    }
    terms_.style = 0.0;
    for (std::size_t i = 0; i < style_layers_.size(); ++i) {
        LossLayer& layer = style_layers_[i];
        NVTX_RANGE("style loss");
        const int n = network_.channels(layer.index);
        const std::size_t m = acts_.plane(layer.index);
        const float* features = acts_.output(layer.index);
        backend_.gram(n, m, features, layer.gram.data());
        const double value = backend_.style_loss(n, m, features, layer.gram.data(),
                                                 layer.target.data(),
                                                 static_cast<float>(beta * layer.weight),
                                                 layer_grad_ptrs_[layer.index]);
        terms_.style_per_layer[i] = value;
        terms_.style += layer.weight * value;
    }
    backend_.fill(size(), 0.0f, grad);
    {
        NVTX_RANGE("tv loss");
        terms_.tv = backend_.tv_loss(3, height_, width_, x, static_cast<float>(config_.tv_weight), grad);
    }
    network_.backward(acts_, layer_grad_ptrs_, grad);
    terms_.loss = alpha * terms_.content + beta * terms_.style + config_.tv_weight * terms_.tv;
    return terms_.loss;
}

std::vector<float> StyleTransferObjective::activation(const Image& image, const std::string& layer) {
    const int index = vgg19_layer_index(layer);
    if (index > network_.deepest_layer())
        throw UsageError("layer " + layer + " is deeper than the layers this objective uses");
    Vgg19::Activations acts = network_.plan(image.height, image.width);
    Buffer input(backend_, image.pixels.size());
    backend_.upload(input.data(), image.pixels.data(), image.pixels.size());
    network_.forward(input.data(), acts);
    std::vector<float> out(network_.channels(index) * acts.plane(index));
    backend_.download(out.data(), acts.output(index), out.size());
    return out;
}

std::vector<float> StyleTransferObjective::style_target(const std::string& layer) const {
    const int index = vgg19_layer_index(layer);
    for (const auto& l : style_layers_)
        if (l.index == index) {
            std::vector<float> out(l.target.size());
            backend_.download(out.data(), l.target.data(), out.size());
            return out;
        }
    throw UsageError("layer " + layer + " is not a style layer of this objective");
}

}  // namespace nst
