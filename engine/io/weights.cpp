// nst-vgg19 HDF5 weights, format version 1 (DESIGN.md, "Weights file"), through the
// HDF5 C API. Every hid_t is owned by a small RAII handle so that an early throw
// closes what was opened; HDF5's automatic error printing is switched off while
// we work, so a bad file yields only our one-line message.
//
// Reading happens in a child process (engine/io/hdf5_isolation.h): libhdf5 1.10 crashes,
// hangs or allocates gigabytes on hostile files, so the parse below runs under limits
// and hands the weights back over a pipe; the parent checks them again with the
// writer's rules. Inside the child the reader still trusts nothing: links must be hard
// links (an external link would open another file, a FIFO hangs), data must be stored
// inside the file (no external raw storage, no virtual datasets), every shape is
// bounded by what VGG-19 can be and compared with the bytes the file really stores
// before anything is allocated, and every attribute's type class, size and count are
// checked before it is read.
//
// Reading: root attributes first (format, then version, then preprocessing), then
// the groups conv1_1 ... in order until the first missing one. Shapes are checked
// before any data is read, so a file claiming a huge tensor is refused before we
// allocate for it. Data is read as native float: HDF5 applies the file's filters
// (gzip, shuffle) and converts float64 (or other floating types) on the way.
//
// The `source` attribute is required when writing and optional when reading (it
// is provenance only; a missing one reads as ""). Root string attributes other
// than the format's own are kept in `extra_attributes`; other root attributes and
// all group attributes (e.g. `exact`) are ignored.

#include "engine/io/weights.h"

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "engine/base/error.h"
#include "engine/io/hdf5_checks.h"
#include "engine/io/hdf5_handles.h"
#include "engine/io/hdf5_isolation.h"
#include "engine/io/weights_isolated.h"

namespace nst {

namespace {

using hdf5::Attribute;
using hdf5::Dataset;
using hdf5::Dataspace;
using hdf5::Datatype;
using hdf5::File;
using hdf5::Group;
using hdf5::PropertyList;
using hdf5::QuietHdf5Errors;

// File access: lock the file where the file system supports locks, and carry on
// without where it does not (network and read-only mounts).
PropertyList file_access_list() {
    PropertyList fapl(H5Pcreate(H5P_FILE_ACCESS));
#if H5_VERSION_GE(1, 10, 7)
    if (fapl.valid()) H5Pset_file_locking(fapl.get(), true, true);
#endif
    return fapl;
}

// ---- messages -------------------------------------------------------------------------

// The file a message is about: every message starts with "weights '<path>': " (or
// `subject` and ": " when set, e.g. "Keras weights '<path>'").
struct Where {
    std::string path;
    std::string subject;
    std::string prefix() const { return (subject.empty() ? "weights '" + path + "'" : subject) + ": "; }
    InputError input_error(const std::string& what) const { return InputError(prefix() + what); }
    RuntimeFailure failure(const std::string& what) const { return RuntimeFailure(prefix() + what); }
};

std::string format_number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
}

template <typename T>
std::string format_list(const std::vector<T>& values) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
    out << ']';
    return out.str();
}

std::string layer_path(int index) { return "/" + vgg19_layer_names()[index]; }

// ---- rules shared by reading and writing -----------------------------------------------

constexpr int kLayerCount = 16;
constexpr hsize_t kMaxChannels = kMaxWeightChannels;
constexpr std::size_t kMaxParameters = kMaxWeightParameters;
// Strings (source, extra attributes) and how many extra attributes a file may carry.
constexpr std::size_t kMaxStringBytes = 65536;
constexpr std::size_t kMaxExtraAttributes = 256;
// dims is the shape of /<layer>/weight; previous_out is the C_out of the layer
// before (0 for conv1_1).
void check_weight_shape(const Where& where, int index, const std::vector<hsize_t>& dims,
                        hsize_t previous_out) {
    const std::string name = layer_path(index) + "/weight";
    if (dims.size() != 4)
        throw where.input_error(name + " has rank " + std::to_string(dims.size()) +
                                ", expected 4 [C_out, C_in, 3, 3]");
    const std::string shape = name + " has shape " + format_list(dims);
    if (dims[2] != 3 || dims[3] != 3)
        throw where.input_error(shape + " but the kernel must be 3x3");
    if (dims[0] < 1) throw where.input_error(shape + " but C_out must be at least 1");
    if (dims[0] > kMaxChannels || dims[1] > kMaxChannels)
        throw where.input_error(shape + " but channel counts must be at most " +
                                std::to_string(kMaxChannels));
    if (index == 0 && dims[1] != 3)
        throw where.input_error(shape + " but conv1_1's C_in must be 3 (colour channels)");
    if (index > 0 && dims[1] != previous_out)
        throw where.input_error(shape + " but C_in must equal " +
                                vgg19_layer_names()[index - 1] + "'s C_out = " +
                                std::to_string(previous_out));
}

