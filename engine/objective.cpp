// The style-transfer objective (DESIGN.md, "The objective"):
//   L_c = ½ Σ_{l∈C} c_l Σ_ij (F^l_ij − P^l_ij)²
//   E_l = Σ_ij (G^l_ij − A^l_ij)² / (4 N_l² M_l²),  G^l = F^l F^lᵀ,  L_s = Σ_{l∈S} w_l E_l
//   L_tv = Σ_c Σ_ij (x_{c,i,j+1} − x_{c,i,j})² + (x_{c,i+1,j} − x_{c,i,j})²
//   L = α L_c + β L_s + γ L_tv
// The backend's loss ops accumulate α c_l ∂/∂F (content) and β w_l ∂E_l/∂F (style)
// into one gradient buffer per loss layer; VGG-19's backward pass carries them to x.
// Spatial control (guided Gram matrices, the masked content loss; formulas in
// objective.h) runs the same loss ops on F ⊙ m and multiplies their gradient by m
// again (the chain rule through the mask multiply) before adding it.
#include "engine/objective.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/base/error.h"
#include "engine/masks.h"
#include "engine/base/nvtx.h"

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
    allocate_loss_slots();
}

std::size_t StyleTransferObjective::style_slot(std::size_t layer, std::size_t region) const {
    const std::size_t regions = style_layers_.empty() ? 1 : std::max<std::size_t>(1, style_layers_[0].regions.size());
    return kFirstLayerSlot + content_layers_.size() + layer * regions + region;
}

void StyleTransferObjective::allocate_loss_slots() {
    const std::size_t count = style_slot(style_layers_.size(), 0);
    if (loss_slots_.size() == count) return;
    loss_slots_ = ScalarBuffer(backend_, count);
}

void StyleTransferObjective::set_content(const Image& content) {
    if (content.width != width_ || content.height != height_)
        throw Error("content image is " + std::to_string(content.width) + "x" +
                    std::to_string(content.height) + ", expected " + std::to_string(width_) + "x" +
                    std::to_string(height_));
    Buffer image(backend_, content.pixels.size());
    backend_.upload(image.data(), content.pixels.data(), content.pixels.size());
    network_.forward(image.data(), acts_);
    for (auto& layer : content_layers_) {
        backend_.copy(layer.target.size(), acts_.output(layer.index), layer.target.data());
        if (!layer.mask.empty())
            backend_.mask_channels(network_.channels(layer.index), acts_.plane(layer.index),
                                   layer.target.data(), layer.mask.data(), layer.target.data());
    }
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

    for (auto& layer : style_layers_) {
        layer.regions.clear();
        backend_.fill(layer.target.size(), 0.0f, layer.target.data());
    }
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
    allocate_loss_slots();
}

void StyleTransferObjective::allocate_mask_scratch() {
    if (!masked_features_.empty()) return;
    std::size_t largest = 0;
    for (const auto* layers : {&content_layers_, &style_layers_})
        for (const auto& layer : *layers)
            largest = std::max(largest, network_.channels(layer.index) * acts_.plane(layer.index));
    masked_features_ = Buffer(backend_, std::max<std::size_t>(largest, 1));
    masked_grad_ = Buffer(backend_, std::max<std::size_t>(largest, 1));
}

void StyleTransferObjective::set_content_mask(const std::vector<float>& mask) {
    if (mask.size() != std::size_t(width_) * height_)
        throw Error("the content mask has " + std::to_string(mask.size()) + " values, expected " +
                    std::to_string(std::size_t(width_) * height_));
    if (has_content_) throw Error("set_content_mask() must come before set_content()");
    for (auto& layer : content_layers_) {
        const std::vector<float> m = mask_at_layer(mask, width_, height_, layer.index);
        NST_ASSERT(m.size() == acts_.plane(layer.index));
        layer.mask = Buffer(backend_, m.size());
        backend_.upload(layer.mask.data(), m.data(), m.size());
    }
    allocate_mask_scratch();
}

