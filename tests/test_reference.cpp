// Tier 3 (DESIGN.md, "Tests"): the engine against an independent implementation.
// tests/reference/generate_fixtures.py computes, with PyTorch in float64, the
// activations, Gram matrices, loss terms, image gradient and fixed-step L-BFGS
// trajectory for a narrow VGG-19 (tests/reference/narrow_vgg19.h5) and small
// images (tests/reference/objective_fixture.h5). Inputs are float32, so the
// reference is the exact answer to the engine's float32 problem and every
// difference below is the engine's own rounding (or a bug).
//
// How the tolerances were chosen: the generator also runs the same computation
// in float32 PyTorch and prints how far it lands from the float64 reference. An
// honest float32 implementation differs from it only in summation order
// (im2col + SGEMM here, PyTorch's own kernels there), so it should land at the
// same distance. Each bound below is about 10-20× that measured distance: wide
// enough for a different summation order, and still 3-4 orders of magnitude
// below what any real mistake (a wrong pad, bias, channel order, pool, index or
// normalisation) produces, which moves values by percents.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/io/image.h"
#include "engine/objective/objective.h"
#include "engine/optim/optimizer.h"
#include "engine/io/weights.h"
#include "tests/test_support.h"

namespace {

const char* const kRegenerate =
    "re-generate with: /usr/bin/python3 tests/reference/generate_fixtures.py";
const char* const kFixtureFormat = "nst-reference";
const int kFixtureVersion = 1;

std::string reference_path(const std::string& name) {
    return nst::test::source_dir() + "/tests/reference/" + name;
}

// ---- reading the fixtures (HDF5 C API) ----------------------------------------------

// One HDF5 identifier, closed by the matching H5?close on destruction.
class Handle {
public:
    Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    ~Handle() {
        if (id_ >= 0) close_(id_);
    }
    Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle& operator=(Handle&&) = delete;
    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }

private:
    hid_t id_;
    herr_t (*close_)(hid_t);
};

// A fixture file opened read-only; its header is checked on opening. Every
// failure throws with the file, the object and the regeneration hint, since a
// missing or misshapen object means the fixture and this test disagree.
class Fixture {
public:
    explicit Fixture(const std::string& name)
        : path_(reference_path(name)), file_(open(path_), H5Fclose) {
        const std::string format = string_attribute("/", "fixture_format");
        const double version = number_attribute("/", "fixture_version");
        if (format != kFixtureFormat || version != kFixtureVersion) {
            std::ostringstream message;
            message << path_ << " is fixture format '" << format << "' version " << version
                    << ", this test reads '" << kFixtureFormat << "' version " << kFixtureVersion
                    << "; " << kRegenerate;
            throw std::runtime_error(message.str());
        }
    }

    const std::string& path() const { return path_; }

    // A dataset converted to double (exact from float32), with its shape.
    std::vector<double> doubles(const std::string& name, std::vector<hsize_t>* shape = nullptr) const {
        std::vector<double> values;
        read_dataset(name, H5T_NATIVE_DOUBLE, values, shape);
        return values;
    }
    std::vector<float> floats(const std::string& name, std::vector<hsize_t>* shape = nullptr) const {
        std::vector<float> values;
        read_dataset(name, H5T_NATIVE_FLOAT, values, shape);
        return values;
    }

    // A (3, H, W) dataset as an image.
    nst::Image image(const std::string& name) const {
        std::vector<hsize_t> shape;
        nst::Image image;
        image.pixels = floats(name, &shape);
        if (shape.size() != 3 || shape[0] != 3) fail(name, "is not a (3, H, W) image");
        image.height = static_cast<int>(shape[1]);
        image.width = static_cast<int>(shape[2]);
        return image;
    }

