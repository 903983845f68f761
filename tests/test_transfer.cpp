// engine/run/transfer.h, the API every front end uses: the CLI's result through it
// bit for bit, the loss terms each report carries, early stop and cancel, and
// validation with the CLI's messages.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>

#include "engine/base/error.h"
#include "engine/io/weights.h"
#include "engine/run/transfer.h"
#include "tests/test_support.h"

using namespace nst;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

// A small request on the narrow network (fast on the CPU).
TransferRequest small_request() {
    TransferRequest r;
    r.content = test::random_image(40, 32, 21);
    r.styles = {test::random_image(36, 36, 22)};
    r.size = 40;
    r.iterations = 8;
    r.init = "noise";
    r.seed = 5;
    r.device = "cpu";
    r.lbfgs_history = 5;
    return r;
}

}  // namespace

TEST_CASE("transfer: the same bits for 1, 2 and 3 threads, untiled and tiled", "[transfer][threads]") {
    // The CPU backend splits its work the same way for any thread count
    // (engine/backends/cpu/cpu_winograd.h, kWorkSplit); real VGG-19 widths, so
    // the convolutions take the paths a real run takes (Winograd F(4×4) and
    // F(2×2), shared and per-thread blocks, im2col for conv1_1).
    const VggWeights weights = read_weights(test::shared_weights_path());
    TransferRequest request;
    request.content = test::random_image(80, 60, 41);
    request.styles = {test::random_image(64, 64, 42)};
    request.size = 80;
    request.iterations = 4;
    request.device = "cpu";
    for (const int tile : {0, 48}) {
        CAPTURE(tile);
        request.tile = tile;
        std::vector<float> first;
        for (const int threads : {1, 2, 3}) {
            CAPTURE(threads);
            request.threads = threads;
            const TransferResult result = run_transfer(weights, request);
            REQUIRE(result.optimization.iterations == 4);
            if (threads == 1)
                first = result.image.pixels;
            else
                CHECK(result.image.pixels == first);
        }
    }
}

TEST_CASE("transfer: the API gives the CLI's image bit for bit", "[transfer]") {
    test::TempDir dir("transfer-cli");
    const VggWeights weights = test::narrow_vgg19(23);
    write_weights(dir.file("narrow.h5"), weights);
    TransferRequest request = small_request();
    save_image(dir.file("content.png"), request.content);
    save_image(dir.file("style.png"), request.styles[0]);
    // The CLI decodes the PNGs, which hold the 8-bit rounding of the random
    // pixels: give the API the same decoded images.
    request.content = load_image(dir.file("content.png"));
    request.styles = {load_image(dir.file("style.png"))};

    const auto cli = test::run_command(
        quote(test::cli_path()) + " --content " + quote(dir.file("content.png")) + " --style " +
        quote(dir.file("style.png")) + " --weights " + quote(dir.file("narrow.h5")) +
        " --output " + quote(dir.file("cli.png")) +
        " --device cpu --size 40 --iterations 8 --init noise --seed 5 --lbfgs-history 5 --quiet");
    INFO(cli.err);
    REQUIRE(cli.exit_code == 0);

    const TransferResult result = run_transfer(weights, request);
    save_image(dir.file("api.png"), result.image);
    CHECK(result.optimization.iterations == 8);
    CHECK(test::read_file(dir.file("api.png")) == test::read_file(dir.file("cli.png")));
}

TEST_CASE("transfer: each report carries the loss terms of its own iterate", "[transfer]") {
    const VggWeights weights = test::narrow_vgg19(24);
    TransferRequest request = small_request();
    request.tv_weight = 1e-3;
    for (const char* line_search : {"fixed", "wolfe"}) {
        request.line_search = line_search;
        int reports = 0;
        TransferCallbacks callbacks;
        callbacks.on_iteration = [&](const TransferProgress& p) {
            ++reports;
            // L = α L_c + β L_s + γ L_tv of the same evaluation: terms from another
            // evaluation (a line search's later trial point) would not add up.
            const double sum = request.content_weight * p.terms.content +
                               default_style_weight(request, weights) * p.terms.style +
                               request.tv_weight * p.terms.tv;
            INFO(line_search << " iteration " << p.iteration << ": loss " << p.terms.loss
                             << ", terms add up to " << sum);
            CHECK(p.terms.content > 0.0);
            CHECK(p.terms.style > 0.0);
            // The sum in a different order than the objective's: a few ulp.
            CHECK(std::fabs(sum - p.terms.loss) <= 1e-14 * std::fabs(p.terms.loss));
            return true;
        };
        const TransferResult result = run_transfer(weights, request, callbacks);
        CHECK(reports == result.optimization.iterations + 1);
    }
}

