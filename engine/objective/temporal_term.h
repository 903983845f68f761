// The temporal loss of video stylisation (Ruder, Dosovitskiy, Brox, "Artistic
// style transfer for videos", GCPR 2016, §3 and §4), weight temporal_weight:
// for each earlier stylised frame warped onto this one (ω, kernels/warp.h),
// with its per-pixel consistency weights c (H·W, in [0,1]),
//   L_temporal = Σ_targets (1/D) Σ_{ch,p} c_p (x_{ch,p} − ω_{ch,p})²,   D = 3·H·W
//   ∂L_temporal/∂x = Σ_targets (2/D) c_p (x − ω)
// (per element in kernels/losses.h). One target is the short-term loss; the
// long-term loss is this sum over the frames of J, the caller passing the
// long-term weights. A pixel's weight applies to all three channels: occlusion
// and motion boundaries are properties of the pixel, not of a colour.
// It reads no layer: it is added once, on the whole image, after the tiles
// (tiled or not). Without targets (a still) it adds nothing.
#pragma once

#include <vector>

#include "engine/objective/loss_term.h"

namespace nst {

class TemporalTerm final : public LossTerm {
public:
    explicit TemporalTerm(LossContext& context) : LossTerm(context) {}

    // Validates every target (InputError: a warped frame that is not the output's
    // size, weights of the wrong length or outside [0,1], a non-finite value), then
    // uploads them. The same number of targets as before reuses the buffers (a
    // video sets new targets every frame); another number allocates or frees the
    // difference only.
    void set_targets(const std::vector<TemporalTarget>& targets);
    std::size_t target_count() const { return targets_.size(); }

    void set_inputs(const ObjectiveInputs& inputs) override { set_targets(inputs.temporal); }
    std::vector<int> layers() const override { return {}; }
    std::size_t held_bytes() const override;
    std::size_t slot_count() const override { return targets_.size(); }
    void add_image_gradient(const float* x, float* grad) override;
    double read_value() override;

private:
    struct Target {
        Buffer warped;   // ω (3, H, W)
        Buffer weights;  // c (H·W)
    };
    std::vector<Target> targets_;
};

}  // namespace nst
