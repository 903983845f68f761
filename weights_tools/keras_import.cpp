// Keras' VGG-19 weight files -> nst-vgg19 (docs/WEIGHTS.md, "Keras").
//
// The file is read the way Keras' own loader (load_weights_from_hdf5_group)
// reads it: the root attribute `layer_names` lists the layers in order (split
// into `layer_names0`, `layer_names1`, ... when large; under /model_weights in
// files saved with a whole model); each layer's group has an attribute
// `weight_names` whose entries are dataset paths relative to that group. Keras 2
// names them `block1_conv1/kernel:0`, `block1_conv1/bias:0`; Keras 1
// `block1_conv1_W_1:0`, `block1_conv1_b_1:0` (or without `_1`). Like Keras, we
// follow the names rather than guess them, so every naming works; the kernel and
// the bias are told apart by rank (4 and 1), not by their names.
//
// Layers block1_conv1 ... block5_conv4 become conv1_1 ... conv5_4; every other
// layer (input, pools, flatten, fc1, fc2, predictions) is ignored.
//
// Kernels are HWIO [3, 3, C_in, C_out] and become OIHW:
//   W[o, i, u, v] = K[u, v, i, o].
// No spatial flip: the "tf_dim_ordering_tf_kernels" files hold kernels for
// TensorFlow's conv2d, which is a cross-correlation, out[i,j,o] =
// Σ_{u,v,c} in[i+u, j+v, c] · K[u, v, c, o] — the same operation as Caffe (whence
// the weights come), cuDNN and PyTorch. Only the Theano variants
// ("th_kernels") were flipped, because Theano's conv2d is a true convolution;
// Keras itself flips (convert_all_kernels_in_model) only when it runs on Theano.
//
// Preprocessing: Keras' VGG19 uses imagenet_utils.preprocess_input(mode='caffe'):
// RGB -> BGR, values in 0..255, minus the mean [103.939, 116.779, 123.68] (BGR
// order), no division. In nst terms: BGR, pixel_scale 255, that mean, std 1.
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "engine/base/error.h"
#include "engine/io/hdf5_checks.h"
#include "engine/io/hdf5_isolation.h"
#include "engine/io/weights_isolated.h"
#include "weights_tools/hdf5_handles.h"
#include "weights_tools/tools.h"

namespace nst::weights_tools {

namespace {

struct Where {
    std::string path;
    std::string prefix() const { return "Keras weights '" + path + "': "; }
    InputError error(const std::string& what) const { return InputError(prefix() + what); }
};

// Limits of the string lists (checked before reading them): Keras' VGG19 lists 26
// layer names of at most 12 bytes; Keras splits an attribute into chunks at 64 KB
// (HDF5's object header limit), so no real list holds more.
constexpr hssize_t kMaxListEntries = 4096;
constexpr std::size_t kMaxNameBytes = 1024;
constexpr int kMaxListChunks = 64;

std::string shape_text(const std::vector<hsize_t>& dims) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
    out << ']';
    return out.str();
}

// One attribute holding an array of strings (fixed-length, as h5py writes
// numpy bytes arrays, or variable-length).
std::vector<std::string> read_string_array(const Where& where, hid_t object,
                                           const std::string& name) {
    H5Attribute attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT));
    H5Datatype type(attribute.valid() ? H5Aget_type(attribute.get()) : -1);
    H5Dataspace space(attribute.valid() ? H5Aget_space(attribute.get()) : -1);
    if (!type.valid() || !space.valid())
        throw where.error("cannot read attribute '" + name + "'");
    if (H5Tget_class(type.get()) != H5T_STRING)
        throw where.error("attribute '" + name + "' is not a list of strings");
    const hssize_t count = H5Sget_simple_extent_npoints(space.get());
    if (count < 0) throw where.error("cannot read the shape of attribute '" + name + "'");
    if (count > kMaxListEntries)
        throw where.error("attribute '" + name + "' lists " + std::to_string(count) +
                          " names, at most " + std::to_string(kMaxListEntries) + " allowed");
    std::vector<std::string> values;
    if (count == 0) return values;

    if (H5Tis_variable_str(type.get()) > 0) {
        H5Datatype memory_type(H5Tcopy(H5T_C_S1));
        H5Tset_size(memory_type.get(), H5T_VARIABLE);
        H5Tset_cset(memory_type.get(), H5Tget_cset(type.get()));
        std::vector<char*> texts(static_cast<std::size_t>(count), nullptr);
        if (H5Aread(attribute.get(), memory_type.get(), texts.data()) < 0)
            throw where.error("cannot read attribute '" + name + "'");
        // Variable-length strings come from HDF5's global heap, where libhdf5 1.10
        // crashed most on hostile files: read only because this runs in the isolated
        // child. Every entry is freed before any check can throw.
        for (char* text : texts) {
            values.emplace_back(text ? text : "");
            H5free_memory(text);
        }
        for (const std::string& value : values)
            if (value.size() > kMaxNameBytes)
                throw where.error("attribute '" + name + "' holds a string of " +
                                  std::to_string(value.size()) + " bytes, at most " +
                                  std::to_string(kMaxNameBytes) + " allowed");
        return values;
    }
    const std::size_t size = H5Tget_size(type.get());
    if (size == 0) throw where.error("cannot read attribute '" + name + "'");
    if (size > kMaxNameBytes)
        throw where.error("attribute '" + name + "' holds strings of " + std::to_string(size) +
                          " bytes, at most " + std::to_string(kMaxNameBytes) + " allowed");
    std::vector<char> buffer(size * static_cast<std::size_t>(count));
    H5Datatype memory_type(H5Tcopy(type.get()));
    if (H5Aread(attribute.get(), memory_type.get(), buffer.data()) < 0)
        throw where.error("cannot read attribute '" + name + "'");
    for (hssize_t i = 0; i < count; ++i) {
        std::string value(buffer.data() + static_cast<std::size_t>(i) * size, size);
        value.resize(std::min(value.find('\0'), value.size()));
        value.erase(value.find_last_not_of(' ') + 1);
        values.push_back(value);
    }
    return values;
}