    std::string string_attribute(const std::string& object, const std::string& name) const {
        const Handle attribute = open_attribute(object, name);
        const Handle file_type(H5Aget_type(attribute.get()), H5Tclose);
        if (H5Tget_class(file_type.get()) != H5T_STRING) fail(object + "@" + name, "is not a string");
        const Handle memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_cset(memory_type.get(), H5Tget_cset(file_type.get()));
        if (H5Tis_variable_str(file_type.get()) > 0) {
            H5Tset_size(memory_type.get(), H5T_VARIABLE);
            char* text = nullptr;
            if (H5Aread(attribute.get(), memory_type.get(), &text) < 0) fail(object + "@" + name, "cannot be read");
            std::string value = text ? text : "";
            H5free_memory(text);
            return value;
        }
        const std::size_t size = H5Tget_size(file_type.get());
        std::string value(size + 1, '\0');
        H5Tset_size(memory_type.get(), size + 1);
        if (H5Aread(attribute.get(), memory_type.get(), value.data()) < 0) fail(object + "@" + name, "cannot be read");
        value.resize(value.find('\0'));
        return value;
    }

    std::vector<double> numbers_attribute(const std::string& object, const std::string& name) const {
        const Handle attribute = open_attribute(object, name);
        const Handle space(H5Aget_space(attribute.get()), H5Sclose);
        const hssize_t count = H5Sget_simple_extent_npoints(space.get());
        if (count < 1) fail(object + "@" + name, "is empty");
        std::vector<double> values(static_cast<std::size_t>(count));
        if (H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, values.data()) < 0)
            fail(object + "@" + name, "is not numeric");
        return values;
    }
    double number_attribute(const std::string& object, const std::string& name) const {
        const std::vector<double> values = numbers_attribute(object, name);
        if (values.size() != 1) fail(object + "@" + name, "is not a scalar");
        return values[0];
    }

private:
    static hid_t open(const std::string& path) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures are reported by the throws below
        const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        if (file < 0) throw std::runtime_error("cannot open " + path + "; " + kRegenerate);
        return file;
    }

    [[noreturn]] void fail(const std::string& object, const std::string& why) const {
        throw std::runtime_error(path_ + ": " + object + " " + why + "; " + kRegenerate);
    }

    Handle open_attribute(const std::string& object, const std::string& name) const {
        if (H5Aexists_by_name(file_.get(), object.c_str(), name.c_str(), H5P_DEFAULT) <= 0)
            fail(object + "@" + name, "is missing");
        Handle attribute(H5Aopen_by_name(file_.get(), object.c_str(), name.c_str(), H5P_DEFAULT,
                                         H5P_DEFAULT),
                         H5Aclose);
        if (!attribute.valid()) fail(object + "@" + name, "cannot be opened");
        return attribute;
    }

    template <typename T>
    void read_dataset(const std::string& name, hid_t memory_type, std::vector<T>& values,
                      std::vector<hsize_t>* shape) const {
        if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) <= 0) fail(name, "is missing");
        const Handle dataset(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
        if (!dataset.valid()) fail(name, "cannot be opened");
        const Handle space(H5Dget_space(dataset.get()), H5Sclose);
        const int rank = H5Sget_simple_extent_ndims(space.get());
        if (rank < 0) fail(name, "has no readable shape");
        std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
        H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
        std::size_t count = 1;
        for (hsize_t d : dims) count *= static_cast<std::size_t>(d);
        values.resize(count);
        if (H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
            fail(name, "cannot be read");
        if (shape) *shape = dims;
    }

    std::string path_;
    Handle file_;
};

// ---- objective settings from a fixture group ------------------------------------------

std::vector<std::string> split_names(const std::string& text) {
    std::vector<std::string> names;
    std::stringstream stream(text);
    for (std::string name; std::getline(stream, name, ',');) names.push_back(name);
    return names;
}

std::vector<nst::LayerWeight> layer_weights(const Fixture& fixture, const std::string& group,
                                            const std::string& kind) {
    const std::vector<std::string> names = split_names(fixture.string_attribute(group, kind + "_layers"));
    const std::vector<double> weights = fixture.numbers_attribute(group, kind + "_layer_weights");
    if (names.size() != weights.size())
        throw std::runtime_error(fixture.path() + ": " + group + " has " + std::to_string(names.size()) +
                                 " " + kind + " layers but " + std::to_string(weights.size()) +
                                 " weights; " + kRegenerate);
    std::vector<nst::LayerWeight> layers;
    for (std::size_t i = 0; i < names.size(); ++i) layers.push_back({names[i], weights[i]});
    return layers;
}

