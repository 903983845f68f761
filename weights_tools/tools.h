// The operations behind nst-weights (docs/WEIGHTS.md): importing Keras' VGG-19
// weight files, Gatys' mean-activation normalisation, and a readable summary.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"

namespace nst::weights_tools {

// Reads a Keras VGG-19 weight file (Keras 1 or 2 layout, with or without the
// fully connected layers, which are ignored) and returns the 16 convolutions in
// the nst layout with Keras' 'caffe' preprocessing. Throws InputError naming the
// file, the layer or dataset, and the rule it breaks.
VggWeights import_keras(const std::string& path);

// Per-layer outcome of a normalisation.
struct LayerScales {
    std::string name;
    std::vector<double> scales;  // (C_out) mean post-ReLU activation before; 1 where dead
    int dead_filters = 0;        // filters whose activation is 0 on every image and position
    double max_deviation = 0.0;  // max |mean − 1| over live filters, measured after
};

// Gatys' normalisation: every filter's mean post-ReLU activation over `images`
// (RGB [0,1]) and positions becomes 1, the network's function unchanged up to
// per-channel scales. `report` receives one entry per layer.
VggWeights normalize(const VggWeights& weights, const std::vector<Image>& images, PoolMode pool,
                     Backend& backend, std::vector<LayerScales>& report);

// Prints format, preprocessing, extra attributes and per-layer statistics.
void print_info(const std::string& path, const VggWeights& weights, std::ostream& out);

}  // namespace nst::weights_tools