bool has_attribute(hid_t object, const std::string& name) {
    return H5Aexists(object, name.c_str()) > 0;
}

// Keras' load_attributes_from_hdf5_group: `name`, or chunks name0, name1, ...
// Returns false when neither exists.
bool read_keras_list(const Where& where, hid_t object, const std::string& name,
                     std::vector<std::string>& values) {
    values.clear();
    if (has_attribute(object, name)) {
        values = read_string_array(where, object, name);
        return true;
    }
    int chunk = 0;
    for (; has_attribute(object, name + std::to_string(chunk)); ++chunk) {
        if (chunk == kMaxListChunks)
            throw where.error("attribute '" + name + "' is split into more than " +
                              std::to_string(kMaxListChunks) + " chunks");
        const auto part = read_string_array(where, object, name + std::to_string(chunk));
        values.insert(values.end(), part.begin(), part.end());
    }
    return chunk > 0;
}

struct FloatArray {
    std::vector<hsize_t> dims;
    std::vector<float> values;
};

// dataset_path is relative to the group at group_path ("/block1_conv1").
FloatArray dataset_shape(const Where& where, hid_t group, const std::string& group_path,
                         const std::string& dataset_path) {
    // Each link on the way is checked before it is followed (weight_names entries are
    // paths like "block1_conv1/kernel:0").
    if (!hdf5::hard_links_along(where.prefix(), group, dataset_path, group_path + "/"))
        throw where.error("dataset " + dataset_path + " named in weight_names is missing");
    H5Dataset dataset(H5Dopen2(group, dataset_path.c_str(), H5P_DEFAULT));
    if (!dataset.valid())
        throw where.error(dataset_path + " is not a readable dataset (damaged file?)");
    H5Datatype type(H5Dget_type(dataset.get()));
    if (!type.valid() || H5Tget_class(type.get()) != H5T_FLOAT)
        throw where.error(dataset_path + " is not floating point");
    hdf5::check_filters(where.prefix(), dataset.get(), dataset_path);
    hdf5::check_storage_is_inside(where.prefix(), dataset.get(), dataset_path);
    H5Dataspace space(H5Dget_space(dataset.get()));
    if (!space.valid() || H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE)
        throw where.error(dataset_path + " is not an array");
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) throw where.error("cannot read the shape of " + dataset_path);
    FloatArray array;
    array.dims.resize(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), array.dims.data(), nullptr);
    return array;
}