void StyleTransferObjective::set_guided_styles(const std::vector<Image>& styles,
                                               const std::vector<std::vector<float>>& output_masks,
                                               const std::vector<std::vector<float>>& style_masks) {
    if (styles.empty()) throw UsageError("no style image given");
    if (output_masks.size() != styles.size())
        throw UsageError("got " + std::to_string(output_masks.size()) + " style masks for " +
                         std::to_string(styles.size()) + " style images");
    if (style_masks.size() > styles.size())
        throw UsageError("got " + std::to_string(style_masks.size()) + " style-image masks for " +
                         std::to_string(styles.size()) + " style images");
    for (const auto& mask : output_masks)
        if (mask.size() != std::size_t(width_) * height_)
            throw Error("a style mask has " + std::to_string(mask.size()) + " values, expected " +
                        std::to_string(std::size_t(width_) * height_));
    allocate_mask_scratch();
    for (auto& layer : style_layers_) layer.regions.clear();

    for (std::size_t k = 0; k < styles.size(); ++k) {
        const Image& style = styles[k];
        const bool whole = k >= style_masks.size() || style_masks[k].empty();
        if (!whole && style_masks[k].size() != style.plane())
            throw Error("the mask of style image " + std::to_string(k + 1) + " has " +
                        std::to_string(style_masks[k].size()) + " values, expected " +
                        std::to_string(style.plane()));
        Vgg19::Activations acts = network_.plan(style.height, style.width);
        Buffer image(backend_, style.pixels.size());
        backend_.upload(image.data(), style.pixels.data(), style.pixels.size());
        network_.forward(image.data(), acts);
        for (auto& layer : style_layers_) {
            const int n = network_.channels(layer.index);
            const std::size_t style_plane = acts.plane(layer.index);
            StyleRegion region;
            const bool erode = config_.erode_style_masks;
            const std::vector<float> m =
                mask_at_layer(output_masks[k], width_, height_, layer.index, erode);
            region.size = mask_size(m);
            region.mask = Buffer(backend_, m.size());
            backend_.upload(region.mask.data(), m.data(), m.size());
            region.target = Buffer(backend_, std::size_t(n) * n);
            double style_size = double(style_plane);
            if (whole) {
                backend_.gram(n, style_plane, acts.output(layer.index), region.target.data());
            } else {
                const std::vector<float> s =
                    mask_at_layer(style_masks[k], style.width, style.height, layer.index, erode);
                NST_ASSERT(s.size() == style_plane);
                style_size = mask_size(s);
                Buffer style_mask(backend_, s.size()), masked(backend_, n * style_plane);
                backend_.upload(style_mask.data(), s.data(), s.size());
                backend_.mask_channels(n, style_plane, acts.output(layer.index), style_mask.data(),
                                       masked.data());
                backend_.gram(n, style_plane, masked.data(), region.target.data());
            }
            if (region.size > 0 && !(style_size > 0))
                throw InputError("the mask of style image " + std::to_string(k + 1) +
                                 " selects nothing at " + vgg19_layer_names()[layer.index]);
            // Ã_r = A_r · M_r / M^s_r: the style region's Gram at the output region's size.
            if (region.size > 0)
                backend_.scale(region.target.size(), static_cast<float>(region.size / style_size),
                               region.target.data());
            layer.regions.push_back(std::move(region));
        }
    }
    has_style_ = true;
    allocate_loss_slots();
}

double StyleTransferObjective::evaluate(const float* x, float* grad) {
    queue_evaluation(backend_, x, grad);
    backend_.synchronize();
    queued_result();
    return terms_.loss;
}