nst::ObjectiveConfig objective_config(const Fixture& fixture, const std::string& group) {
    nst::ObjectiveConfig config;
    config.content_layers = layer_weights(fixture, group, "content");
    config.style_layers = layer_weights(fixture, group, "style");
    config.content_weight = fixture.number_attribute(group, "content_weight");
    config.style_weight = fixture.number_attribute(group, "style_weight");
    config.tv_weight = fixture.number_attribute(group, "tv_weight");
    const std::string pool = fixture.string_attribute(group, "pool");
    if (pool != "average" && pool != "max")
        throw std::runtime_error(fixture.path() + ": " + group + " has pool '" + pool + "'; " + kRegenerate);
    config.pool = pool == "max" ? nst::PoolMode::max : nst::PoolMode::average;
    return config;
}

// The engine set up as the fixture's group describes it: narrow network, the
// group's objective, content and style images set.
struct Setup {
    Fixture fixture{"objective_fixture.h5"};
    nst::CpuBackend backend;
    nst::VggWeights weights;
    nst::Image content, style, x;
    std::unique_ptr<nst::StyleTransferObjective> objective;

    explicit Setup(const std::string& group) {
        const Fixture weights_fixture("narrow_vgg19.h5");  // checks that file's header too
        weights = nst::read_weights(weights_fixture.path());
        content = fixture.image("content");
        style = fixture.image("style");
        x = fixture.image("x");
        objective = std::make_unique<nst::StyleTransferObjective>(
            backend, weights, objective_config(fixture, group), content.width, content.height);
        objective->set_content(content);
        objective->set_styles({style});
    }
};

double max_abs(const std::vector<double>& values) {
    double m = 0.0;
    for (double v : values) m = std::max(m, std::fabs(v));
    return m;
}

// |a − r| ≤ atol + rtol·|r| elementwise, and ‖a − r‖₂ / ‖r‖₂ ≤ max_relative_l2.
template <typename A>
void check_close(const std::string& what, const std::vector<A>& actual,
                 const std::vector<double>& reference, double atol, double rtol,
                 double max_relative_l2) {
    const nst::test::Comparison result = nst::test::compare(actual, reference, atol, rtol);
    INFO(what << " (atol " << atol << ", rtol " << rtol << ", relative L2 bound " << max_relative_l2
              << ")\n" << result.report);
    CHECK(result.ok);
    CHECK(result.relative_l2 <= max_relative_l2);
}

void check_scalar(const std::string& what, double actual, double reference, double rtol) {
    INFO(what << ": engine " << actual << ", reference " << reference << ", relative error "
              << std::fabs(actual - reference) / std::fabs(reference) << ", rtol " << rtol);
    CHECK(std::fabs(actual - reference) <= rtol * std::fabs(reference));
}

// ---- tolerances -------------------------------------------------------------------------
// Measured float32-PyTorch distances are those the generator prints; both pools.

// Activations: float32 PyTorch lands within 5.9e-7·max|F| of every element of
// every layer (conv1_1..conv5_1), with a relative L2 error ≤ 5.4e-7, the error
// growing slowly with depth. An element near zero is the cancellation of terms
// of the layer's size, so its error scales with the layer's largest value, not
// its own: atol = 1e-5·max|F| (17×); rtol 2e-5 covers the large elements;
// relative L2 ≤ 1e-5 (18×).
constexpr double kActivationAtolScale = 1e-5;
constexpr double kActivationRtol = 2e-5;
constexpr double kActivationRelativeL2 = 1e-5;

// Gram matrices (A^l of the style image and G^l of x): sums of M ≤ 1665
// products of non-negative activations, so no cancellation among the products;
// an entry's error follows its own size, plus the near-zero activations' share,
// which follows the layer's scale. Float32 PyTorch: largest error 5.3e-7·max|G|,
// relative L2 7.5e-7. atol = 1e-5·max|G| (19×), rtol 2e-5, relative L2 ≤ 1e-5 (13×).
constexpr double kGramAtolScale = 1e-5;
constexpr double kGramRtol = 2e-5;
constexpr double kGramRelativeL2 = 1e-5;

