// nst-weights info: a readable summary of an nst-vgg19 file.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "weights_tools/tools.h"

namespace nst::weights_tools {

namespace {

struct Statistics {
    double mean = 0, std_dev = 0, min = 0, max = 0, abs_mean = 0;
};

// Two passes in double: exact enough for any VGG-19 tensor.
Statistics statistics(const std::vector<float>& values) {
    Statistics s;
    if (values.empty()) return s;
    const double n = static_cast<double>(values.size());
    s.min = s.max = values[0];
    for (float v : values) {
        s.mean += v;
        s.abs_mean += std::fabs(v);
        s.min = std::min<double>(s.min, v);
        s.max = std::max<double>(s.max, v);
    }
    s.mean /= n;
    s.abs_mean /= n;
    for (float v : values) s.std_dev += (v - s.mean) * (v - s.mean);
    s.std_dev = std::sqrt(s.std_dev / n);
    return s;
}

std::string format(const char* pattern, double value) {
    char text[64];
    std::snprintf(text, sizeof text, pattern, value);
    return text;
}

}  // namespace

void print_info(const std::string& path, const VggWeights& weights, std::ostream& out) {
    const Preprocessing& pre = weights.preprocessing;
    const char* order = pre.bgr ? "BGR" : "RGB";
    out << "file:          " << path << "\n"
        << "format:        nst-vgg19, version 1\n"
        << "source:        " << weights.source << "\n"
        << "preprocessing: color_order " << order << ", pixel_scale " << format("%g", pre.pixel_scale)
        << ", mean [" << format("%g", pre.mean[0]) << ", " << format("%g", pre.mean[1]) << ", "
        << format("%g", pre.mean[2]) << "], std [" << format("%g", pre.std[0]) << ", "
        << format("%g", pre.std[1]) << ", " << format("%g", pre.std[2]) << "]\n"
        << "               p(x)_c = (" << format("%g", pre.pixel_scale) << " * x_" << order
        << "[c] - mean_c) / std_c\n";
    if (!weights.extra_attributes.empty()) {
        out << "attributes:\n";
        for (const auto& [name, value] : weights.extra_attributes)
            out << "  " << name << " = " << value << "\n";
    }
    std::size_t parameters = 0;
    for (const ConvWeights& layer : weights.layers)
        parameters += layer.weight.size() + layer.bias.size();
    out << "layers:        " << weights.layers.size() << " (" << weights.layers.front().name
        << " ... " << weights.layers.back().name << "), " << parameters << " parameters\n\n";

    char line[256];
    std::snprintf(line, sizeof line, "%-8s %-18s %11s %11s %11s %11s %11s  %11s %11s\n", "layer",
                  "weight [O,I,3,3]", "w mean", "w std", "w min", "w max", "|w| mean",
                  "bias mean", "bias std");
    out << line;
    for (const ConvWeights& layer : weights.layers) {
        const Statistics w = statistics(layer.weight);
        const Statistics b = statistics(layer.bias);
        const std::string shape = "[" + std::to_string(layer.out_channels) + "," +
                                  std::to_string(layer.in_channels) + ",3,3]";
        std::snprintf(line, sizeof line,
                      "%-8s %-18s %11.4g %11.4g %11.4g %11.4g %11.4g  %11.4g %11.4g\n",
                      layer.name.c_str(), shape.c_str(), w.mean, w.std_dev, w.min, w.max,
                      w.abs_mean, b.mean, b.std_dev);
        out << line;
    }
}

}  // namespace nst::weights_tools