void StyleTransferObjective::queue_evaluation(Backend& backend, const float* x, float* grad) {
    NST_ASSERT(&backend == &backend_);
    if (!content_layers_.empty() && !has_content_)
        throw Error("the content image was not set before evaluating the objective");
    if (!style_layers_.empty() && !has_style_)
        throw Error("the style images were not set before evaluating the objective");

    NVTX_RANGE("objective");
    network_.forward(x, acts_);
    for (auto& buffer : layer_grads_) backend_.fill(buffer.size(), 0.0f, buffer.data());

    const double alpha = config_.content_weight, beta = config_.style_weight;
    for (std::size_t i = 0; i < content_layers_.size(); ++i) {
        LossLayer& layer = content_layers_[i];
        NVTX_RANGE("content loss");
        const float weight = static_cast<float>(alpha * layer.weight);
        double* value = loss_slots_.slot(content_slot(i));
        if (layer.mask.empty()) {
            backend_.content_loss_into(layer.target.size(), acts_.output(layer.index),
                                       layer.target.data(), weight, layer_grad_ptrs_[layer.index],
                                       value);
        } else {
            // ½ Σ (m ⊙ F − m ⊙ P)², the target masked at set_content().
            const int n = network_.channels(layer.index);
            const std::size_t m = acts_.plane(layer.index), count = layer.target.size();
            backend_.mask_channels(n, m, acts_.output(layer.index), layer.mask.data(),
                                   masked_features_.data());
            backend_.fill(count, 0.0f, masked_grad_.data());
            backend_.content_loss_into(count, masked_features_.data(), layer.target.data(), weight,
                                       masked_grad_.data(), value);
            backend_.mask_channels(n, m, masked_grad_.data(), layer.mask.data(), masked_grad_.data());
            backend_.axpy(count, 1.0f, masked_grad_.data(), layer_grad_ptrs_[layer.index]);
        }
    }
    for (std::size_t i = 0; i < style_layers_.size(); ++i) {
        LossLayer& layer = style_layers_[i];
        NVTX_RANGE("style loss");
        const int n = network_.channels(layer.index);
        const std::size_t m = acts_.plane(layer.index);
        const float* features = acts_.output(layer.index);
        if (layer.regions.empty()) {
            backend_.gram(n, m, features, layer.gram.data());
            backend_.style_loss_into(n, m, features, layer.gram.data(), layer.target.data(),
                                     static_cast<float>(beta * layer.weight),
                                     layer_grad_ptrs_[layer.index], loss_slots_.slot(style_slot(i, 0)));
        }
        for (std::size_t r = 0; r < layer.regions.size(); ++r) {
            StyleRegion& region = layer.regions[r];
            if (!(region.size > 0)) continue;
            const std::size_t count = std::size_t(n) * m;
            backend_.mask_channels(n, m, features, region.mask.data(), masked_features_.data());
            backend_.gram(n, m, masked_features_.data(), layer.gram.data());
            backend_.fill(count, 0.0f, masked_grad_.data());
            // style_loss normalises by the plane m, E_{l,r} by the region's size M_r:
            // the gradient's weight is rescaled here by m² / M_r², the value in
            // queued_result().
            const double renormalise = (double(m) * double(m)) / (region.size * region.size);
            backend_.style_loss_into(n, m, masked_features_.data(), layer.gram.data(),
                                     region.target.data(),
                                     static_cast<float>(beta * layer.weight * renormalise),
                                     masked_grad_.data(), loss_slots_.slot(style_slot(i, r)));
            backend_.mask_channels(n, m, masked_grad_.data(), region.mask.data(), masked_grad_.data());
            backend_.axpy(count, 1.0f, masked_grad_.data(), layer_grad_ptrs_[layer.index]);
        }
    }
    backend_.fill(size(), 0.0f, grad);
    {
        NVTX_RANGE("tv loss");
        backend_.tv_loss_into(3, height_, width_, x, static_cast<float>(config_.tv_weight), grad,
                              loss_slots_.slot(kTvSlot));
    }
    network_.backward(acts_, layer_grad_ptrs_, grad);
    backend_.non_finite_into(size(), grad, loss_slots_.slot(kNonFiniteSlot));
    loss_slots_.queue_read();
}