// Reads the values once the shape has been checked (so a damaged shape cannot
// make us allocate for it).
void read_values(const Where& where, hid_t group, const std::string& dataset_path,
                 FloatArray& array) {
    std::size_t count = 1;
    for (hsize_t d : array.dims) count *= static_cast<std::size_t>(d);
    H5Dataset dataset(H5Dopen2(group, dataset_path.c_str(), H5P_DEFAULT));
    if (!dataset.valid())
        throw where.error("cannot read " + dataset_path + " (damaged or truncated data)");
    hdf5::check_stored_size(where.prefix(), dataset.get(), count, dataset_path);
    array.values.resize(count);
    if (H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                                    H5P_DEFAULT, array.values.data()) < 0)
        throw where.error("cannot read " + dataset_path + " (damaged or truncated data)");
    for (std::size_t i = 0; i < count; ++i)
        if (!std::isfinite(array.values[i]))
            throw where.error(dataset_path + " has a non-finite value at flat index " +
                              std::to_string(i));
}

// The conv layers of VGG-19 under their Keras names: block1_conv1 -> conv1_1.
std::string keras_name(const std::string& nst_name) {
    // "conv3_2" -> "block3_conv2"
    return "block" + nst_name.substr(4, 1) + "_conv" + nst_name.substr(6, 1);
}

ConvWeights read_layer(const Where& where, hid_t root, const std::string& nst_name,
                       int in_channels, std::size_t& parameters) {
    const std::string name = keras_name(nst_name);
    if (H5Lexists(root, name.c_str(), H5P_DEFAULT) <= 0)
        throw where.error("layer_names lists '" + name + "' but there is no group /" + name);
    hdf5::require_hard_link(where.prefix(), root, name, "/" + name);
    H5Group group(H5Gopen2(root, name.c_str(), H5P_DEFAULT));
    if (!group.valid()) throw where.error("/" + name + " is not a group");

    std::vector<std::string> weight_names;
    if (!read_keras_list(where, group.get(), "weight_names", weight_names))
        throw where.error("/" + name + " has no attribute 'weight_names'");
    if (weight_names.size() != 2)
        throw where.error("/" + name + " lists " + std::to_string(weight_names.size()) +
                          " weights in weight_names, expected 2 (kernel and bias)");

    FloatArray arrays[2];
    for (int k = 0; k < 2; ++k) arrays[k] = dataset_shape(where, group.get(), "/" + name, weight_names[k]);
    const int kernel_index = arrays[0].dims.size() == 4 ? 0 : 1;
    FloatArray& kernel = arrays[kernel_index];
    FloatArray& bias = arrays[1 - kernel_index];
    const std::string kernel_path = "/" + name + "/" + weight_names[kernel_index];
    const std::string bias_path = "/" + name + "/" + weight_names[1 - kernel_index];
    if (kernel.dims.size() != 4 || bias.dims.size() != 1)
        throw where.error("/" + name + " must hold a kernel of rank 4 [3, 3, C_in, C_out] and "
                          "a bias of rank 1, found " + shape_text(arrays[0].dims) + " and " +
                          shape_text(arrays[1].dims));
    if (kernel.dims[0] != 3 || kernel.dims[1] != 3)
        throw where.error(kernel_path + " has shape " + shape_text(kernel.dims) +
                          " but must be [3, 3, C_in, C_out] (HWIO, 3x3)");
    const hsize_t max_channels = kMaxWeightChannels;
    if (kernel.dims[2] != hsize_t(in_channels))
        throw where.error(kernel_path + " has shape " + shape_text(kernel.dims) +
                          " but C_in must be " + std::to_string(in_channels) +
                          (in_channels == 3 ? " (colour channels)"
                                            : " (the previous layer's C_out)"));
    if (kernel.dims[3] < 1 || kernel.dims[3] > max_channels)
        throw where.error(kernel_path + " has shape " + shape_text(kernel.dims) +
                          " but C_out must be between 1 and " + std::to_string(max_channels));
    if (bias.dims[0] != kernel.dims[3])
        throw where.error(bias_path + " has shape " + shape_text(bias.dims) + " but must be [" +
                          std::to_string(kernel.dims[3]) + "] (C_out of the kernel)");
    parameters += std::size_t(kernel.dims[0] * kernel.dims[1] * kernel.dims[2] * kernel.dims[3]) +
                  std::size_t(bias.dims[0]);
    if (parameters > kMaxWeightParameters)
        throw where.error("the layers up to /" + name + " hold " + std::to_string(parameters) +
                          " parameters, more than the " + std::to_string(kMaxWeightParameters) +
                          " a weights file may hold");
    read_values(where, group.get(), weight_names[kernel_index], kernel);
    read_values(where, group.get(), weight_names[1 - kernel_index], bias);

    ConvWeights layer;
    layer.name = nst_name;
    layer.in_channels = in_channels;
    layer.out_channels = static_cast<int>(kernel.dims[3]);
    const std::size_t out = static_cast<std::size_t>(layer.out_channels);
    const std::size_t in = static_cast<std::size_t>(in_channels);
    layer.weight.resize(out * in * 9);
    // W[o, i, u, v] = K[u, v, i, o]   (HWIO -> OIHW, no flip: see the top of the file)
    for (std::size_t o = 0; o < out; ++o)
        for (std::size_t i = 0; i < in; ++i)
            for (std::size_t u = 0; u < 3; ++u)
                for (std::size_t v = 0; v < 3; ++v)
                    layer.weight[((o * in + i) * 3 + u) * 3 + v] =
                        kernel.values[((u * 3 + v) * in + i) * out + o];
    layer.bias = std::move(bias.values);
    return layer;
}

