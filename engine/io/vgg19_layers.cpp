// VGG-19's layer table (engine/io/vgg19_layers.h).
#include "engine/io/vgg19_layers.h"

#include <algorithm>

#include "engine/base/error.h"

namespace nst {

const std::vector<std::string>& vgg19_layer_names() {
    static const std::vector<std::string> names = {
        "conv1_1", "conv1_2",                         // pool
        "conv2_1", "conv2_2",                         // pool
        "conv3_1", "conv3_2", "conv3_3", "conv3_4",  // pool
        "conv4_1", "conv4_2", "conv4_3", "conv4_4",  // pool
        "conv5_1", "conv5_2", "conv5_3", "conv5_4",  // pool
    };
    return names;
}

int vgg19_layer_index(const std::string& name) {
    const auto& names = vgg19_layer_names();
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end())
        throw UsageError("unknown layer '" + name + "' (expected conv1_1 ... conv5_4)");
    return static_cast<int>(it - names.begin());
}

bool vgg19_pool_after(int layer_index) {
    return layer_index == 1 || layer_index == 3 || layer_index == 7 || layer_index == 11 ||
           layer_index == 15;
}

}  // namespace nst
