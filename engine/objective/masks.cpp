// Masks of spatial control: reading, resizing and pooling to each layer's size.
#include "engine/objective/masks.h"

#include <algorithm>

#include "engine/io/color.h"
#include "engine/base/error.h"
#include "engine/network/vgg19.h"

namespace nst {

std::vector<float> mask_plane(const Image& mask, int width, int height) {
    std::vector<float> plane = luminance(resize_image(mask, width, height));
    for (float& v : plane) v = std::clamp(v, 0.0f, 1.0f);
    return plane;
}

std::vector<float> pool_mask(const std::vector<float>& mask, int width, int height) {
    NST_ASSERT(mask.size() == std::size_t(width) * height);
    const int out_w = width / 2, out_h = height / 2;
    std::vector<float> out(std::size_t(out_w) * out_h);
    for (int i = 0; i < out_h; ++i)
        for (int j = 0; j < out_w; ++j) {
            const float* top = mask.data() + std::size_t(2 * i) * width + 2 * j;
            const float* bottom = top + width;
            // The network's summation order (cpu_layers.cpp), so the two agree exactly.
            out[std::size_t(i) * out_w + j] = 0.25f * ((top[0] + top[1]) + (bottom[0] + bottom[1]));
        }
    return out;
}

std::vector<float> erode_mask(const std::vector<float>& mask, int width, int height) {
    NST_ASSERT(mask.size() == std::size_t(width) * height);
    std::vector<float> out(mask.size());
    for (int i = 0; i < height; ++i)
        for (int j = 0; j < width; ++j) {
            float least = mask[std::size_t(i) * width + j];
            for (int u = std::max(0, i - 1); u <= std::min(height - 1, i + 1); ++u)
                for (int v = std::max(0, j - 1); v <= std::min(width - 1, j + 1); ++v)
                    least = std::min(least, mask[std::size_t(u) * width + v]);
            out[std::size_t(i) * width + j] = least;
        }
    return out;
}

std::vector<float> min_pool_mask(const std::vector<float>& mask, int width, int height) {
    NST_ASSERT(mask.size() == std::size_t(width) * height);
    const int out_w = width / 2, out_h = height / 2;
    std::vector<float> out(std::size_t(out_w) * out_h);
    for (int i = 0; i < out_h; ++i)
        for (int j = 0; j < out_w; ++j) {
            const float* top = mask.data() + std::size_t(2 * i) * width + 2 * j;
            const float* bottom = top + width;
            out[std::size_t(i) * out_w + j] = std::min(std::min(top[0], top[1]), std::min(bottom[0], bottom[1]));
        }
    return out;
}

std::vector<float> mask_at_layer(const std::vector<float>& mask, int width, int height, int layer,
                                 bool erode, int* layer_width, int* layer_height) {
    std::vector<float> m = mask;
    for (int l = 0; l <= layer; ++l) {
        if (erode) m = erode_mask(m, width, height);
        if (l < layer && vgg19_pool_after(l)) {
            m = erode ? min_pool_mask(m, width, height) : pool_mask(m, width, height);
            width /= 2;
            height /= 2;
        }
    }
    if (layer_width) *layer_width = width;
    if (layer_height) *layer_height = height;
    return m;
}

double mask_size(const std::vector<float>& mask) {
    double size = 0;
    for (float v : mask) size += double(v) * v;
    return size;
}

}  // namespace nst