// Loss terms (one evaluation): float32 PyTorch is within 1.8e-6 of every E_l
// and 1.5e-6 of L, L_c, L_s (E_l squares G − A, which cancels partly, hence
// the largest of these). rtol 2e-5 (≥10×).
constexpr double kLossRtol = 2e-5;
// L_tv is a direct sum over the float32 image (no network): float32 PyTorch is
// within 3e-8 even though it accumulates in float32; 1e-6 leaves room for any
// summation order.
constexpr double kTvRtol = 1e-6;

// Gradient w.r.t. the image: float32 PyTorch reaches a relative L2 error of
// 1.4e-6 and a largest element error of 1.3e-6·max|∂L/∂x|. Back-propagated
// elements are sums of terms of the gradient's size, so atol = 2e-5·max|∂L/∂x|
// (15×); rtol 2e-5; relative L2 ≤ 2e-5 (14×).
constexpr double kGradientAtolScale = 2e-5;
constexpr double kGradientRtol = 2e-5;
constexpr double kGradientRelativeL2 = 2e-5;

// L-BFGS trajectory (20 losses). The first is one evaluation at the content
// image: kLossRtol. Later ones compound: each iterate depends on all earlier
// gradients through the history, fixed steps (no line search) pass rounding on
// unchecked, and a ReLU switching on in one iterate and not in the other is a
// discrete event. Measured with float32 PyTorch and with a float32 replica of
// this engine's L-BFGS (double dot products) on this fixture and on nearby
// choices of α, β, γ: relative loss errors of 1e-7..1e-5 typically, 2e-4 at
// worst, reached in the last iterations. rtol 1e-3 (5× that worst case) is
// still 10-30× below the loss decrease of one iteration here (1-3 %, 10 % for
// the first), so a wrong first step, scaling γ = sᵀy/yᵀy or history order
// fails at once. The relative L2 error of the whole trajectory averages over
// the 20 losses: 3.2e-5 in that worst case, bound 3e-4 (9×).
constexpr double kTrajectoryRtol = 1e-3;
constexpr double kTrajectoryRelativeL2 = 3e-4;
// The image after 20 iterations (values around [0,1]): the same experiments
// moved it by at most 3.3e-4 per pixel and 1.2e-4 in relative L2. atol 2e-3
// (6×, half an 8-bit level), relative L2 ≤ 1e-3 (8×).
constexpr double kFinalImageAtol = 2e-3;
constexpr double kFinalImageRelativeL2 = 1e-3;

constexpr int kTrajectoryLength = 20;

const std::vector<std::string>& activation_layers() {
    static const std::vector<std::string> layers = {
        "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
        "conv3_4", "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1"};
    return layers;
}

}  // namespace

TEST_CASE("reference fixtures have the expected header and narrow network", "[reference]") {
    const Fixture fixture("objective_fixture.h5");
    const Fixture weights_fixture("narrow_vgg19.h5");
    CHECK(fixture.string_attribute("/", "weights_file") == "narrow_vgg19.h5");

    // The network is read as the generator wrote it: BGR with Caffe's mean and a
    // non-unit std, so the preprocessing is exercised in full.
    const nst::VggWeights weights = nst::read_weights(weights_fixture.path());
    CHECK(weights.preprocessing.bgr == (weights_fixture.string_attribute("/", "color_order") == "BGR"));
    CHECK(weights.preprocessing.bgr);
    CHECK(weights.preprocessing.pixel_scale == float(weights_fixture.number_attribute("/", "pixel_scale")));
    const std::vector<double> mean = weights_fixture.numbers_attribute("/", "mean");
    const std::vector<double> std_dev = weights_fixture.numbers_attribute("/", "std");
    REQUIRE(mean.size() == 3);
    REQUIRE(std_dev.size() == 3);
    for (int c = 0; c < 3; ++c) {
        CHECK(weights.preprocessing.mean[c] == float(mean[c]));
        CHECK(weights.preprocessing.std[c] == float(std_dev[c]));
        CHECK(weights.preprocessing.std[c] != 1.0f);
    }
    REQUIRE(weights.layers.size() == 16);
    for (const nst::ConvWeights& layer : weights.layers) {
        INFO(layer.name);
        std::vector<hsize_t> shape;
        const std::vector<float> weight = weights_fixture.floats("/" + layer.name + "/weight", &shape);
        REQUIRE(shape.size() == 4);
        CHECK(layer.out_channels == int(shape[0]));
        CHECK(layer.in_channels == int(shape[1]));
        CHECK(layer.weight == weight);
        CHECK(layer.bias == weights_fixture.floats("/" + layer.name + "/bias"));
    }
}

