// How much a stylised clip flickers (DESIGN.md, "Video"): Ruder et al.'s
// temporal error, measured with flows and consistency weights of the content
// frames, so that runs with different settings (or frames stylised one by one)
// are measured alike.
//
//   E_i = (1/D) Σ_k c_k (x⁽ⁱ⁾_k − ω(x⁽ⁱ⁻¹⁾)_k)²,  D = 3·W·H,  E = (1/(T−1)) Σ_{i≥1} E_i
//
// with ω the warp by the flow on frame i's grid into frame i − 1 and c the
// consistency weights of that pair (engine/video/consistency.h).
#pragma once

#include <vector>

#include "engine/io/image.h"
#include "engine/video/flow.h"

namespace nst {

struct TemporalErrors {
    std::vector<double> per_frame;  // E_i for i = 1 .. T−1
    double mean = 0.0;              // E
};

// contents and stylised: the same number of frames (≥ 2), all of one size.
TemporalErrors temporal_errors(const std::vector<Image>& contents, const std::vector<Image>& stylised,
                               FlowMethod method = FlowMethod::dis);

}  // namespace nst
