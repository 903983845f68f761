// Masks of spatial control (Gatys et al. 2017, §4): a grey image whose value in
// [0,1] (its luminance; white = 1) says how much a position belongs to a region.
#pragma once

#include <string>
#include <vector>

#include "engine/io/image.h"

namespace nst {

// A mask at width × height: the image's luminance (0.299 R + 0.587 G + 0.114 B),
// resized with resize_image (Lanczos-3) and clamped to [0,1] (the filter rings
// slightly past a hard edge). Returns (H·W).
std::vector<float> mask_plane(const Image& mask, int width, int height);

// One 2×2 stride-2 average pool with floor, as the network pools (a trailing odd
// row or column is dropped): (H·W) -> (⌊H/2⌋·⌊W/2⌋).
std::vector<float> pool_mask(const std::vector<float>& mask, int width, int height);

// Erosion by a 3×3 minimum filter (positions outside the image are ignored,
// as a convolution's zero padding belongs to no region): (H·W) -> (H·W).
std::vector<float> erode_mask(const std::vector<float>& mask, int width, int height);

// A 2×2 stride-2 minimum pool with floor: (H·W) -> (⌊H/2⌋·⌊W/2⌋).
std::vector<float> min_pool_mask(const std::vector<float>& mask, int width, int height);

// The mask at the resolution of VGG-19 layer `layer` (its output) for an input
// of width × height.
//   erode = false: pooled by 2×2 averages once for every pool the network applies
//     before that layer (convolutions keep the size): a neuron whose receptive
//     field straddles a border belongs to both regions in part.
//   erode = true ("inside" guidance, Gatys et al. 2017 §4.1): every 3×3
//     convolution up to and including the layer erodes the mask (erode_mask) and
//     every pool takes the window's minimum, so a neuron keeps the least mask
//     value over its whole receptive field: with a hard mask, 1 exactly where the
//     receptive field lies inside the region, else 0. No neuron then mixes two
//     hard regions; small regions vanish at deep layers (their term is then 0).
// Returns the mask and, through the pointers, the layer's width and height.
std::vector<float> mask_at_layer(const std::vector<float>& mask, int width, int height, int layer,
                                 bool erode = false, int* layer_width = nullptr,
                                 int* layer_height = nullptr);

// Σ_p m(p)²: the size of a region in positions, counting a partial member m < 1
// as it enters the guided Gram matrix (F ⊙ m)(F ⊙ m)ᵀ.
double mask_size(const std::vector<float>& mask);

}  // namespace nst