TEST_CASE("narrow VGG-19 activations and content targets match PyTorch", "[reference]") {
    const std::string group = GENERATE(as<std::string>{}, "average", "max");
    INFO("pooling: " << group);
    Setup setup(group);

    for (const std::string& layer : activation_layers()) {
        const std::vector<double> reference = setup.fixture.doubles(group + "/activations/" + layer);
        check_close(group + " activation " + layer + " of x", setup.objective->activation(setup.x, layer),
                    reference, kActivationAtolScale * max_abs(reference), kActivationRtol,
                    kActivationRelativeL2);
    }
    // P^l: the content image's activation, as set_content stores it.
    for (const nst::LayerWeight& layer : setup.objective->config().content_layers) {
        const std::vector<double> reference = setup.fixture.doubles(group + "/content_targets/" + layer.layer);
        check_close(group + " content target " + layer.layer,
                    setup.objective->activation(setup.content, layer.layer), reference,
                    kActivationAtolScale * max_abs(reference), kActivationRtol, kActivationRelativeL2);
    }
}

TEST_CASE("style targets and Gram matrices match PyTorch", "[reference]") {
    const std::string group = GENERATE(as<std::string>{}, "average", "max");
    INFO("pooling: " << group);
    Setup setup(group);

    for (const nst::LayerWeight& layer : setup.objective->config().style_layers) {
        // A^l comes from the style image at its own size (29×33, not the output's 37×45).
        const std::vector<double> target = setup.fixture.doubles(group + "/style_targets/" + layer.layer);
        check_close(group + " style target A of " + layer.layer, setup.objective->style_target(layer.layer),
                    target, kGramAtolScale * max_abs(target), kGramRtol, kGramRelativeL2);

        // G^l of x through the backend's Gram op on the engine's own activation.
        const std::vector<float> features = setup.objective->activation(setup.x, layer.layer);
        const int n = setup.objective->network().channels(nst::vgg19_layer_index(layer.layer));
        const std::size_t m = features.size() / static_cast<std::size_t>(n);
        nst::Buffer feature_buffer(setup.backend, features.size());
        nst::Buffer gram_buffer(setup.backend, static_cast<std::size_t>(n) * n);
        setup.backend.upload(feature_buffer.data(), features.data(), features.size());
        setup.backend.gram(n, m, feature_buffer.data(), gram_buffer.data());
        std::vector<float> gram(gram_buffer.size());
        setup.backend.download(gram.data(), gram_buffer.data(), gram.size());
        const std::vector<double> reference = setup.fixture.doubles(group + "/grams/" + layer.layer);
        check_close(group + " Gram G of x at " + layer.layer, gram, reference,
                    kGramAtolScale * max_abs(reference), kGramRtol, kGramRelativeL2);
    }
}