void check_bias_shape(const Where& where, int index, const std::vector<hsize_t>& dims,
                      hsize_t out_channels) {
    if (dims.size() != 1 || dims[0] != out_channels)
        throw where.input_error(layer_path(index) + "/bias has shape " + format_list(dims) +
                                " but must be [C_out] = [" + std::to_string(out_channels) + "]");
}

// Reports the first non-finite value with its multi-index in `dims`.
void check_finite(const Where& where, const std::string& name, const std::vector<float>& values,
                  const std::vector<hsize_t>& dims) {
    const auto bad = std::find_if(values.begin(), values.end(),
                                  [](float v) { return !std::isfinite(v); });
    if (bad == values.end()) return;
    const std::size_t flat = static_cast<std::size_t>(bad - values.begin());
    std::vector<hsize_t> position(dims.size());
    std::size_t rest = flat;
    for (std::size_t d = dims.size(); d-- > 0;) {
        position[d] = rest % dims[d];
        rest /= dims[d];
    }
    throw where.input_error(name + " has a non-finite value (" + format_number(*bad) + ") at " +
                            format_list(position) + " (flat index " + std::to_string(flat) +
                            ")");
}

void check_preprocessing(const Where& where, const Preprocessing& pre) {
    if (!std::isfinite(pre.pixel_scale) || !(pre.pixel_scale > 0.0f))
        throw where.input_error("attribute 'pixel_scale' is " + format_number(pre.pixel_scale) +
                                ", expected a finite number > 0");
    const std::vector<double> mean(pre.mean, pre.mean + 3), std_dev(pre.std, pre.std + 3);
    for (int c = 0; c < 3; ++c) {
        if (!std::isfinite(pre.mean[c]))
            throw where.input_error("attribute 'mean' is " + format_list(mean) +
                                    ", expected finite values");
        if (!std::isfinite(pre.std[c]) || !(pre.std[c] > 0.0f))
            throw where.input_error("attribute 'std' is " + format_list(std_dev) +
                                    ", expected finite values > 0");
    }
}

const std::set<std::string>& format_attribute_names() {
    static const std::set<std::string> names = {"format", "format_version", "color_order",
                                                "pixel_scale", "mean", "std", "source"};
    return names;
}

// ---- reading --------------------------------------------------------------------------

using hdf5::type_class_name;

void require_hard_link(const Where& where, hid_t location, const std::string& name,
                       const std::string& path) {
    hdf5::require_hard_link(where.prefix(), location, name, path);
}

Attribute open_attribute(const Where& where, hid_t object, const std::string& name,
                         bool required) {
    const htri_t exists = H5Aexists(object, name.c_str());
    if (exists < 0) throw where.input_error("cannot read attribute '" + name + "'");
    if (exists == 0) {
        if (required) throw where.input_error("attribute '" + name + "' is missing");
        return Attribute();
    }
    Attribute attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT));
    if (!attribute.valid()) throw where.input_error("cannot open attribute '" + name + "'");
    return attribute;
}

// Element count of an attribute's dataspace (scalar: 1).
hssize_t attribute_size(const Where& where, const Attribute& attribute, const std::string& name) {
    Dataspace space(H5Aget_space(attribute.get()));
    const hssize_t count = space.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
    if (count < 0) throw where.input_error("cannot read the shape of attribute '" + name + "'");
    return count;
}

// One string, fixed-length (any padding) or variable-length.
std::string read_string_attribute(const Where& where, const Attribute& attribute,
                                  const std::string& name) {
    Datatype file_type(H5Aget_type(attribute.get()));
    if (!file_type.valid()) throw where.input_error("cannot read attribute '" + name + "'");
    const H5T_class_t type_class = H5Tget_class(file_type.get());
    if (type_class != H5T_STRING)
        throw where.input_error("attribute '" + name + "' has " + type_class_name(type_class) +
                                " type, expected a string");
    if (attribute_size(where, attribute, name) != 1)
        throw where.input_error("attribute '" + name + "' must hold exactly one string");

    if (H5Tis_variable_str(file_type.get()) > 0) {
        // Variable-length strings (h5py's default, and nst before fixed-length ones) are
        // read from HDF5's global heap, the code where hostile files crashed libhdf5 1.10
        // most often: read here only because this runs in the isolated child.
        Datatype memory_type(H5Tcopy(H5T_C_S1));
        if (!memory_type.valid() || H5Tset_size(memory_type.get(), H5T_VARIABLE) < 0 ||
            H5Tset_cset(memory_type.get(), H5Tget_cset(file_type.get())) < 0)
            throw where.input_error("cannot read attribute '" + name + "'");
        char* text = nullptr;
        if (H5Aread(attribute.get(), memory_type.get(), &text) < 0)
            throw where.input_error("cannot read attribute '" + name + "'");
        std::string value = text ? text : "";
        H5free_memory(text);
        return value;
    }
    const std::size_t size = H5Tget_size(file_type.get());
    if (size == 0) throw where.input_error("cannot read attribute '" + name + "'");
    if (size > kMaxStringBytes)
        throw where.input_error("attribute '" + name + "' is a string of " + std::to_string(size) +
                                " bytes, at most " + std::to_string(kMaxStringBytes) + " allowed");
    std::string value(size, '\0');
    Datatype memory_type(H5Tcopy(file_type.get()));
    if (!memory_type.valid() || H5Aread(attribute.get(), memory_type.get(), value.data()) < 0)
        throw where.input_error("cannot read attribute '" + name + "'");
    value.resize(std::min(value.find('\0'), value.size()));
    if (H5Tget_strpad(file_type.get()) == H5T_STR_SPACEPAD)
        value.erase(value.find_last_not_of(' ') + 1);
    return value;
}

