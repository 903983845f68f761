// Where a warped frame can be trusted (Ruder, Dosovitskiy, Brox 2016, §3.1 and
// §3.3; DESIGN.md, "Video"): the per-pixel weights c of the temporal loss.
//
// For frames i and i − j, with ŵ = (û, v̂) the flow on frame i's grid pointing
// into frame i − j (the one the temporal loss warps with) and w the flow the
// other way (on frame i − j's grid, pointing into i), w̃(p) = w(p + ŵ(p)) is w
// warped onto frame i's grid (kernels/warp.h). Then c^(i−j,i)(p) is
//   0   where the forward-backward check fails (a disocclusion):
//         |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5
//   0   on a motion boundary:  |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002
//   0   where p + ŵ(p) leaves frame i − j (nothing there to compare with)
//   1   elsewhere.
// ∇ is the central difference (p ± 1, halved) inside the frame and the one-sided
// difference on its border.
//
// The long-term weights over J = {j_1 < j_2 < ...} (§3.3):
//   c_long^(i−j,i) = max(c^(i−j,i) − Σ_{k∈J, k<j} c^(i−k,i), 0)
// so that each pixel is compared with the nearest earlier frame where it was
// visible, and only that one.
#pragma once

#include <vector>

#include "engine/video/flow.h"

namespace nst {

// c^(i−j,i) (H·W, 0 or 1) from the two flows (same size).
std::vector<float> consistency_weights(const Flow& to_earlier, const Flow& earlier_to_this);

// c_long for each entry of `short_weights` (c^(i−j,i) for each j of J in
// ascending order of j), as above.
std::vector<std::vector<float>> long_term_weights(const std::vector<std::vector<float>>& short_weights);

// Marks as 0 the pixels a .flo file gave no flow for (read_flo's `unknown`).
void zero_unknown(std::vector<float>& weights, const std::vector<bool>& unknown);

}  // namespace nst
