// The consistency weights (engine/video/consistency.h) on flows built by hand,
// where the pixels each test must zero follow from the geometry alone: every
// check here is exact.
#include "engine/base/error.h"
#include "engine/video/consistency.h"

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace {

nst::Flow constant_flow(int width, int height, float u, float v) {
    nst::Flow flow;
    flow.width = width;
    flow.height = height;
    flow.uv.assign(2 * flow.plane(), 0.0f);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            flow.at(0, y, x) = u;
            flow.at(1, y, x) = v;
        }
    return flow;
}

struct Square {
    int x0, y0, side;
    bool contains(int x, int y) const { return x >= x0 && x < x0 + side && y >= y0 && y < y0 + side; }
};

// A square moving by (dx, dy) over a static background from frame i − 1 (at
// `before`) to frame i: ŵ is −(dx, dy) on the square's place in frame i, w is
// (dx, dy) on its place in frame i − 1, both 0 elsewhere.
struct MovingSquare {
    nst::Flow to_earlier, earlier_to_this;
};

MovingSquare moving_square(int width, int height, Square before, int dx, int dy) {
    const Square after{before.x0 + dx, before.y0 + dy, before.side};
    MovingSquare scene{constant_flow(width, height, 0, 0), constant_flow(width, height, 0, 0)};
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            if (after.contains(x, y)) {
                scene.to_earlier.at(0, y, x) = float(-dx);
                scene.to_earlier.at(1, y, x) = float(-dy);
            }
            if (before.contains(x, y)) {
                scene.earlier_to_this.at(0, y, x) = float(dx);
                scene.earlier_to_this.at(1, y, x) = float(dy);
            }
        }
    return scene;
}

// '0' where the weight is 0, '.' where it is 1, one line per row.
std::string as_map(const std::vector<float>& weights, int width, int height) {
    std::ostringstream map;
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
            const float c = weights[std::size_t(y) * width + x];
            map << (c == 0.0f ? '0' : c == 1.0f ? '.' : '?');
        }
        map << '\n';
    }
    return map.str();
}

}  // namespace

TEST_CASE("consistency: a 3x3 square moving by (2, 1), every zero derived by hand", "[consistency]") {
    // Frame 10x8; the square covers x 2..4, y 2..4 in frame i − 1 and x 4..6, y 3..5
    // in frame i.
    // - Disoccluded (background in frame i where the square was in frame i − 1:
    //   ŵ = 0, w̃ = (2, 1), |w̃ + ŵ|² = 5 > 0.01·5 + 0.5): y 2: x 2, 3, 4; y 3 and
    //   y 4: x 2, 3. On the square itself w̃ = (2, 1) = −ŵ: consistent.
    // - Motion boundary: the central difference (f(x+1) − f(x−1))/2 is non-zero
    //   where the two neighbours lie on different sides of the square's edge,
    //   i.e. the last column (row) outside and the first inside on each side:
    //   rows 3..5 at x 3, 4, 6, 7 and columns 4..6 at y 2, 3, 5, 6. There
    //   |∇û|² + |∇v̂|² ≥ 1² + 0.5² = 1.25, above 0.01·5 + 0.002 on the square and
    //   0.002 off it. The square's centre (5, 4) and the diagonal corners stay 1.
    const MovingSquare scene = moving_square(10, 8, Square{2, 2, 3}, 2, 1);
    const std::string expected =
        "..........\n"
        "..........\n"
        "..00000...\n"
        "..000000..\n"
        "..000.00..\n"
        "...00000..\n"
        "....000...\n"
        "..........\n";
    CHECK(as_map(nst::consistency_weights(scene.to_earlier, scene.earlier_to_this), 10, 8) == expected);
}

TEST_CASE("consistency: squares moving by other steps, the zeros from the rule", "[consistency]") {
    // The same derivation as above for any square of side ≥ 3 away from the frame's
    // edge and any integer step that is not (0, 0): zero on the disoccluded part
    // (old square minus new) and on the two-pixel band across the new square's
    // edges (a pixel whose left and right, or upper and lower, neighbours differ
    // in being on the square).
    const int width = 40, height = 30;
    struct Move { int dx, dy; };
    for (const Move move : {Move{1, 0}, Move{0, -1}, Move{3, 2}, Move{-4, 1}, Move{-2, -5}, Move{7, 0}}) {
        const Square before{14, 10, 6};
        const Square after{before.x0 + move.dx, before.y0 + move.dy, before.side};
        const MovingSquare scene = moving_square(width, height, before, move.dx, move.dy);
        std::vector<float> expected(std::size_t(width) * height, 1.0f);
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) {
                const bool disoccluded = before.contains(x, y) && !after.contains(x, y);
                const bool boundary = after.contains(x - 1, y) != after.contains(x + 1, y) ||
                                      after.contains(x, y - 1) != after.contains(x, y + 1);
                if (disoccluded || boundary) expected[std::size_t(y) * width + x] = 0.0f;
            }
        INFO("move (" << move.dx << ", " << move.dy << ")");
        CHECK(as_map(nst::consistency_weights(scene.to_earlier, scene.earlier_to_this), width, height) ==
              as_map(expected, width, height));
    }
}

