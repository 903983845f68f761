// Dense optical flow between two frames (DESIGN.md, "Video"): the flow the
// temporal loss warps with, and the .flo files any other tool writes.
//
// A Flow lives on the grid of the frame it is computed for: flow.at(0, y, x) = u,
// flow.at(1, y, x) = v, and the pixel (y, x) of that frame shows what is at
// (x + u, y + v) in the other frame (kernels/warp.h). "The flow from a to b" in
// this code is on a's grid and points into b, so warping b by it gives b seen
// from a: ω_b→a(b).
#pragma once

#include <string>
#include <vector>

#include "engine/io/image.h"

namespace nst {

struct Flow {
    int width = 0, height = 0;
    std::vector<float> uv;  // (2, H, W): u plane then v plane, pixels

    std::size_t plane() const { return std::size_t(width) * height; }
    float& at(int k, int y, int x) { return uv[k * plane() + std::size_t(y) * width + x]; }
    float at(int k, int y, int x) const { return uv[k * plane() + std::size_t(y) * width + x]; }
};

enum class FlowMethod {
    dis,       // OpenCV's DIS (Kroeger et al. 2016), preset medium: with variational refinement
    deepflow,  // OpenCV contrib's DeepFlow (Weinzaepfel et al. 2013): its variational
               // energy without DeepMatching's matches; slower
};

// The flow on `to_grid`'s grid pointing into `from`: what makes ω(from) look
// like to_grid. Both frames the same size, RGB in [0, 1] (taken as grey, as
// both methods need), at least 16 pixels on each side (InputError otherwise).
// Deterministic: the same frames give the same bits, whatever OpenCV's thread count.
Flow compute_flow(FlowMethod method, const Image& to_grid, const Image& from);

// Middlebury .flo files (the format of DeepFlow, FlowNet, RAFT and
// artistic-videos): "PIEH" as a float 202021.25, int32 width, int32 height,
// then rows of interleaved (u, v) float32, little-endian. Unknown values
// (|u| or |v| ≥ 1e9) read as NaN-free 0 with the consistency weight 0 there
// (read_flo marks them in `unknown` when given). Throws InputError naming the
// file and the fault: a bad tag, a size not positive or above kMaxImagePixels
// (refused before allocating), a file shorter or longer than its size says, a
// NaN or infinite value. Whether the size is the frames' is the caller's check.
Flow read_flo(const std::string& path, std::vector<bool>* unknown = nullptr);
// Written atomically (a temporary renamed), as save_image does; RuntimeFailure
// when it cannot be written, UsageError for a non-finite value.
void write_flo(const std::string& path, const Flow& flow);

// A flow resized to width × height: sampled bilinearly (pixel centres aligned,
// the edge repeated) and its vectors scaled by the size ratio per axis (a flow
// computed on frames at another size, or read from a .flo file made at the
// video's own size). The same size: a copy.
Flow resize_flow(const Flow& flow, int width, int height);

}  // namespace nst