std::string read_string_attribute(const Where& where, hid_t object, const std::string& name,
                                  bool required) {
    const Attribute attribute = open_attribute(where, object, name, required);
    return attribute.valid() ? read_string_attribute(where, attribute, name) : std::string();
}

long long read_integer_attribute(const Where& where, hid_t object, const std::string& name) {
    const Attribute attribute = open_attribute(where, object, name, true);
    Datatype file_type(H5Aget_type(attribute.get()));
    const H5T_class_t type_class =
        file_type.valid() ? H5Tget_class(file_type.get()) : H5T_NO_CLASS;
    if (type_class != H5T_INTEGER)
        throw where.input_error("attribute '" + name + "' has " + type_class_name(type_class) +
                                " type, expected an integer");
    if (attribute_size(where, attribute, name) != 1)
        throw where.input_error("attribute '" + name + "' must hold exactly one integer");
    if (H5Tget_size(file_type.get()) > 16)
        throw where.input_error("attribute '" + name + "' has an integer type wider than 128 bits");
    long long value = 0;
    if (H5Aread(attribute.get(), H5T_NATIVE_LLONG, &value) < 0)
        throw where.input_error("cannot read attribute '" + name + "'");
    return value;
}

// `count` floating-point values, converted to float by HDF5.
void read_float_attribute(const Where& where, hid_t object, const std::string& name,
                          hssize_t count, float* values) {
    const Attribute attribute = open_attribute(where, object, name, true);
    Datatype file_type(H5Aget_type(attribute.get()));
    const H5T_class_t type_class =
        file_type.valid() ? H5Tget_class(file_type.get()) : H5T_NO_CLASS;
    if (type_class != H5T_FLOAT)
        throw where.input_error("attribute '" + name + "' has " + type_class_name(type_class) +
                                " type, expected floating point");
    if (H5Tget_size(file_type.get()) > 16)
        throw where.input_error("attribute '" + name + "' has a floating-point type wider than 128 bits");
    const hssize_t size = attribute_size(where, attribute, name);
    if (size != count)
        throw where.input_error("attribute '" + name + "' has " + std::to_string(size) +
                                " values, expected " + std::to_string(count));
    if (H5Aread(attribute.get(), H5T_NATIVE_FLOAT, values) < 0)
        throw where.input_error("cannot read attribute '" + name + "'");
}

// Names of all attributes on an object, in name order. The callback must not
// throw through HDF5's C frames, so it only records names.
std::vector<std::string> attribute_names(const Where& where, hid_t object) {
    std::vector<std::string> names;
    const auto collect = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        try {
            static_cast<std::vector<std::string>*>(data)->emplace_back(name);
            return 0;
        } catch (...) {
            return -1;
        }
    };
    hsize_t position = 0;
    if (H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &position, collect, &names) < 0)
        throw where.input_error("cannot list the root attributes");
    return names;
}

Preprocessing read_preprocessing(const Where& where, hid_t root) {
    Preprocessing pre;
    const std::string color_order = read_string_attribute(where, root, "color_order", true);
    if (color_order != "RGB" && color_order != "BGR")
        throw where.input_error("attribute 'color_order' is '" + color_order +
                                "', expected 'RGB' or 'BGR'");
    pre.bgr = color_order == "BGR";
    read_float_attribute(where, root, "pixel_scale", 1, &pre.pixel_scale);
    read_float_attribute(where, root, "mean", 3, pre.mean);
    read_float_attribute(where, root, "std", 3, pre.std);
    check_preprocessing(where, pre);
    return pre;
}

// An open floating-point dataset and its shape.
struct FloatDataset {
    Dataset dataset;
    std::vector<hsize_t> dims;
};

FloatDataset open_float_dataset(const Where& where, const Group& group,
                                const std::string& group_path, const char* dataset_name) {
    const std::string name = group_path + "/" + dataset_name;
    const htri_t exists = H5Lexists(group.get(), dataset_name, H5P_DEFAULT);
    if (exists <= 0) throw where.input_error(name + " is missing");
    require_hard_link(where, group.get(), dataset_name, name);
    FloatDataset result{Dataset(H5Dopen2(group.get(), dataset_name, H5P_DEFAULT)), {}};
    if (!result.dataset.valid()) throw where.input_error(name + " is not a dataset");

    Datatype type(H5Dget_type(result.dataset.get()));
    const H5T_class_t type_class = type.valid() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
    if (type_class != H5T_FLOAT)
        throw where.input_error(name + " has " + type_class_name(type_class) +
                                " type, expected floating point");

    Dataspace space(H5Dget_space(result.dataset.get()));
    if (!space.valid() || H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE)
        throw where.input_error(name + " is not an array");
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) throw where.input_error("cannot read the shape of " + name);
    result.dims.resize(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), result.dims.data(), nullptr);
    hdf5::check_filters(where.prefix(), result.dataset.get(), name);
    hdf5::check_storage_is_inside(where.prefix(), result.dataset.get(), name);
    return result;
}