TEST_CASE("loss terms and the image gradient match PyTorch", "[reference]") {
    const std::string group = GENERATE(as<std::string>{}, "average", "max");
    INFO("pooling: " << group);
    Setup setup(group);

    nst::Buffer x(setup.backend, setup.x.pixels.size());
    nst::Buffer grad(setup.backend, setup.x.pixels.size());
    setup.backend.upload(x.data(), setup.x.pixels.data(), setup.x.pixels.size());
    const double loss = setup.objective->evaluate(x.data(), grad.data());
    const nst::LossTerms& terms = setup.objective->last_terms();

    const std::string loss_group = group + "/loss";
    const double reference_total = setup.fixture.number_attribute(loss_group, "total");
    check_scalar(group + " L (returned)", loss, reference_total, kLossRtol);
    check_scalar(group + " L (last_terms)", terms.loss, reference_total, kLossRtol);
    check_scalar(group + " L_c", terms.content, setup.fixture.number_attribute(loss_group, "content"), kLossRtol);
    check_scalar(group + " L_s", terms.style, setup.fixture.number_attribute(loss_group, "style"), kLossRtol);
    check_scalar(group + " L_tv", terms.tv, setup.fixture.number_attribute(loss_group, "tv"), kTvRtol);
    const std::vector<double> per_layer = setup.fixture.numbers_attribute(loss_group, "style_per_layer");
    REQUIRE(terms.style_per_layer.size() == per_layer.size());
    for (std::size_t i = 0; i < per_layer.size(); ++i)
        check_scalar(group + " E_l of " + setup.objective->config().style_layers[i].layer,
                     terms.style_per_layer[i], per_layer[i], kLossRtol);

    std::vector<float> gradient(setup.x.pixels.size());
    setup.backend.download(gradient.data(), grad.data(), gradient.size());
    const std::vector<double> reference = setup.fixture.doubles(group + "/gradient");
    check_close(group + " dL/dx", gradient, reference, kGradientAtolScale * max_abs(reference),
                kGradientRtol, kGradientRelativeL2);
}

TEST_CASE("fixed-step L-BFGS follows torch.optim.LBFGS", "[reference]") {
    const std::string group = GENERATE(as<std::string>{}, "average", "max");
    INFO("pooling: " << group);
    Setup setup(group);
    const std::string lbfgs = group + "/lbfgs";
    // The settings the reference ran with are the engine's defaults.
    const nst::LbfgsOptions options;
    REQUIRE(setup.fixture.string_attribute(lbfgs, "init") == "content");
    REQUIRE(setup.fixture.string_attribute(lbfgs, "line_search") == "none");
    REQUIRE(options.line_search == nst::LineSearch::fixed);
    REQUIRE(setup.fixture.number_attribute(lbfgs, "lr") == options.learning_rate);
    REQUIRE(setup.fixture.number_attribute(lbfgs, "history_size") == options.history);
    REQUIRE(setup.fixture.number_attribute(lbfgs, "max_iter") == kTrajectoryLength);

    nst::Buffer x(setup.backend, setup.content.pixels.size());
    setup.backend.upload(x.data(), setup.content.pixels.data(), setup.content.pixels.size());
    std::vector<nst::IterationReport> reports;
    const nst::OptimizationResult result = nst::minimize_lbfgs(
        setup.backend, *setup.objective, x.data(), kTrajectoryLength, options,
        [&](const nst::IterationReport& report) {
            reports.push_back(report);
            return true;
        });
    INFO(result.message);
    REQUIRE(result.reason == nst::StopReason::iterations);
    CHECK(result.iterations == kTrajectoryLength);
    // Iteration 0 is the start, then one report per iteration; the reference
    // has torch's closure evaluations at x_0..x_19 (torch never evaluates x_20).
    REQUIRE(reports.size() == kTrajectoryLength + 1);
    for (std::size_t k = 0; k < reports.size(); ++k) {
        INFO("report " << k << ": iteration " << reports[k].iteration << ", event '" << reports[k].event << "'");
        CHECK(reports[k].iteration == int(k));
        CHECK(reports[k].evaluations == int(k) + 1);  // fixed mode: one evaluation per iteration
        CHECK(reports[k].event.empty());
    }

    const std::vector<double> reference = setup.fixture.doubles(lbfgs + "/losses");
    REQUIRE(reference.size() == kTrajectoryLength);
    check_scalar(group + " loss at the content image (evaluation 0)", reports[0].loss, reference[0], kLossRtol);
    std::vector<double> losses;
    for (int k = 0; k < kTrajectoryLength; ++k) losses.push_back(reports[k].loss);
    check_close(group + " L-BFGS loss trajectory", losses, reference, 0.0, kTrajectoryRtol,
                kTrajectoryRelativeL2);

    std::vector<float> final_image(setup.content.pixels.size());
    setup.backend.download(final_image.data(), x.data(), final_image.size());
    check_close(group + " image after 20 iterations", final_image,
                setup.fixture.doubles(lbfgs + "/final_image"), kFinalImageAtol, 0.0,
                kFinalImageRelativeL2);
}
