// The temporal error of a stylised clip (engine/video/video_quality.h).
#include "engine/video/video_quality.h"

#include "engine/base/error.h"
#include "engine/video/consistency.h"
#include "kernels/warp.h"

namespace nst {

TemporalErrors temporal_errors(const std::vector<Image>& contents, const std::vector<Image>& stylised,
                               FlowMethod method) {
    if (contents.size() != stylised.size() || contents.size() < 2)
        throw UsageError("temporal_errors: needs as many stylised frames as content frames, at least 2");
    TemporalErrors errors;
    for (std::size_t i = 1; i < contents.size(); ++i) {
        const Image& x = stylised[i];
        const Image& previous = stylised[i - 1];
        if (x.width != contents[i].width || x.height != contents[i].height || previous.width != x.width ||
            previous.height != x.height)
            throw UsageError("temporal_errors: frame " + std::to_string(i) + " is not the content frames' size");
        const Flow to_previous = compute_flow(method, contents[i], contents[i - 1]);
        const Flow from_previous = compute_flow(method, contents[i - 1], contents[i]);
        const std::vector<float> c = consistency_weights(to_previous, from_previous);
        double sum = 0.0;
        for (int ch = 0; ch < 3; ++ch)
            for (int y = 0; y < x.height; ++y)
                for (int col = 0; col < x.width; ++col) {
                    const float warped = kernels::warp_element(previous.pixels.data(), to_previous.uv.data(), ch, y,
                                                               col, x.height, x.width);
                    const double d = double(x.at(ch, y, col)) - double(warped);
                    sum += double(c[std::size_t(y) * x.width + col]) * d * d;
                }
        errors.per_frame.push_back(sum / (3.0 * double(x.plane())));
    }
    for (const double e : errors.per_frame) errors.mean += e;
    errors.mean /= double(errors.per_frame.size());
    return errors;
}

}  // namespace nst