std::size_t element_count(const std::vector<hsize_t>& dims) {
    std::size_t count = 1;
    for (const hsize_t d : dims) count *= static_cast<std::size_t>(d);
    return count;
}

std::vector<float> read_floats(const Where& where, const FloatDataset& source,
                               const std::string& name) {
    // Before allocating: a 9 KB file must not make us allocate gigabytes.
    hdf5::check_stored_size(where.prefix(), source.dataset.get(), element_count(source.dims), name);
    std::vector<float> values(element_count(source.dims));
    if (H5Dread(source.dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                values.data()) < 0)
        throw where.input_error("cannot read " + name + " (damaged or truncated data)");
    check_finite(where, name, values, source.dims);
    return values;
}

ConvWeights read_layer(const Where& where, hid_t root, int index, hsize_t previous_out,
                       std::size_t& parameters) {
    const std::string group_path = layer_path(index);
    require_hard_link(where, root, vgg19_layer_names()[index], group_path);
    Group group(H5Gopen2(root, vgg19_layer_names()[index].c_str(), H5P_DEFAULT));
    if (!group.valid()) throw where.input_error(group_path + " is not a group");

    const FloatDataset weight = open_float_dataset(where, group, group_path, "weight");
    check_weight_shape(where, index, weight.dims, previous_out);
    const FloatDataset bias = open_float_dataset(where, group, group_path, "bias");
    check_bias_shape(where, index, bias.dims, weight.dims[0]);
    parameters += element_count(weight.dims) + element_count(bias.dims);
    if (parameters > kMaxParameters)
        throw where.input_error("the layers up to " + group_path + " hold " +
                                std::to_string(parameters) + " parameters, more than the " +
                                std::to_string(kMaxParameters) + " a weights file may hold");

    ConvWeights layer;
    layer.name = vgg19_layer_names()[index];
    layer.out_channels = static_cast<int>(weight.dims[0]);
    layer.in_channels = static_cast<int>(weight.dims[1]);
    layer.weight = read_floats(where, weight, group_path + "/weight");
    layer.bias = read_floats(where, bias, group_path + "/bias");
    return layer;
}

bool link_exists(hid_t root, const std::string& name) {
    return H5Lexists(root, name.c_str(), H5P_DEFAULT) > 0;
}

// ---- files that are not HDF5 ----------------------------------------------------------

std::uint32_t little_endian(const std::string& bytes, std::size_t at, int count) {
    std::uint32_t value = 0;
    for (int k = count - 1; k >= 0; --k) value = (value << 8) | static_cast<unsigned char>(bytes[at + k]);
    return value;
}

bool is_pickle_record(const std::string& name) {
    const std::string record = "data.pkl";
    return name == record || (name.size() > record.size() &&
                              name.compare(name.size() - record.size() - 1, std::string::npos, "/" + record) == 0);
}

