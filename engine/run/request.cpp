// TransferRequest (engine/run/request.h): the sizes of each scale and the checks of
// a request, before any image is decoded (validate) and once they are (validate_images).
#include "engine/run/request.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "engine/backends/backend.h"
#include "engine/base/error.h"
#include "engine/io/vgg19_layers.h"

namespace nst {

namespace {

// The size resize_longest_side(image, longest) gives, without resampling.
std::pair<int, int> longest_side_size(const Image& image, int longest) {
    const int current = std::max(image.width, image.height);
    const auto side = [&](int length) {
        if (length == current) return longest;
        return std::max(1, static_cast<int>(std::lround(length * (static_cast<double>(longest) / current))));
    };
    return {side(image.width), side(image.height)};
}

}  // namespace

std::vector<std::string> TransferRequest::split_layer_list(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ','))
        if (!part.empty()) parts.push_back(part);
    return parts;
}

std::vector<int> TransferRequest::sizes() const {
    return scale_sizes.empty() ? std::vector<int>{size} : scale_sizes;
}

std::vector<int> TransferRequest::iterations_per_scale() const {
    return scale_iterations.empty() ? std::vector<int>(sizes().size(), iterations)
                                    : scale_iterations;
}

void TransferRequest::validate_images() const {
    if (content.width <= 0 || content.height <= 0) throw UsageError("no content image given");
    if (styles.empty()) throw UsageError("no style image given");
    for (const Image* image : {&content, &init_image, &content_mask})
        if (image->pixels.size() != 3 * image->plane())
            throw UsageError("an image's pixel count does not match its width and height");
    for (const auto* list : {&styles, &style_masks, &style_image_masks})
        for (const Image& image : *list)
            if (image.pixels.size() != 3 * image.plane())
                throw UsageError("an image's pixel count does not match its width and height");
    for (const Image& style : styles)
        if (style.width <= 0 || style.height <= 0) throw UsageError("a style image is empty");
    for (const Image& mask : style_masks)
        if (mask.width <= 0 || mask.height <= 0) throw UsageError("a style mask is empty");
    if (init == InitKind::image && init_image.width <= 0)
        throw UsageError("--init image needs an initial image");

    // Each pool halves a side (rounding down) and a layer needs one pixel, so the
    // deepest layer in use, after p pools, needs sides of at least 2^p at every
    // scale: checked here, where the image can be named, rather than in the network.
    int deepest = -1;
    for (const auto* layers : {&content_layers, &style_layers})
        for (const std::string& layer : *layers) deepest = std::max(deepest, vgg19_layer_index(layer));
    int pools = 0;
    for (int l = 0; l < deepest; ++l) pools += vgg19_pool_after(l) ? 1 : 0;
    const int needed = 1 << pools;
    const auto check = [&](const Image& image, const std::string& what, int longest, const std::string& how) {
        const auto [w, h] = longest_side_size(image, longest);
        if (w >= needed && h >= needed) return;
        throw InputError(what + " (" + std::to_string(image.width) + "x" + std::to_string(image.height) +
                         ") becomes " + std::to_string(w) + "x" + std::to_string(h) + " at " + how +
                         ", too small for layer " + vgg19_layer_names()[std::size_t(deepest)] +
                         ", which needs at least " + std::to_string(needed) + " pixels on each side");
    };
    for (const int side : sizes()) {
        check(content, content_name.empty() ? "the content image" : "content image '" + content_name + "'", side,
              "size " + std::to_string(side));
        const int style_side = std::max(16, int(std::lround(style_scale * side)));
        for (std::size_t k = 0; k < styles.size(); ++k)
            check(styles[k],
                  k < style_names.size() && !style_names[k].empty() ? "style image '" + style_names[k] + "'"
                                                                    : "style image " + std::to_string(k + 1),
                  style_side, "a longest side of " + std::to_string(style_side));
    }
}

void TransferRequest::validate() const {
    // Each option on its own (ranges, choices: engine/run/run_options.h), then how
    // they go together.
    check_run_options(*this);
    if (!init.valid())
        throw UsageError("--init: '" + init.text() + "' is not one of noise, content, style, image");

    if (!style_blend_weights.empty() && style_blend_weights.size() != styles.size())
        throw UsageError("--style-blend-weights has " + std::to_string(style_blend_weights.size()) +
                         " values for " + std::to_string(styles.size()) + " --style images");
    double blend_total = 0;
    for (double b : style_blend_weights) blend_total += b;  // each checked: at most 1e24, finite
    if (!style_blend_weights.empty() && !(blend_total > 0))
        throw UsageError("--style-blend-weights must not all be zero");
    if (content_layers.empty() && style_layers.empty())
        throw UsageError("--content-layers and --style-layers are both empty");
    for (const auto* layers : {&content_layers, &style_layers})
        for (const std::string& layer : *layers) vgg19_layer_index(layer);  // UsageError if unknown
    if (styles.empty()) throw UsageError("no style image given");
    if (!style_masks.empty() && style_masks.size() != styles.size())
        throw UsageError("--style-masks has " + std::to_string(style_masks.size()) + " masks for " +
                         std::to_string(styles.size()) + " --style images");
    if (!style_masks.empty() && !style_blend_weights.empty())
        throw UsageError("--style-blend-weights does not apply with --style-masks (each style has its region)");
    if (!style_image_masks.empty() && style_masks.empty())
        throw UsageError("--style-image-masks needs --style-masks");
    if (mask_erosion && style_masks.empty()) throw UsageError("--mask-erosion needs --style-masks");
    if (style_image_masks.size() > styles.size())
        throw UsageError("--style-image-masks has " + std::to_string(style_image_masks.size()) +
                         " masks for " + std::to_string(styles.size()) + " --style images");

    const std::vector<int> scale_list = sizes();
    for (std::size_t k = 0; k < scale_list.size(); ++k) {
        if (k > 0 && scale_list[k] <= scale_list[k - 1])
            throw UsageError("--scale-sizes must increase, coarsest first");
    }
    if (scale_list.back() != size)
        throw UsageError("--scale-sizes ends at " + std::to_string(scale_list.back()) +
                         " but --size is " + std::to_string(size));
    if (!scale_iterations.empty()) {
        if (scale_iterations.size() != scale_list.size())
            throw UsageError("--scale-iterations has " + std::to_string(scale_iterations.size()) +
                             " values for " + std::to_string(scale_list.size()) + " scales");
    }
}

}  // namespace nst
