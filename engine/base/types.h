// The plain types that the engine and the kernels share: pooling mode, input
// preprocessing, convolution shape. No behaviour, no dependencies.
#pragma once

namespace nst {

enum class PoolMode { average, max };

// 16-bit storage formats of fp32 vectors (kernels/half.h).
enum class HalfFormat { bf16, fp16 };

// Preprocessing of DESIGN.md: p(x)_c = (pixel_scale · x_{perm(c)} − mean_c) / std_c
// where perm is the identity for RGB and reverses channels for BGR.
struct Preprocessing {
    bool bgr = false;
    float pixel_scale = 1.0f;
    float mean[3] = {0.0f, 0.0f, 0.0f};
    float std[3] = {1.0f, 1.0f, 1.0f};
};

struct ConvShape {
    int in_channels = 0;   // C_in
    int out_channels = 0;  // C_out
    int height = 0;        // H (input and output: padding 1 keeps the size)
    int width = 0;         // W
};

// A rows × cols window of every channel, copied between two (C, H, W) tensors:
//   dst[c, dst_y + i, dst_x + j] = src[c, src_y + i, src_x + j],  i < rows, j < cols
// (a crop when dst is the window's size, a paste when src is). Both windows
// must lie inside their tensors.
struct WindowCopy {
    int channels = 0;
    int rows = 0, cols = 0;
    int src_height = 0, src_width = 0, src_y = 0, src_x = 0;
    int dst_height = 0, dst_width = 0, dst_y = 0, dst_x = 0;
};

}  // namespace nst