TEST_CASE("consistency: points that flow out of the frame get 0", "[consistency]") {
    // A uniform pan of 2.5 pixels to the right (ŵ = (2.5, 0), w = (−2.5, 0)): the
    // round trip is exact and the flow smooth, so only the edge matters.
    // x + 2.5 ≤ 9 holds for x ≤ 6: columns 7, 8, 9 of the 10 leave the frame.
    const int width = 10, height = 4;
    const std::vector<float> right = nst::consistency_weights(constant_flow(width, height, 2.5f, 0.0f),
                                                              constant_flow(width, height, -2.5f, 0.0f));
    CHECK(as_map(right, width, height) == ".......000\n.......000\n.......000\n.......000\n");
    // Up by 1 (ŵ = (0, −1)): row 0 leaves the frame (y − 1 < 0); the last row
    // maps onto the last but one, inside.
    const std::vector<float> up = nst::consistency_weights(constant_flow(width, height, 0.0f, -1.0f),
                                                           constant_flow(width, height, 0.0f, 1.0f));
    CHECK(as_map(up, width, height) == "0000000000\n..........\n..........\n..........\n");
    // Landing exactly on the last pixel centre is inside: ŵ = (9, 0) keeps column 0.
    const std::vector<float> far = nst::consistency_weights(constant_flow(width, 1, 9.0f, 0.0f),
                                                            constant_flow(width, 1, -9.0f, 0.0f));
    CHECK(as_map(far, width, 1) == ".000000000\n");
}

TEST_CASE("consistency: zero flow gives all ones", "[consistency]") {
    for (const auto& [width, height] : {std::pair{1, 1}, std::pair{1, 7}, std::pair{9, 1}, std::pair{64, 48}}) {
        const nst::Flow zero = constant_flow(width, height, 0, 0);
        const std::vector<float> weights = nst::consistency_weights(zero, zero);
        CHECK(weights == std::vector<float>(std::size_t(width) * height, 1.0f));
    }
}

TEST_CASE("consistency: the border's gradient is one-sided", "[consistency]") {
    // û = a = 0.08 in column 0, 0 elsewhere; w = 0 (|w̃ + ŵ|² = a² passes the
    // round trip easily), so only the gradient can zero a pixel. The threshold in
    // column 0 is 0.01·a² + 0.002 = 0.002064. One-sided there: (0 − a)² = 0.0064,
    // above it: 0. A halved difference, (a/2)² = 0.0016, would stay below (and a
    // phantom 0 beyond the edge gives 0): this a tells the one-sided rule apart.
    // Column 1, central: ((0 − a)/2)² = 0.0016 ≤ 0.002: 1.
    const int width = 6, height = 3;
    nst::Flow to_earlier = constant_flow(width, height, 0, 0);
    const nst::Flow earlier_to_this = to_earlier;
    for (int y = 0; y < height; ++y) to_earlier.at(0, y, 0) = 0.08f;
    CHECK(as_map(nst::consistency_weights(to_earlier, earlier_to_this), width, height) ==
          "0.....\n0.....\n0.....\n");
    // The same on the last row, along y.
    nst::Flow vertical = constant_flow(width, height, 0, 0);
    for (int x = 0; x < width; ++x) vertical.at(1, height - 1, x) = -0.08f;
    CHECK(as_map(nst::consistency_weights(vertical, earlier_to_this), width, height) ==
          "......\n......\n000000\n");
}

TEST_CASE("consistency: flows of different sizes are refused", "[consistency]") {
    CHECK_THROWS_WITH(nst::consistency_weights(constant_flow(8, 6, 0, 0), constant_flow(6, 8, 0, 0)),
                      "consistency weights: flows of different sizes (8x6 and 6x8)");
}

TEST_CASE("long_term_weights: each pixel compared with its nearest visible frame", "[consistency]") {
    // c for J = {1, 2, 4}, six pixels; c_long^(j) = max(c^(j) − Σ_{k<j} c^(k), 0).
    const std::vector<std::vector<float>> short_weights{
        {1, 1, 0, 0, 1, 0},   // j = 1
        {1, 0, 1, 0, 1, 1},   // j = 2
        {0, 1, 1, 1, 1, 0}};  // j = 4
    const std::vector<std::vector<float>> expected{
        {1, 1, 0, 0, 1, 0},   // the nearest frame keeps all it sees
        {0, 0, 1, 0, 0, 1},   // pixels 2 and 5: hidden in frame i − 1 only
        {0, 0, 0, 1, 0, 0}};  // pixel 3: seen only 4 frames back
    CHECK(nst::long_term_weights(short_weights) == expected);
    CHECK(nst::long_term_weights({}).empty());
    CHECK(nst::long_term_weights({{0, 1}}) == std::vector<std::vector<float>>{{0, 1}});
    CHECK_THROWS_WITH(nst::long_term_weights({{1, 1}, {1}}),
                      "long-term weights: masks of different sizes (2 and 1 pixels)");
}

TEST_CASE("zero_unknown: pixels without a flow get weight 0", "[consistency]") {
    std::vector<float> weights{1, 1, 0, 1};
    nst::zero_unknown(weights, {false, true, true, false});
    CHECK(weights == std::vector<float>{1, 0, 0, 1});
    CHECK_THROWS_AS(nst::zero_unknown(weights, {true}), nst::UsageError);
}