// Whether `path` is a PyTorch checkpoint, as torch.save writes them: since PyTorch 1.6
// a zip archive with a record "<name>/data.pkl" (the pickled object; its first record,
// but every name of the central directory is looked at), before that a pickle
// (protocol 2) that begins with torch's magic number 0x1950a86a20f9469cfc6c.
bool is_pytorch_checkpoint(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string head(64, '\0');
    in.read(head.data(), std::streamsize(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
    static const char legacy_magic[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
    if (head.compare(0, sizeof legacy_magic - 1, legacy_magic, sizeof legacy_magic - 1) == 0) return true;
    if (head.compare(0, 4, "PK\x03\x04") != 0 || head.size() < 30) return false;
    // The first local header's name (offset 30, its length at 26).
    const std::size_t first_name = little_endian(head, 26, 2);
    std::string name(first_name, '\0');
    in.clear();
    in.seekg(30);
    in.read(name.data(), std::streamsize(name.size()));
    if (in && is_pickle_record(name)) return true;
    // The central directory, from the end-of-central-directory record in the last
    // 64 KiB + 22 bytes (a comment may precede it by up to 65535 bytes).
    in.clear();
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    const std::streamoff tail_size = std::min<std::streamoff>(size, 65535 + 22);
    std::string tail(static_cast<std::size_t>(tail_size), '\0');
    in.seekg(size - tail_size);
    in.read(tail.data(), tail_size);
    const std::size_t end_record = tail.rfind("PK\x05\x06");
    if (!in || end_record == std::string::npos || end_record + 22 > tail.size()) return false;
    const std::uint32_t directory_size = little_endian(tail, end_record + 12, 4);
    const std::uint32_t directory_offset = little_endian(tail, end_record + 16, 4);
    if (directory_size > (16u << 20) || std::streamoff(directory_offset) + directory_size > size) return false;
    std::string directory(directory_size, '\0');
    in.seekg(directory_offset);
    in.read(directory.data(), directory_size);
    if (!in) return false;
    for (std::size_t at = 0; at + 46 <= directory.size() && directory.compare(at, 4, "PK\x01\x02") == 0;) {
        const std::size_t name_length = little_endian(directory, at + 28, 2);
        const std::size_t skip = 46 + name_length + little_endian(directory, at + 30, 2) +
                                 little_endian(directory, at + 32, 2);
        if (at + 46 + name_length > directory.size()) return false;
        if (is_pickle_record(directory.substr(at + 46, name_length))) return true;
        at += skip;
    }
    return false;
}

// A Keras weights file (Keras' save_weights: the attribute layer_names, split into
// layer_names0, 1, ... when large; a whole saved model: the group /model_weights).
bool is_keras_file(hid_t root) {
    return H5Aexists(root, "layer_names") > 0 || H5Aexists(root, "layer_names0") > 0 ||
           H5Lexists(root, "model_weights", H5P_DEFAULT) > 0;
}

File open_for_reading(const Where& where) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::file_status status = fs::status(where.path, error);
    if (status.type() == fs::file_type::not_found) throw where.input_error("no such file");
    if (error) throw where.input_error("cannot access (" + error.message() + ")");
    if (status.type() != fs::file_type::regular) throw where.input_error("not a regular file");
    if (!std::ifstream(where.path, std::ios::binary))
        throw where.input_error("cannot be read (" + std::string(std::strerror(errno)) + ")");

    if (H5Fis_hdf5(where.path.c_str()) <= 0) {
        if (is_pytorch_checkpoint(where.path))
            throw where.input_error(
                "not an HDF5 file but a PyTorch checkpoint: convert it to nst-vgg19 with "
                "weights_tools/convert_torch.py IN.pth OUT.h5 (installed as nst-convert-torch)");
        throw where.input_error("not an HDF5 file");
    }
    const PropertyList access = file_access_list();
    File file(H5Fopen(where.path.c_str(), H5F_ACC_RDONLY, access.get()));
    if (!file.valid())
        throw where.input_error("cannot open as HDF5 (the file is truncated or damaged)");
    return file;
}

// ---- writing --------------------------------------------------------------------------

void check_for_writing(const Where& where, const VggWeights& weights) {
    check_preprocessing(where, weights.preprocessing);
    const auto& names = vgg19_layer_names();
    if (weights.layers.empty()) throw where.input_error("no layers (at least conv1_1 is needed)");
    if (weights.layers.size() > names.size())
        throw where.input_error(std::to_string(weights.layers.size()) +
                                " layers, VGG-19 has 16");
    hsize_t previous_out = 0;
    std::size_t parameters = 0;
    for (std::size_t i = 0; i < weights.layers.size(); ++i) {
        const ConvWeights& layer = weights.layers[i];
        const int index = static_cast<int>(i);
        if (layer.name != names[i])
            throw where.input_error("layer " + std::to_string(i) + " is named '" + layer.name +
                                    "', expected '" + names[i] +
                                    "' (layers run from conv1_1 without gaps)");
        if (layer.out_channels < 0 || layer.in_channels < 0)
            throw where.input_error(layer_path(index) + " has negative channel counts");
        const std::vector<hsize_t> dims = {static_cast<hsize_t>(layer.out_channels),
                                           static_cast<hsize_t>(layer.in_channels), 3, 3};
        check_weight_shape(where, index, dims, previous_out);
        if (layer.weight.size() != element_count(dims))
            throw where.input_error(layer_path(index) + "/weight holds " +
                                    std::to_string(layer.weight.size()) + " values but " +
                                    format_list(dims) + " needs " +
                                    std::to_string(element_count(dims)));
        check_bias_shape(where, index, {static_cast<hsize_t>(layer.bias.size())}, dims[0]);
        check_finite(where, layer_path(index) + "/weight", layer.weight, dims);
        check_finite(where, layer_path(index) + "/bias", layer.bias, {dims[0]});
        previous_out = dims[0];
        parameters += layer.weight.size() + layer.bias.size();
        if (parameters > kMaxParameters)
            throw where.input_error("more than " + std::to_string(kMaxParameters) +
                                    " parameters (VGG-19 has 20.0 M)");
    }
    if (weights.source.size() >= kMaxStringBytes)
        throw where.input_error("the source text is longer than " +
                                std::to_string(kMaxStringBytes - 1) + " bytes");
    if (weights.extra_attributes.size() > kMaxExtraAttributes)
        throw where.input_error("more than " + std::to_string(kMaxExtraAttributes) +
                                " extra attributes");
    for (const auto& [name, value] : weights.extra_attributes) {
        if (name.empty() || format_attribute_names().count(name))
            throw where.input_error("extra attribute '" + name +
                                    "' clashes with the format's own attributes");
        if (name.size() >= kMaxStringBytes || value.size() >= kMaxStringBytes ||
            name.find('\0') != std::string::npos || value.find('\0') != std::string::npos)
            throw where.input_error("extra attribute '" + name.substr(0, 64) +
                                    "' is longer than " + std::to_string(kMaxStringBytes - 1) +
                                    " bytes or holds a NUL byte");
    }
}

void write_string_attribute(const Where& where, hid_t object, const std::string& name,
                            const std::string& value) {
    // Fixed-length, NUL-terminated UTF-8: read without HDF5's global heap, whose
    // variable-length string code is where libhdf5 1.10 crashed most on hostile files.
    // (h5py reads it as bytes; nst before this wrote variable-length strings.)
    Datatype type(H5Tcopy(H5T_C_S1));
    Dataspace space(H5Screate(H5S_SCALAR));
    if (!type.valid() || !space.valid() || H5Tset_size(type.get(), value.size() + 1) < 0 ||
        H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
        throw where.failure("cannot make a string type for attribute '" + name + "'");
    Attribute attribute(
        H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!attribute.valid() || H5Awrite(attribute.get(), type.get(), value.c_str()) < 0)
        throw where.failure("cannot write attribute '" + name + "'");
}

// A scalar when count is 1 (pixel_scale, format_version), otherwise [count].
void write_numeric_attribute(const Where& where, hid_t object, const std::string& name,
                             hid_t file_type, hid_t memory_type, hsize_t count,
                             const void* values) {
    Dataspace space(count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, nullptr));
    Attribute attribute(space.valid() ? H5Acreate2(object, name.c_str(), file_type, space.get(),
                                                   H5P_DEFAULT, H5P_DEFAULT)
                                      : -1);
    if (!attribute.valid() || H5Awrite(attribute.get(), memory_type, values) < 0)
        throw where.failure("cannot write attribute '" + name + "'");
}

// float32, chunked along the first axis (about 256 KiB a chunk), gzip level 4:
// on VGG-19 it writes about 3x faster than level 6 for a file 7 % larger.
void write_float_dataset(const Where& where, hid_t group, const std::string& group_path,
                         const char* dataset_name, const std::vector<hsize_t>& dims,
                         const std::vector<float>& values) {
    const std::string name = group_path + "/" + dataset_name;
    const int rank = static_cast<int>(dims.size());
    std::vector<hsize_t> chunk = dims;
    const hsize_t row = element_count(dims) / dims[0];
    chunk[0] = std::clamp<hsize_t>(hsize_t{65536} / row, 1, dims[0]);

    Dataspace space(H5Screate_simple(rank, dims.data(), nullptr));
    PropertyList create_list(H5Pcreate(H5P_DATASET_CREATE));
    if (!space.valid() || !create_list.valid() ||
        H5Pset_chunk(create_list.get(), rank, chunk.data()) < 0 ||
        H5Pset_deflate(create_list.get(), 4) < 0 ||
        // No modification times: the same weights give the same bytes.
        H5Pset_obj_track_times(create_list.get(), false) < 0)
        throw where.failure("cannot set up " + name);
    Dataset dataset(H5Dcreate2(group, dataset_name, H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                               create_list.get(), H5P_DEFAULT));
    if (!dataset.valid() || H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                                     H5P_DEFAULT, values.data()) < 0)
        throw where.failure("cannot write " + name);
}

void write_contents(const Where& where, hid_t root, const VggWeights& weights) {
    const Preprocessing& pre = weights.preprocessing;
    const int version = 1;
    write_string_attribute(where, root, "format", "nst-vgg19");
    write_numeric_attribute(where, root, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 1,
                            &version);
    write_string_attribute(where, root, "color_order", pre.bgr ? "BGR" : "RGB");
    write_numeric_attribute(where, root, "pixel_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1,
                            &pre.pixel_scale);
    write_numeric_attribute(where, root, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, pre.mean);
    write_numeric_attribute(where, root, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, pre.std);
    write_string_attribute(where, root, "source", weights.source);
    for (const auto& [name, value] : weights.extra_attributes)
        write_string_attribute(where, root, name, value);

    for (std::size_t i = 0; i < weights.layers.size(); ++i) {
        const ConvWeights& layer = weights.layers[i];
        const std::string group_path = layer_path(static_cast<int>(i));
        PropertyList group_list(H5Pcreate(H5P_GROUP_CREATE));
        if (!group_list.valid() || H5Pset_obj_track_times(group_list.get(), false) < 0)
            throw where.failure("cannot set up group " + group_path);
        Group group(H5Gcreate2(root, layer.name.c_str(), H5P_DEFAULT, group_list.get(), H5P_DEFAULT));
        if (!group.valid()) throw where.failure("cannot create group " + group_path);
        const hsize_t out = static_cast<hsize_t>(layer.out_channels);
        write_float_dataset(where, group.get(), group_path, "weight",
                            {out, static_cast<hsize_t>(layer.in_channels), 3, 3}, layer.weight);
        write_float_dataset(where, group.get(), group_path, "bias", {out}, layer.bias);
    }
}

// A file beside the target that is removed unless it was renamed into place.
class TemporaryFile {
public:
    explicit TemporaryFile(const std::string& target) {
        static std::atomic<unsigned> counter{0};
        const std::filesystem::path path(target);
        const std::string stem = "." + path.filename().string() + ".tmp-" +
                                 std::to_string(::getpid()) + "-";
        do {
            path_ = (path.parent_path() / (stem + std::to_string(counter++))).string();
        } while (std::filesystem::exists(path_));
    }
    ~TemporaryFile() {
        if (!path_.empty()) std::remove(path_.c_str());
    }
    TemporaryFile(const TemporaryFile&) = delete;
    TemporaryFile& operator=(const TemporaryFile&) = delete;
    const std::string& path() const { return path_; }
    void renamed() { path_.clear(); }

private:
    std::string path_;
};

// The parse itself; runs in the isolated child (read_weights).
VggWeights parse_weights(const Where& where) {
    const QuietHdf5Errors quiet;
    const File file = open_for_reading(where);
    const hid_t root = file.get();

    if (H5Aexists(root, "format") == 0 && is_keras_file(root))
        throw where.input_error(
            "a Keras weights file, not nst-vgg19 (no attribute 'format'): convert it with "
            "nst-weights import-keras IN.h5 OUT.h5");
    const std::string format = read_string_attribute(where, root, "format", true);
    if (format != "nst-vgg19")
        throw where.input_error("attribute 'format' is '" + format + "', expected 'nst-vgg19'");
    const long long version = read_integer_attribute(where, root, "format_version");
    if (version != 1)
        throw where.input_error("attribute 'format_version' is " + std::to_string(version) +
                                ", expected 1");

    VggWeights weights;
    weights.preprocessing = read_preprocessing(where, root);
    weights.source = read_string_attribute(where, root, "source", false);
    for (const std::string& name : attribute_names(where, root)) {
        if (format_attribute_names().count(name)) continue;
        const Attribute attribute = open_attribute(where, root, name, true);
        Datatype type(H5Aget_type(attribute.get()));
        if (!type.valid() || H5Tget_class(type.get()) != H5T_STRING) continue;
        if (weights.extra_attributes.size() == kMaxExtraAttributes || name.size() > kMaxStringBytes)
            throw where.input_error("more than " + std::to_string(kMaxExtraAttributes) +
                                    " string attributes, or one with a name of more than " +
                                    std::to_string(kMaxStringBytes) + " bytes");
        weights.extra_attributes[name] = read_string_attribute(where, attribute, name);
    }

    const auto& names = vgg19_layer_names();
    if (!link_exists(root, names[0]))
        throw where.input_error("missing layer /conv1_1 (a weights file holds at least conv1_1)");
    int index = 0;
    hsize_t previous_out = 0;
    std::size_t parameters = 0;
    for (; index < kLayerCount && link_exists(root, names[index]); ++index) {
        weights.layers.push_back(read_layer(where, root, index, previous_out, parameters));
        previous_out = static_cast<hsize_t>(weights.layers.back().out_channels);
    }
    for (int later = index + 1; later < kLayerCount; ++later) {
        if (link_exists(root, names[later]))
            throw where.input_error("missing layer /" + names[index] + ": /" + names[later] +
                                    " is present, and layers must run from conv1_1 without gaps");
    }
    return weights;
}

// ---- the answer of the isolated child: length-prefixed, checked again by the parent ----

constexpr std::uint32_t kAnswerMagic = 0x3157534e;  // "NSW1"

void send_weights(isolation::Writer& out, const VggWeights& weights) {
    out.u32(kAnswerMagic);
    const Preprocessing& pre = weights.preprocessing;
    out.u8(pre.bgr ? 1 : 0);
    out.f32(pre.pixel_scale);
    for (int c = 0; c < 3; ++c) out.f32(pre.mean[c]);
    for (int c = 0; c < 3; ++c) out.f32(pre.std[c]);
    out.text(weights.source);
    out.u32(static_cast<std::uint32_t>(weights.extra_attributes.size()));
    for (const auto& [name, value] : weights.extra_attributes) {
        out.text(name);
        out.text(value);
    }
    out.u32(static_cast<std::uint32_t>(weights.layers.size()));
    for (const ConvWeights& layer : weights.layers) {
        out.u32(static_cast<std::uint32_t>(layer.out_channels));
        out.u32(static_cast<std::uint32_t>(layer.in_channels));
        out.floats(layer.weight);
        out.floats(layer.bias);
    }
}

// Every count is bounded before anything is allocated for it; then the whole result
// must pass the writer's rules (names, chained shapes, finite values, preprocessing).
VggWeights receive_weights(const Where& where, isolation::Reader& in) {
    using Broken = isolation::Reader::Broken;
    if (in.u32() != kAnswerMagic) throw Broken{"the answer does not start with its magic number"};
    VggWeights weights;
    Preprocessing& pre = weights.preprocessing;
    const std::uint8_t bgr = in.u8();
    if (bgr > 1) throw Broken{"color order " + std::to_string(bgr)};
    pre.bgr = bgr == 1;
    pre.pixel_scale = in.f32();
    for (int c = 0; c < 3; ++c) pre.mean[c] = in.f32();
    for (int c = 0; c < 3; ++c) pre.std[c] = in.f32();
    weights.source = in.text(kMaxStringBytes);
    const std::uint32_t extra_count = in.u32();
    if (extra_count > kMaxExtraAttributes)
        throw Broken{std::to_string(extra_count) + " extra attributes"};
    for (std::uint32_t i = 0; i < extra_count; ++i) {
        std::string name = in.text(kMaxStringBytes);
        weights.extra_attributes[std::move(name)] = in.text(kMaxStringBytes);
    }
    if (weights.extra_attributes.size() != extra_count) throw Broken{"repeated attribute names"};
    const std::uint32_t layer_count = in.u32();
    if (layer_count < 1 || layer_count > std::uint32_t(kLayerCount))
        throw Broken{std::to_string(layer_count) + " layers"};
    std::size_t parameters = 0;
    for (std::uint32_t l = 0; l < layer_count; ++l) {
        ConvWeights layer;
        layer.name = vgg19_layer_names()[l];
        const std::uint32_t out = in.u32(), in_channels = in.u32();
        if (out < 1 || out > kMaxChannels || in_channels < 1 || in_channels > kMaxChannels)
            throw Broken{layer.name + " has " + std::to_string(out) + " x " +
                         std::to_string(in_channels) + " channels"};
        layer.out_channels = static_cast<int>(out);
        layer.in_channels = static_cast<int>(in_channels);
        const std::size_t weight_count = std::size_t(out) * in_channels * 9;
        parameters += weight_count + out;
        if (parameters > kMaxParameters) throw Broken{"more than the parameters allowed"};
        layer.weight = in.floats(weight_count);
        layer.bias = in.floats(out);
        if (layer.weight.size() != weight_count || layer.bias.size() != out)
            throw Broken{layer.name + " has arrays of the wrong length"};
        weights.layers.push_back(std::move(layer));
    }
    try {
        check_for_writing(where, weights);
    } catch (const InputError& e) {
        const std::string message = e.what();
        throw Broken{message.substr(std::min(message.size(), where.prefix().size()))};
    }
    return weights;
}

}  // namespace

