// Stylises a tiny image in memory through the installed library: random weights
// of VGG-19's topology (4 channels a layer), a noise start, 10 L-BFGS
// iterations on the CPU. Exits 0 when the loss fell and the image is finite.
#include <nst/nst.h>

#include <cmath>
#include <cstdio>
#include <random>

int main() {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);

    nst::VggWeights weights;
    weights.source = "random, for the package check";
    int in_channels = 3;
    for (const std::string& name : nst::vgg19_layer_names()) {
        nst::ConvWeights layer;
        layer.name = name;
        layer.in_channels = in_channels;
        layer.out_channels = 4;
        const float scale = std::sqrt(2.0f / (9.0f * float(in_channels)));  // He
        for (int i = 0; i < 4 * in_channels * 9; ++i) layer.weight.push_back(scale * normal(rng));
        for (int o = 0; o < 4; ++o) layer.bias.push_back(0.01f * normal(rng));
        weights.layers.push_back(layer);
        in_channels = 4;
    }

    const auto random_image = [&](int width, int height) {
        nst::Image image;
        image.width = width;
        image.height = height;
        for (std::size_t i = 0; i < 3 * image.plane(); ++i) image.pixels.push_back(uniform(rng));
        return image;
    };
    nst::TransferRequest request;
    request.content = random_image(32, 24);
    request.styles = {random_image(24, 24)};
    request.size = 32;
    request.iterations = 10;
    request.init = "noise";
    request.device = "cpu";

    double first_loss = 0.0, last_loss = 0.0;
    nst::TransferCallbacks callbacks;
    callbacks.on_iteration = [&](const nst::TransferProgress& progress) {
        if (progress.iteration == 0) first_loss = progress.terms.loss;
        last_loss = progress.terms.loss;
        return true;
    };
    try {
        const nst::TransferResult result = nst::run_transfer(weights, request, callbacks);
        for (float v : result.image.pixels)
            if (!std::isfinite(v)) {
                std::fprintf(stderr, "nst-consumer: non-finite pixel\n");
                return 1;
            }
        std::printf("nst-consumer: %dx%d image on %s, loss %.6g -> %.6g after %d iterations\n",
                    result.image.width, result.image.height, result.backend.c_str(), first_loss,
                    last_loss, result.optimization.iterations);
        return last_loss < first_loss && result.optimization.iterations == 10 ? 0 : 1;
    } catch (const nst::Error& e) {
        std::fprintf(stderr, "nst-consumer: %s\n", e.what());
        return 1;
    }
}