TEST_CASE("transfer: a callback or the cancel flag stops after the iteration", "[transfer]") {
    const VggWeights weights = test::narrow_vgg19(25);
    const TransferRequest request = small_request();
    SECTION("callback returns false") {
        TransferCallbacks callbacks;
        callbacks.on_iteration = [](const TransferProgress& p) { return p.iteration < 3; };
        const TransferResult result = run_transfer(weights, request, callbacks);
        CHECK(result.stopped_early);
        CHECK(result.optimization.iterations == 3);
        CHECK(result.image.width == 40);
    }
    SECTION("cancel flag set from elsewhere") {
        std::atomic<bool> cancel{false};
        TransferCallbacks callbacks;
        callbacks.cancel = &cancel;
        callbacks.on_iteration = [&](const TransferProgress& p) {
            if (p.iteration == 2) cancel = true;  // as a signal handler or another thread would
            return true;
        };
        const TransferResult result = run_transfer(weights, request, callbacks);
        CHECK(result.stopped_early);
        CHECK(result.optimization.iterations == 2);
    }
}

TEST_CASE("transfer: bad requests are usage errors with the CLI's messages", "[transfer]") {
    const VggWeights weights = test::narrow_vgg19(26);
    const auto refused = [&](auto&& change, const std::string& message) {
        TransferRequest request = small_request();
        change(request);
        CHECK_THROWS_AS(run_transfer(weights, request), UsageError);
        CHECK_THROWS_WITH(run_transfer(weights, request), Catch::Matchers::Contains(message));
    };
    refused([](TransferRequest& r) { r.style_scale = 9; }, "--style-scale must be in (0, 8]");
    refused([](TransferRequest& r) { r.style_weight = -1; }, "--style-weight must be a finite number >= 0");
    refused([](TransferRequest& r) { r.style_blend_weights = {1, 2}; }, "--style-blend-weights has 2 values for 1");
    refused([](TransferRequest& r) { r.optimizer = "sgd"; }, "--optimizer: 'sgd' is not one of lbfgs, adam");
    refused([](TransferRequest& r) { r.style_layers = {"conv9_9"}; }, "conv9_9");
    refused([](TransferRequest& r) { r.styles.clear(); }, "no style image given");
    refused([](TransferRequest& r) { r.init = "image"; }, "--init image needs an initial image");
    refused([](TransferRequest& r) { r.scale_sizes = {64, 32}; }, "--scale-sizes must increase");
    refused([](TransferRequest& r) { r.device = "gpu"; }, "gpu");
    // Weights whose products overflow the objective, and learning rates past any
    // meaningful step (TransferRequest::max_weight, max_learning_rate).
    refused([](TransferRequest& r) { r.style_weight = 1e308; }, "--style-weight must be at most 1e24");
    refused([](TransferRequest& r) { r.content_weight = 2e24; }, "--content-weight must be at most 1e24");
    refused([](TransferRequest& r) { r.tv_weight = 1e25; }, "--tv-weight must be at most 1e24");
    refused([](TransferRequest& r) { r.learning_rate = 1e30; }, "--learning-rate must be at most 1e6");
    refused([](TransferRequest& r) { r.styles.push_back(r.styles[0]); r.style_blend_weights = {1e308, 1e308}; },
            "--style-blend-weights must be at most 1e24");
}

TEST_CASE("transfer: an image too small for the deepest layer is named", "[transfer]") {
    const VggWeights weights = test::narrow_vgg19(26);
    TransferRequest request = small_request();
    Image thin;
    thin.width = 400;
    thin.height = 4;
    thin.pixels.assign(3 * 400 * 4, 0.5f);
    request.styles = {request.styles[0], thin};
    // Unnamed: by position; named (as the CLI does): by file.
    CHECK_THROWS_AS(run_transfer(weights, request), InputError);
    CHECK_THROWS_WITH(run_transfer(weights, request), Catch::Matchers::Contains("style image 2 (400x4)"));
    request.style_names = {"a.png", "thin.png"};
    CHECK_THROWS_WITH(run_transfer(weights, request), Catch::Matchers::Contains("style image 'thin.png'"));
    // The deepest layer decides: conv1_1 (no pool before it) takes a 1-pixel side.
    request.style_layers = {"conv1_1"};
    request.content_layers = {"conv1_2"};
    CHECK_NOTHROW(request.validate_images());
}