double StyleTransferObjective::queued_result() {
    terms_.content = 0.0;
    for (std::size_t i = 0; i < content_layers_.size(); ++i)
        terms_.content += content_layers_[i].weight * loss_slots_.host(content_slot(i));
    terms_.style = 0.0;
    for (std::size_t i = 0; i < style_layers_.size(); ++i) {
        const LossLayer& layer = style_layers_[i];
        double value = 0.0;
        if (layer.regions.empty()) value = loss_slots_.host(style_slot(i, 0));
        const double m = double(acts_.plane(layer.index));
        for (std::size_t r = 0; r < layer.regions.size(); ++r) {
            const double size = layer.regions[r].size;
            if (size > 0) value += (m * m) / (size * size) * loss_slots_.host(style_slot(i, r));
        }
        terms_.style_per_layer[i] = value;
        terms_.style += layer.weight * value;
    }
    terms_.tv = loss_slots_.host(kTvSlot);
    terms_.loss = config_.content_weight * terms_.content + config_.style_weight * terms_.style +
                  config_.tv_weight * terms_.tv;
    const bool finite = std::isfinite(terms_.loss) && loss_slots_.host(kNonFiniteSlot) == 0.0;
    return finite ? terms_.loss : std::numeric_limits<double>::infinity();
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

const StyleTransferObjective::LossLayer& StyleTransferObjective::style_layer(const std::string& name) const {
    const int index = vgg19_layer_index(name);
    for (const auto& l : style_layers_)
        if (l.index == index) return l;
    throw UsageError("layer " + name + " is not a style layer of this objective");
}

std::vector<float> StyleTransferObjective::style_target(const std::string& layer) const {
    const LossLayer& l = style_layer(layer);
    std::vector<float> out(l.target.size());
    backend_.download(out.data(), l.target.data(), out.size());
    return out;
}

std::vector<float> StyleTransferObjective::region_style_target(const std::string& layer,
                                                               std::size_t region) const {
    const LossLayer& l = style_layer(layer);
    if (region >= l.regions.size())
        throw UsageError("no style region " + std::to_string(region) + " at " + layer);
    std::vector<float> out(l.regions[region].target.size());
    backend_.download(out.data(), l.regions[region].target.data(), out.size());
    return out;
}

std::vector<float> StyleTransferObjective::content_target(const std::string& layer) const {
    const int index = vgg19_layer_index(layer);
    for (const auto& l : content_layers_)
        if (l.index == index) {
            std::vector<float> out(l.target.size());
            backend_.download(out.data(), l.target.data(), out.size());
            return out;
        }
    throw UsageError("layer " + layer + " is not a content layer of this objective");
}

std::unique_ptr<StyleTransferObjective> make_objective_at(Backend& backend, const VggWeights& weights,
                                                          const ObjectiveConfig& config,
                                                          const TransferInputs& inputs,
                                                          int longest_side) {
    const Image content = resize_longest_side(inputs.content, longest_side);
    const int style_side =
        std::max(16, int(std::lround(inputs.style_scale * std::max(content.width, content.height))));
    std::vector<Image> styles;
    for (const Image& style : inputs.styles) styles.push_back(resize_longest_side(style, style_side));

    auto objective = std::make_unique<StyleTransferObjective>(backend, weights, config,
                                                              content.width, content.height);
    if (!config.content_layers.empty()) {
        if (inputs.content_mask.width > 0)
            objective->set_content_mask(mask_plane(inputs.content_mask, content.width, content.height));
        objective->set_content(content);
    }
    if (!config.style_layers.empty()) {
        if (inputs.style_masks.empty()) {
            objective->set_styles(styles, inputs.blend_weights);
        } else {
            if (!inputs.blend_weights.empty())
                throw UsageError("style blend weights do not apply with style masks (each style has its region)");
            std::vector<std::vector<float>> output_masks, style_masks;
            for (const Image& mask : inputs.style_masks)
                output_masks.push_back(mask_plane(mask, content.width, content.height));
            for (std::size_t k = 0; k < inputs.style_image_masks.size() && k < styles.size(); ++k)
                style_masks.push_back(inputs.style_image_masks[k].width > 0
                                          ? mask_plane(inputs.style_image_masks[k], styles[k].width,
                                                       styles[k].height)
                                          : std::vector<float>{});
            objective->set_guided_styles(styles, output_masks, style_masks);
        }
    }
    return objective;
}

std::vector<int> coarse_to_fine_sizes(int size, int scales) {
    if (scales < 1) throw UsageError("the number of scales must be at least 1");
    std::vector<int> sizes;
    for (int k = 0; k < scales; ++k) {
        const int side = int(std::lround(double(size) / std::pow(2.0, scales - 1 - k)));
        if (side < 16)
            throw UsageError(std::to_string(scales) + " scales halving down from " + std::to_string(size) +
                             " px reach " + std::to_string(side) + " px (the smallest is 16)");
        sizes.push_back(side);
    }
    return sizes;
}

}  // namespace nst