H5File open_file(const Where& where) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::file_status status = fs::status(where.path, error);
    if (status.type() == fs::file_type::not_found) throw where.error("no such file");
    if (status.type() != fs::file_type::regular) throw where.error("not a regular file");
    if (!std::ifstream(where.path, std::ios::binary)) throw where.error("cannot be read");
    if (H5Fis_hdf5(where.path.c_str()) <= 0) throw where.error("not an HDF5 file");
    H5File file(H5Fopen(where.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid())
        throw where.error("cannot open as HDF5 (the file is truncated or damaged)");
    return file;
}

VggWeights import_in_process(const std::string& path) {
    const Where where{path};
    const QuietHdf5Errors quiet;
    const H5File file = open_file(where);

    // Files saved with a whole model keep the weights under /model_weights.
    H5Group model_weights;
    hid_t root = file.get();
    std::vector<std::string> layer_names;
    if (!read_keras_list(where, root, "layer_names", layer_names)) {
        if (H5Lexists(root, "model_weights", H5P_DEFAULT) > 0) {
            hdf5::require_hard_link(where.prefix(), root, "model_weights", "/model_weights");
            model_weights = H5Group(H5Gopen2(root, "model_weights", H5P_DEFAULT));
        }
        if (!model_weights.valid() ||
            !read_keras_list(where, model_weights.get(), "layer_names", layer_names))
            throw where.error("no root attribute 'layer_names': not a Keras weights file");
        root = model_weights.get();
    }

    // Which VGG-19 conv layers are listed; anything else named like a conv layer
    // does not belong to VGG-19.
    static const std::regex conv_name("block([0-9]+)_conv([0-9]+)");
    std::map<std::string, int> listed;
    for (const std::string& name : layer_names) {
        std::smatch match;
        if (!std::regex_match(name, match, conv_name)) continue;
        const std::string nst_name = "conv" + match[1].str() + "_" + match[2].str();
        const auto& names = vgg19_layer_names();
        if (std::find(names.begin(), names.end(), nst_name) == names.end())
            throw where.error("layer '" + name + "' is not a VGG-19 layer (VGG-19 has "
                              "block1_conv1 ... block5_conv4)");
        if (++listed[nst_name] > 1) throw where.error("layer '" + name + "' is listed twice");
    }
    if (listed.empty())
        throw where.error("layer_names lists no VGG-19 layers (block1_conv1 ... block5_conv4)");

    VggWeights weights;
    Preprocessing& pre = weights.preprocessing;
    pre.bgr = true;
    pre.pixel_scale = 255.0f;
    pre.mean[0] = 103.939f;
    pre.mean[1] = 116.779f;
    pre.mean[2] = 123.68f;
    weights.source = "Keras VGG19 weights " +
                     std::filesystem::path(path).filename().string() +
                     " (HWIO kernels transposed to OIHW, Keras 'caffe' preprocessing)";
    int in_channels = 3;
    std::size_t parameters = 0;
    for (const std::string& nst_name : vgg19_layer_names()) {
        if (!listed.count(nst_name))
            throw where.error("layer '" + keras_name(nst_name) +
                              "' is missing from layer_names (VGG-19 has 16 conv layers)");
        weights.layers.push_back(read_layer(where, root, nst_name, in_channels, parameters));
        in_channels = weights.layers.back().out_channels;
    }
    return weights;
}

}  // namespace

// Keras files come from the internet like any other: parsed in the isolated child
// (engine/io/hdf5_isolation.h), checked again on return.
VggWeights import_keras(const std::string& path) {
    return parse_weights_isolated("Keras weights '" + path + "'",
                                  [&] { return import_in_process(path); });
}

}  // namespace nst::weights_tools
