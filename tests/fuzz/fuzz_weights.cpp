// libFuzzer target: nst::read_weights on arbitrary bytes. Promise under test
// (engine/io/weights.h): any file either reads as valid nst-vgg19 weights or
// throws one of nst's errors naming the file; never a crash, a hang, another
// exception or unbounded memory. Seeded with a narrow VGG-19 file
// (corpus/weights/); the parse happens in whatever read_weights uses (libhdf5,
// in-process or in a child process), so this target covers both.
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "engine/base/error.h"
#include "engine/io/vgg19_layers.h"
#include "engine/io/weights.h"
#include "tests/fuzz/fuzz_support.h"

// The isolated parser's wall-clock limit (120 s by default) must end a hung
// child well before libFuzzer's per-input time-out (25 s in CI) calls the
// parent hung: 5 s is 100 times a normal parse of these small files.
// A child that crashes (libhdf5 on a hostile file) is the promised outcome, not
// a finding: forked_children_do_not_report().
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    setenv("NST_HDF5_TIMEOUT_S", "5", 0);
    nst::fuzz::forked_children_do_not_report();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static nst::fuzz::InputFile file(".h5");
    const std::string& path = file.write(data, size);
    nst::VggWeights weights;
    try {
        weights = nst::read_weights(path);
    } catch (const nst::Error&) {
        return 0;  // refused with a message: the promised outcome for a bad file
    }
    // What a caller relies on: a prefix of VGG-19's layers, each (C_out, C_in, 3, 3)
    // plus (C_out), chained (C_in = previous C_out), finite.
    const auto& names = nst::vgg19_layer_names();
    if (weights.layers.empty() || weights.layers.size() > names.size()) nst::fuzz::fail("layer count");
    int previous_out = 3;
    for (std::size_t i = 0; i < weights.layers.size(); ++i) {
        const auto& layer = weights.layers[i];
        if (layer.name != names[i]) nst::fuzz::fail("layers are not a prefix of VGG-19's");
        if (layer.in_channels != previous_out || layer.out_channels < 1) nst::fuzz::fail("channel chain");
        if (layer.weight.size() != std::size_t(layer.out_channels) * std::size_t(layer.in_channels) * 9)
            nst::fuzz::fail("weight size != C_out·C_in·9");
        if (layer.bias.size() != std::size_t(layer.out_channels)) nst::fuzz::fail("bias size != C_out");
        for (const float v : layer.weight)
            if (!std::isfinite(v)) nst::fuzz::fail("non-finite weight");
        for (const float v : layer.bias)
            if (!std::isfinite(v)) nst::fuzz::fail("non-finite bias");
        previous_out = layer.out_channels;
    }
    return 0;
}
