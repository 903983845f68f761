// nst-vgg19 HDF5 weights, format version 1 (DESIGN.md, "Weights file").
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "engine/base/types.h"
#include "engine/io/vgg19_layers.h"

namespace nst {

struct ConvWeights {
    std::string name;       // "conv3_1"
    int out_channels = 0;   // C_out
    int in_channels = 0;    // C_in
    std::vector<float> weight;  // (C_out, C_in, 3, 3) OIHW
    std::vector<float> bias;    // (C_out)
};

struct VggWeights {
    Preprocessing preprocessing;
    std::string source;                 // provenance, free text
    std::vector<ConvWeights> layers;    // a prefix of vgg19_layer_names(), in order
    // Extra root attributes kept on read and written back (string values), for
    // tools that record what they did (e.g. normalisation).
    std::map<std::string, std::string> extra_attributes;
};

// Limits of what a weights file may hold, checked by every reader before it
// allocates. VGG-19's widest layer has 512 channels; 4096 (8x) admits widened
// variants while one weight tensor stays below 4096 * 4096 * 9 * 4 B = 604 MB.
// All layers together: 2^28 floats (1 GiB), 13x VGG-19's 20.0 M parameters; the
// isolated parser's memory limit (engine/io/hdf5_isolation.h) leaves room for this much.
constexpr int kMaxWeightChannels = 4096;
constexpr std::size_t kMaxWeightParameters = std::size_t{1} << 28;

// Reads and validates a file. Throws InputError naming the file, the dataset
// or attribute, and the rule it breaks (missing, wrong type or shape, channel
// mismatch, non-finite values, wrong format or version).
VggWeights read_weights(const std::string& path);

// Writes format version 1 (gzip-compressed datasets). Validates first (same
// rules as read_weights); throws RuntimeFailure when the file cannot be written.
void write_weights(const std::string& path, const VggWeights& weights);

// Where the weights are: `given` when not empty, else $NST_WEIGHTS, else
// ~/.cache/nst/vgg19.h5. Throws InputError saying how to get them when none exists.
std::string resolve_weights_path(const std::string& given);

}  // namespace nst
