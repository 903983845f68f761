// VGG-19's layer table: the 16 convolution layers in order and where the 4
// pools sit. The weights file (engine/io/weights.h), the network (engine/network/vgg19.h)
// and the objective's layer names all refer to it.
#pragma once

#include <string>
#include <vector>

namespace nst {

// conv1_1 ... conv5_4
const std::vector<std::string>& vgg19_layer_names();
// Index of a layer name in vgg19_layer_names(); throws UsageError if unknown.
int vgg19_layer_index(const std::string& name);
// True when a 2×2 pool follows this conv layer index (conv1_2, conv2_2, conv3_4, conv4_4, conv5_4).
bool vgg19_pool_after(int layer_index);

}  // namespace nst
