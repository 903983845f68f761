// The style term's targets as host copies (engine/objective/style_term.h), for
// a cache that several runs in one style share (engine/run/transfer.h,
// StyleTargetCache). Plain data: part of the installed API.
#pragma once

#include <vector>

namespace nst {

// A^l per style layer or, with spatial control, each region's mask, Ã_r and M_r.
struct StyleTargets {
    struct Region {
        std::vector<float> mask, target;
        double size = 0.0;
    };
    struct Layer {
        std::vector<float> target;
        std::vector<Region> regions;
    };
    std::vector<Layer> layers;
};

}  // namespace nst