VggWeights parse_weights_isolated(const std::string& subject,
                                  const std::function<VggWeights()>& parse) {
    const Where where{"", subject};
    VggWeights weights;
    isolation::run_isolated(
        subject, [&](isolation::Writer& out) { send_weights(out, parse()); },
        [&](isolation::Reader& in) { weights = receive_weights(where, in); });
    return weights;
}

VggWeights read_weights(const std::string& path) {
    const Where where{path, ""};
    return parse_weights_isolated(where.prefix().substr(0, where.prefix().size() - 2),
                                  [&] { return parse_weights(where); });
}

void write_weights(const std::string& path, const VggWeights& weights) {
    const Where where{path, ""};
    check_for_writing(where, weights);
    const QuietHdf5Errors quiet;
    TemporaryFile temporary(path);
    {
        const PropertyList access = file_access_list();
        errno = 0;
        File file(H5Fcreate(temporary.path().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, access.get()));
        const int create_errno = errno;
        if (!file.valid())
            throw where.failure("cannot create '" + temporary.path() + "' (" +
                                (create_errno ? std::strerror(create_errno) : "HDF5 error") +
                                ")");
        write_contents(where, file.get(), weights);
        if (file.close() < 0)
            throw where.failure("cannot finish writing '" + temporary.path() + "'");
    }
    // Data on disk before the rename, so a crash leaves the old file or the new one.
    const int descriptor = ::open(temporary.path().c_str(), O_RDONLY);
    if (descriptor >= 0) {
        ::fsync(descriptor);
        ::close(descriptor);
    }
    if (std::rename(temporary.path().c_str(), path.c_str()) != 0)
        throw where.failure("cannot rename '" + temporary.path() + "' into place (" +
                            std::strerror(errno) + ")");
    temporary.renamed();
}

std::string resolve_weights_path(const std::string& given) {
    namespace fs = std::filesystem;
    if (!given.empty()) return given;  // read_weights reports a missing file
    if (const char* env = std::getenv("NST_WEIGHTS"); env && *env) return env;
    if (const char* home = std::getenv("HOME"); home && *home) {
        const fs::path cached = fs::path(home) / ".cache" / "nst" / "vgg19.h5";
        if (fs::exists(cached)) return cached.string();
    }
    throw InputError(
        "no VGG-19 weights: pass --weights FILE, set NST_WEIGHTS, or create "
        "~/.cache/nst/vgg19.h5 (see README.md, \"Weights\")");
}

}  // namespace nst
