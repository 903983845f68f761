// nst-vgg19 HDF5 weights: layer table, write/read round trips, the shared real
// weights checked against h5py, and the bad files the reader must refuse.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "engine/base/error.h"
#include "engine/io/hdf5_isolation.h"
#include "engine/io/weights.h"
#include "tests/test_support.h"


// Built with AddressSanitizer (GCC says __SANITIZE_ADDRESS__, clang __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define NST_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NST_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef NST_TEST_UNDER_ASAN
#define NST_TEST_UNDER_ASAN 0
#endif
namespace {

using nst::ConvWeights;
using nst::VggWeights;

// A narrow network with VGG-19's topology: C_out per layer, C_in chained from 3.
VggWeights narrow_network(int layer_count, unsigned seed) {
    const int widths[16] = {4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 3, 3, 3, 3};
    VggWeights w;
    w.preprocessing.bgr = true;
    w.preprocessing.pixel_scale = 255.0f;
    w.preprocessing.mean[0] = 103.939f;
    w.preprocessing.mean[1] = 116.779f;
    w.preprocessing.mean[2] = 123.68f;
    w.preprocessing.std[0] = 0.229f;
    w.preprocessing.std[1] = 1.0f;
    w.preprocessing.std[2] = 3.5e-3f;
    w.source = "narrow test network, seed " + std::to_string(seed);
    int in_channels = 3;
    for (int l = 0; l < layer_count; ++l) {
        ConvWeights layer;
        layer.name = nst::vgg19_layer_names()[l];
        layer.out_channels = widths[l];
        layer.in_channels = in_channels;
        const std::size_t count = static_cast<std::size_t>(widths[l] * in_channels * 9);
        layer.weight = nst::test::random_vector(count, seed + 2 * l, -2.0f, 2.0f);
        layer.bias =
            nst::test::random_vector(static_cast<std::size_t>(widths[l]), seed + 2 * l + 1);
        w.layers.push_back(layer);
        in_channels = widths[l];
    }
    // Values a lossy path would not keep bit for bit.
    w.layers[0].weight[0] = -0.0f;
    w.layers[0].weight[1] = std::numeric_limits<float>::denorm_min();
    w.layers[0].weight[2] = std::numeric_limits<float>::max();
    w.layers[0].weight[3] = std::numeric_limits<float>::lowest();
    return w;
}

std::vector<std::uint32_t> bits(const std::vector<float>& values) {
    std::vector<std::uint32_t> out(values.size());
    std::memcpy(out.data(), values.data(), values.size() * sizeof(float));
    return out;
}

void require_same(const VggWeights& read, const VggWeights& written) {
    CHECK(read.preprocessing.bgr == written.preprocessing.bgr);
    CHECK(read.preprocessing.pixel_scale == written.preprocessing.pixel_scale);
    for (int c = 0; c < 3; ++c) {
        CHECK(read.preprocessing.mean[c] == written.preprocessing.mean[c]);
        CHECK(read.preprocessing.std[c] == written.preprocessing.std[c]);
    }
    CHECK(read.source == written.source);
    CHECK(read.extra_attributes == written.extra_attributes);
    REQUIRE(read.layers.size() == written.layers.size());
    for (std::size_t l = 0; l < read.layers.size(); ++l) {
        INFO("layer " << written.layers[l].name);
        CHECK(read.layers[l].name == written.layers[l].name);
        CHECK(read.layers[l].out_channels == written.layers[l].out_channels);
        CHECK(read.layers[l].in_channels == written.layers[l].in_channels);
        CHECK(bits(read.layers[l].weight) == bits(written.layers[l].weight));
        CHECK(bits(read.layers[l].bias) == bits(written.layers[l].bias));
    }
}

// Edits a file through the HDF5 C API, independently of the code under test,
// to make the bad files the reader must refuse.
class RawFile {
public:
    explicit RawFile(const std::string& path)
        : file_(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
        REQUIRE(file_ >= 0);
    }
    ~RawFile() { H5Fclose(file_); }
    RawFile(const RawFile&) = delete;
    RawFile& operator=(const RawFile&) = delete;

    hid_t id() const { return file_; }
    void remove(const std::string& link) {
        REQUIRE(H5Ldelete(file_, link.c_str(), H5P_DEFAULT) >= 0);
    }
    void remove_attribute(const std::string& name) { REQUIRE(H5Adelete(file_, name.c_str()) >= 0); }

    // Fixed-length, null-padded: the other string layout the reader accepts.
    void set_string(const std::string& name, const std::string& value) {
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, value.size());
        H5Tset_strpad(type, H5T_STR_NULLPAD);
        set_attribute(name, type, H5Screate(H5S_SCALAR), value.data());
        H5Tclose(type);
    }
    void set_int(const std::string& name, int value) {
        set_attribute(name, H5T_NATIVE_INT, H5Screate(H5S_SCALAR), &value);
    }
    void set_floats(const std::string& name, const std::vector<float>& values) {
        const hsize_t count = values.size();
        set_attribute(name, H5T_NATIVE_FLOAT, H5Screate_simple(1, &count, nullptr), values.data());
    }
    // Replaces or adds a dataset; values converted from double to `file_type`.
    void put_dataset(const std::string& path, const std::vector<hsize_t>& dims,
                     const std::vector<double>& values, hid_t file_type = H5T_IEEE_F32LE) {
        if (H5Lexists(file_, path.c_str(), H5P_DEFAULT) > 0) remove(path);
        const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
        const hid_t dataset = H5Dcreate2(file_, path.c_str(), file_type, space, H5P_DEFAULT,
                                         H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(dataset >= 0);
        REQUIRE(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         values.data()) >= 0);
        H5Dclose(dataset);
        H5Sclose(space);
    }
    void set_group_attribute(const std::string& group, const std::string& name, int value) {
        const hid_t g = H5Gopen2(file_, group.c_str(), H5P_DEFAULT);
        const hid_t space = H5Screate(H5S_SCALAR);
        const hid_t a = H5Acreate2(g, name.c_str(), H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(H5Awrite(a, H5T_NATIVE_INT, &value) >= 0);
        H5Aclose(a);
        H5Sclose(space);
        H5Gclose(g);
    }

private:
    void set_attribute(const std::string& name, hid_t type, hid_t space, const void* data) {
        if (H5Aexists(file_, name.c_str()) > 0) H5Adelete(file_, name.c_str());
        const hid_t attribute =
            H5Acreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(attribute >= 0);
        REQUIRE(H5Awrite(attribute, type, data) >= 0);
        H5Aclose(attribute);
        H5Sclose(space);
    }
    hid_t file_;
};

// A zip archive of empty, stored records with these names, written byte by byte
// (local headers, central directory, end record; APPNOTE.TXT 4.3), as torch.save
// writes its records: "<name>/data.pkl", "<name>/data/0", ...
std::string stored_zip(const std::vector<std::string>& names) {
    auto u16 = [](std::string& out, unsigned value) {
        out += static_cast<char>(value & 0xff);
        out += static_cast<char>((value >> 8) & 0xff);
    };
    auto u32 = [&](std::string& out, unsigned value) {
        u16(out, value & 0xffff);
        u16(out, value >> 16);
    };
    std::string local, central;
    for (const std::string& name : names) {
        const auto offset = static_cast<unsigned>(local.size());
        local += "PK\x03\x04";
        for (unsigned field : {20u, 0u, 0u, 0u, 0u}) u16(local, field);  // version, flags, method, time, date
        for (int k = 0; k < 3; ++k) u32(local, 0);                         // crc, sizes: empty
        u16(local, static_cast<unsigned>(name.size()));
        u16(local, 0);
        local += name;
        central += "PK\x01\x02";
        for (unsigned field : {20u, 20u, 0u, 0u, 0u, 0u}) u16(central, field);
        for (int k = 0; k < 3; ++k) u32(central, 0);
        u16(central, static_cast<unsigned>(name.size()));
        for (int k = 0; k < 4; ++k) u16(central, 0);  // extra, comment, disk, internal attributes
        u32(central, 0);                              // external attributes
        u32(central, offset);
        central += name;
    }
    std::string end = "PK\x05\x06";
    for (int k = 0; k < 2; ++k) u16(end, 0);
    for (int k = 0; k < 2; ++k) u16(end, static_cast<unsigned>(names.size()));
    u32(end, static_cast<unsigned>(central.size()));
    u32(end, static_cast<unsigned>(local.size()));
    u16(end, 0);
    return local + central + end;
}

std::vector<double> to_double(const std::vector<float>& values) {
    return std::vector<double>(values.begin(), values.end());
}

// Runs `action` with file descriptor 2 sent to a file; returns what it wrote.
template <typename Action>
std::string captured_stderr(const std::string& scratch, Action action) {
    std::fflush(stderr);
    const int saved = dup(2);
    FILE* sink = std::fopen(scratch.c_str(), "w");
    dup2(fileno(sink), 2);
    action();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::fclose(sink);
    return nst::test::read_file(scratch);
}

// read_weights must throw InputError with one line naming the file and every part.
void require_refused(const std::string& path, const std::vector<std::string>& parts) {
    try {
        nst::read_weights(path);
        FAIL("read_weights accepted " << path);
    } catch (const nst::InputError& error) {
        const std::string message = error.what();
        INFO("message: " << message);
        CHECK(message.rfind("weights '" + path + "': ", 0) == 0);
        CHECK(message.find('\n') == std::string::npos);
        for (const std::string& part : parts) CHECK(message.find(part) != std::string::npos);
    }
}

std::string message_of(const std::string& path) {
    try {
        nst::read_weights(path);
    } catch (const nst::InputError& error) {
        return error.what();
    }
    return "(accepted)";
}

}  // namespace

TEST_CASE("VGG-19 layer table", "[weights]") {
    const auto& names = nst::vgg19_layer_names();
    REQUIRE(names.size() == 16);
    CHECK(names.front() == "conv1_1");
    CHECK(names[4] == "conv3_1");
    CHECK(names.back() == "conv5_4");
    for (int l = 0; l < 16; ++l) CHECK(nst::vgg19_layer_index(names[l]) == l);
    std::vector<int> pools;
    for (int l = 0; l < 16; ++l)
        if (nst::vgg19_pool_after(l)) pools.push_back(l);
    // After conv1_2, conv2_2, conv3_4, conv4_4 and conv5_4 (Simonyan & Zisserman, table 1).
    CHECK(pools == std::vector<int>{1, 3, 7, 11, 15});
    CHECK_THROWS_MATCHES(nst::vgg19_layer_index("conv9_9"), nst::UsageError,
                         Catch::Message("unknown layer 'conv9_9' (expected conv1_1 ... conv5_4)"));
}

TEST_CASE("weights round-trip bit for bit", "[weights]") {
    nst::test::TempDir dir("weights-roundtrip");

    SECTION("all 16 layers, BGR, extra attributes") {
        VggWeights w = narrow_network(16, 11);
        w.extra_attributes = {{"normalisation", "mean activation 1 per channel"},
                              {"converted_from", "Gatys vgg_conv.pth \xE2\x86\x92 nst"}};
        nst::write_weights(dir.file("w.h5"), w);
        require_same(nst::read_weights(dir.file("w.h5")), w);
    }
    SECTION("truncated after conv3_1, RGB, empty source") {
        VggWeights w = narrow_network(5, 23);
        w.preprocessing.bgr = false;
        w.preprocessing.pixel_scale = 1.0f;
        w.source.clear();
        nst::write_weights(dir.file("w.h5"), w);
        const VggWeights read = nst::read_weights(dir.file("w.h5"));
        REQUIRE(read.layers.size() == 5);
        CHECK(read.layers.back().name == "conv3_1");
        require_same(read, w);
    }
    SECTION("overwrites an existing file and leaves no temporary behind") {
        nst::write_weights(dir.file("w.h5"), narrow_network(3, 1));
        const VggWeights second = narrow_network(16, 2);
        nst::write_weights(dir.file("w.h5"), second);
        require_same(nst::read_weights(dir.file("w.h5")), second);
        int entries = 0;
        for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
            ++entries;
        CHECK(entries == 1);
    }
}

TEST_CASE("weights reader accepts the format's variants", "[weights]") {
    nst::test::TempDir dir("weights-variants");
    const std::string path = dir.file("w.h5");
    const VggWeights w = narrow_network(4, 5);
    nst::write_weights(path, w);
    VggWeights expected = w;
    {
        RawFile raw(path);
        raw.set_string("format", "nst-vgg19");                 // fixed-length string
        raw.set_group_attribute("/conv1_1", "exact", 1);       // group attributes are ignored
        raw.set_int("epochs", 74);                             // non-string extras are skipped
        raw.set_string("note", "kept");                        // string extras are kept
        expected.extra_attributes["note"] = "kept";
        raw.remove_attribute("source");                                  // optional on read
        expected.source.clear();
        // float64 data, converted on read; every value is a float, so exactly.
        raw.put_dataset("/conv1_2/weight", {4, 4, 3, 3}, to_double(w.layers[1].weight),
                        H5T_IEEE_F64LE);
    }
    require_same(nst::read_weights(path), expected);
}

TEST_CASE("weights reader refuses bad files", "[weights]") {
    nst::test::TempDir dir("weights-bad");
    const std::string path = dir.file("bad.h5");
    const VggWeights w = narrow_network(5, 7);  // conv1_1 .. conv3_1, widths 4 4 5 5 6
    nst::write_weights(path, w);

    SECTION("missing file") { require_refused(dir.file("absent.h5"), {"no such file"}); }
    SECTION("not an HDF5 file, nothing printed by HDF5") {
        std::ofstream(path) << "conv1_1 64 3 3 3\n";
        const std::string printed = captured_stderr(
            dir.file("stderr.txt"), [&] { require_refused(path, {"not an HDF5 file"}); });
        CHECK(printed.empty());
    }
    SECTION("a PyTorch checkpoint is named, with the command that converts it") {
        const std::string hint = "not an HDF5 file but a PyTorch checkpoint: convert it to nst-vgg19 with "
                                 "weights_tools/convert_torch.py IN.pth OUT.h5";
        // torch.save since PyTorch 1.6: a zip archive, data.pkl its first record.
        std::ofstream(path, std::ios::binary | std::ios::trunc)
            << stored_zip({"vgg19/data.pkl", "vgg19/data/0", "vgg19/version"});
        require_refused(path, {hint});
        // data.pkl found through the central directory when it is not the first record.
        std::ofstream(path, std::ios::binary | std::ios::trunc) << stored_zip({"archive/version", "archive/data.pkl"});
        require_refused(path, {hint});
        // Before 1.6: a pickle (protocol 2) starting with torch's magic number.
        std::ofstream(path, std::ios::binary | std::ios::trunc)
            << std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);
        require_refused(path, {hint});
        // Another zip archive, another pickle: no such hint.
        std::ofstream(path, std::ios::binary | std::ios::trunc) << stored_zip({"mimetype", "content.xml"});
        CHECK(message_of(path) == "weights '" + path + "': not an HDF5 file");
        std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string("\x80\x04\x95\x00", 4);
        CHECK(message_of(path) == "weights '" + path + "': not an HDF5 file");
    }
    SECTION("a Keras weights file is named, with the command that converts it") {
        {
            RawFile raw(path);
            raw.remove_attribute("format");
            raw.set_string("layer_names", "block1_conv1");
        }
        CHECK(message_of(path) == "weights '" + path +
                                      "': a Keras weights file, not nst-vgg19 (no attribute 'format'): "
                                      "convert it with nst-weights import-keras IN.h5 OUT.h5");
        RawFile(path).remove_attribute("layer_names");
        require_refused(path, {"attribute 'format' is missing"});
    }
    SECTION("truncated HDF5 file, nothing printed by HDF5") {
        const std::string bytes = nst::test::read_file(path);
        std::ofstream(path, std::ios::binary | std::ios::trunc)
            .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
        const std::string printed = captured_stderr(
            dir.file("stderr.txt"), [&] { require_refused(path, {"truncated or damaged"}); });
        CHECK(printed.empty());
    }
    SECTION("missing layer in the middle") {
        RawFile(path).remove("/conv1_2");
        require_refused(path, {"missing layer /conv1_2", "/conv2_1 is present"});
    }
    SECTION("no conv1_1") {
        RawFile(path).remove("/conv1_1");
        require_refused(path, {"missing layer /conv1_1"});
    }
    SECTION("C_in does not chain") {
        RawFile(path).put_dataset("/conv2_1/weight", {5, 3, 3, 3}, std::vector<double>(135, 0.5));
        CHECK(message_of(path) == "weights '" + path +
                                      "': /conv2_1/weight has shape [5, 3, 3, 3] but C_in must "
                                      "equal conv1_2's C_out = 4");
    }
    SECTION("5x5 kernel") {
        RawFile(path).put_dataset("/conv1_1/weight", {4, 3, 5, 5}, std::vector<double>(300, 0.5));
        require_refused(path, {"/conv1_1/weight", "[4, 3, 5, 5]", "3x3"});
    }
    SECTION("bias length") {
        RawFile(path).put_dataset("/conv2_2/bias", {4}, std::vector<double>(4, 0.5));
        require_refused(path, {"/conv2_2/bias", "[4]", "[C_out] = [5]"});
    }
    SECTION("integer weights") {
        RawFile(path).put_dataset("/conv1_2/weight", {4, 4, 3, 3}, std::vector<double>(144, 1.0),
                                  H5T_STD_I32LE);
        require_refused(path, {"/conv1_2/weight", "integer", "floating point"});
    }
    SECTION("wrong format attribute") {
        RawFile(path).set_string("format", "foo");
        CHECK(message_of(path) ==
              "weights '" + path + "': attribute 'format' is 'foo', expected 'nst-vgg19'");
    }
    SECTION("wrong format_version") {
        RawFile(path).set_int("format_version", 2);
        require_refused(path, {"attribute 'format_version' is 2, expected 1"});
    }
    SECTION("NaN in a weight") {
        std::vector<double> values = to_double(w.layers[3].weight);  // conv2_2 (5, 5, 3, 3)
        values[2 * 45 + 1 * 9 + 2 * 3 + 1] = std::nan("");
        RawFile(path).put_dataset("/conv2_2/weight", {5, 5, 3, 3}, values);
        require_refused(path, {"/conv2_2/weight", "non-finite", "[2, 1, 2, 1]", "flat index 106"});
    }
    SECTION("Inf in a bias") {
        std::vector<double> values = to_double(w.layers[4].bias);  // conv3_1 (6)
        values[3] = -HUGE_VAL;
        RawFile(path).put_dataset("/conv3_1/bias", {6}, values);
        require_refused(path, {"/conv3_1/bias", "non-finite", "-inf", "[3]"});
    }
    SECTION("std 0") {
        RawFile(path).set_floats("std", {1.0f, 0.0f, 1.0f});
        require_refused(path, {"attribute 'std'", "[1, 0, 1]", "> 0"});
    }
    SECTION("mean of 2 values") {
        RawFile(path).set_floats("mean", {1.0f, 2.0f});
        require_refused(path, {"attribute 'mean' has 2 values, expected 3"});
    }
    SECTION("bad color_order") {
        RawFile(path).set_string("color_order", "GBR");
        require_refused(path, {"attribute 'color_order' is 'GBR'", "'RGB' or 'BGR'"});
    }
    SECTION("missing pixel_scale") {
        RawFile(path).remove_attribute("pixel_scale");
        require_refused(path, {"attribute 'pixel_scale' is missing"});
    }
}

TEST_CASE("weights writer validates and fails cleanly", "[weights]") {
    nst::test::TempDir dir("weights-write");
    VggWeights w = narrow_network(3, 3);

    SECTION("channel mismatch is refused before anything is written") {
        w.layers[2].in_channels = 5;
        w.layers[2].weight.resize(static_cast<std::size_t>(5 * 5 * 9), 0.0f);
        CHECK_THROWS_MATCHES(
            nst::write_weights(dir.file("w.h5"), w), nst::InputError,
            Catch::Message("weights '" + dir.file("w.h5") +
                           "': /conv2_1/weight has shape [5, 5, 3, 3] but C_in must equal "
                           "conv1_2's C_out = 4"));
    }
    SECTION("non-finite weight") {
        w.layers[1].weight[7] = std::numeric_limits<float>::quiet_NaN();
        CHECK_THROWS_AS(nst::write_weights(dir.file("w.h5"), w), nst::InputError);
    }
    SECTION("layers out of order") {
        std::swap(w.layers[0].name, w.layers[1].name);
        CHECK_THROWS_AS(nst::write_weights(dir.file("w.h5"), w), nst::InputError);
    }
    SECTION("unwritable folder") {
        CHECK_THROWS_AS(nst::write_weights(dir.file("no-such-folder/w.h5"), w),
                        nst::RuntimeFailure);
    }
    CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("shared VGG-19 weights match the published network and h5py", "[weights]") {
    const std::string path = nst::test::shared_weights_path();
    REQUIRE(nst::test::file_exists(path));
    const auto start = std::chrono::steady_clock::now();
    const VggWeights w = nst::read_weights(path);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO("read in " << seconds << " s");
    // About 0.4 s on one core; the bound leaves room for a loaded machine and
    // still catches a read path that goes chunk by chunk or value by value.
    CHECK(seconds < 30.0);

    // Widths from Simonyan & Zisserman, table 1 (configuration E).
    const int widths[16] = {64, 64, 128, 128, 256, 256, 256, 256,
                            512, 512, 512, 512, 512, 512, 512, 512};
    REQUIRE(w.layers.size() == 16);
    int in_channels = 3;
    for (int l = 0; l < 16; ++l) {
        INFO("layer " << w.layers[l].name);
        CHECK(w.layers[l].out_channels == widths[l]);
        CHECK(w.layers[l].in_channels == in_channels);
        in_channels = widths[l];
    }
    // Caffe preprocessing, as the assets README states.
    CHECK(w.preprocessing.bgr);
    CHECK(w.preprocessing.pixel_scale == 255.0f);
    CHECK(w.preprocessing.mean[0] == 103.939f);
    CHECK(w.preprocessing.mean[1] == 116.779f);
    CHECK(w.preprocessing.mean[2] == 123.68f);
    for (float s : w.preprocessing.std) CHECK(s == 1.0f);
    CHECK(!w.source.empty());

    // Oracle: h5py reads every dataset; both sides sum the float32 bit patterns
    // weighted by position, modulo 2^64, so any differing bit or order shows.
    nst::test::TempDir dir("weights-h5py");
    std::ofstream(dir.file("checksum.py")) <<
        "import sys, h5py, numpy as np\n"
        "with h5py.File(sys.argv[1], 'r') as f:\n"
        "    for name in f:\n"
        "        for d in ('weight', 'bias'):\n"
        "            a = np.ascontiguousarray(f[name][d][...], dtype='<f4').reshape(-1)\n"
        "            w = np.arange(a.size, dtype=np.uint64) % np.uint64(65521) + np.uint64(1)\n"
        "            s = (a.view('<u4').astype(np.uint64) * w).sum(dtype=np.uint64)\n"
        "            print(name + '/' + d, a.size, int(s))\n";
    const nst::test::CommandResult python =
        nst::test::run_command("/usr/bin/python3 '" + dir.file("checksum.py") + "' '" + path + "'");
    INFO("python stderr: " << python.err);
    REQUIRE(python.exit_code == 0);
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> expected;
    std::istringstream lines(python.out);
    std::string name;
    std::size_t count = 0;
    std::uint64_t sum = 0;
    while (lines >> name >> count >> sum) expected[name] = {count, sum};
    REQUIRE(expected.size() == 32);

    const auto checksum = [](const std::vector<float>& values) {
        std::uint64_t s = 0;
        const std::vector<std::uint32_t> b = bits(values);
        for (std::size_t i = 0; i < b.size(); ++i) s += std::uint64_t{b[i]} * (i % 65521 + 1);
        return s;
    };
    for (const ConvWeights& layer : w.layers) {
        for (const auto& [dataset, values] :
             {std::pair{"weight", &layer.weight}, std::pair{"bias", &layer.bias}}) {
            const std::string key = layer.name + "/" + dataset;
            INFO(key);
            REQUIRE(expected.count(key) == 1);
            CHECK(values->size() == expected[key].first);
            CHECK(checksum(*values) == expected[key].second);
        }
    }
}

namespace {

// Sets an environment variable for one scope (the isolated reader's test hooks).
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        ::setenv(name, value, 1);
    }
    ~ScopedEnv() { ::unsetenv(name_); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Replaces /conv1_1/weight by a chunked float32 dataset of shape `dims` ([C_out, 3, 3, 3],
// chunks of one filter) in which only the first `written_filters` chunks are stored.
void claim_weight_shape(const std::string& path, hsize_t out_channels, hsize_t written_filters) {
    RawFile raw(path);
    raw.remove("/conv1_1/weight");
    const hsize_t dims[4] = {out_channels, 3, 3, 3};
    const hsize_t chunk[4] = {1, 3, 3, 3};
    const hid_t space = H5Screate_simple(4, dims, nullptr);
    const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
    REQUIRE(H5Pset_chunk(create, 4, chunk) >= 0);
    const hid_t dataset = H5Dcreate2(raw.id(), "/conv1_1/weight", H5T_IEEE_F32LE, space,
                                     H5P_DEFAULT, create, H5P_DEFAULT);
    REQUIRE(dataset >= 0);
    if (written_filters > 0) {
        const hsize_t start[4] = {0, 0, 0, 0}, count[4] = {written_filters, 3, 3, 3};
        const hid_t file_part = H5Scopy(space);
        H5Sselect_hyperslab(file_part, H5S_SELECT_SET, start, nullptr, count, nullptr);
        const hid_t memory = H5Screate_simple(4, count, nullptr);
        const std::vector<float> values(written_filters * 27, 0.5f);
        REQUIRE(H5Dwrite(dataset, H5T_NATIVE_FLOAT, memory, file_part, H5P_DEFAULT,
                         values.data()) >= 0);
        H5Sclose(memory);
        H5Sclose(file_part);
    }
    H5Dclose(dataset);
    H5Pclose(create);
    H5Sclose(space);
}

}  // namespace

TEST_CASE("weights are parsed in an isolated child: crash, hang and memory become errors",
          "[weights][isolation]") {
    nst::test::TempDir dir("weights-isolation");
    const std::string path = dir.file("w.h5");
    const VggWeights w = narrow_network(3, 13);
    nst::write_weights(path, w);

    SECTION("a crash in the parser") {
        const ScopedEnv hook("NST_TEST_HDF5_CHILD", "segv");
        require_refused(path, {"the HDF5 parser crashed (SIGSEGV)", "damaged or hostile"});
    }
    SECTION("a parser that never returns is stopped at the wall-clock limit") {
        const ScopedEnv hook("NST_TEST_HDF5_CHILD", "hang");
        const ScopedEnv timeout("NST_HDF5_TIMEOUT_S", "0.5");
        const auto start = std::chrono::steady_clock::now();
        require_refused(path, {"the HDF5 parser took longer than 0.5 s", "damaged or hostile"});
        // 0.5 s limit plus fork, kill and reap; 5 s leaves room for a loaded machine.
        CHECK(seconds_since(start) < 5.0);
    }
    SECTION("a parser that spins is stopped at its CPU-time limit, long before the wall clock") {
        const ScopedEnv hook("NST_TEST_HDF5_CHILD", "spin");
        const nst::isolation::Limits limits = nst::isolation::default_limits();
        REQUIRE(limits.wall_seconds == 120.0);  // the default wall clock, no override
        const auto start = std::chrono::steady_clock::now();
        require_refused(path, {"the HDF5 parser used more than its CPU time limit (" +
                                   std::to_string(limits.cpu_seconds) + " s)",
                               "damaged or hostile"});
        const double elapsed = seconds_since(start);
        // The child has burnt 5 s of CPU when SIGXCPU ends it, so at least that long
        // (one core is enough: 4.5 s leaves room for clock granularity), and far less
        // than the 120 s wall clock: 60 s allows a machine whose other work leaves the
        // child under a tenth of a core.
        CHECK(elapsed > limits.cpu_seconds - 0.5);
        CHECK(elapsed < 60.0);
    }
    SECTION("a parser that waits (a slow disk) is not charged CPU time: the wall clock stops it") {
        const ScopedEnv hook("NST_TEST_HDF5_CHILD", "hang");
        const ScopedEnv timeout("NST_HDF5_TIMEOUT_S", "7");
        const auto start = std::chrono::steady_clock::now();
        // 7 s of waiting is more than the 5 s CPU limit: only the wall clock applies.
        require_refused(path, {"the HDF5 parser took longer than 7 s", "damaged or hostile"});
        CHECK(seconds_since(start) > 6.5);
    }
    SECTION("a parser that allocates without bound hits its memory limit") {
        const ScopedEnv hook("NST_TEST_HDF5_CHILD", "alloc");
#if NST_TEST_UNDER_ASAN
        // AddressSanitizer's allocator aborts the child when the address-space
        // limit stops it (its out-of-memory report), so the parent sees a crash:
        // still one line naming the file, which is the promise.
        require_refused(path, {"the HDF5 parser", "damaged or hostile"});
#else
        require_refused(path, {"the HDF5 parser ran out of memory", "MiB", "damaged or hostile"});
#endif
    }
    SECTION("after a failed child the next read works, nothing printed, no child left") {
        {
            const ScopedEnv hook("NST_TEST_HDF5_CHILD", "segv");
            const std::string printed = captured_stderr(
                dir.file("stderr.txt"), [&] { require_refused(path, {"crashed"}); });
            CHECK(printed.empty());
        }
        require_same(nst::read_weights(path), w);
        CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);  // every child reaped (ECHILD)
    }
}

TEST_CASE("weights reader refuses hostile structure before allocating", "[weights][isolation]") {
    nst::test::TempDir dir("weights-hostile");
    const std::string path = dir.file("w.h5");
    nst::write_weights(path, narrow_network(2, 17));  // conv1_1 (4 filters), conv1_2

    SECTION("a channel count beyond what VGG-19 can be") {
        claim_weight_shape(path, 8192, 1);
        require_refused(path, {"/conv1_1/weight has shape [8192, 3, 3, 3]", "at most 4096"});
    }
    SECTION("a shape that the stored bytes cannot hold") {
        // 4096 filters claimed (442 KB), one filter (108 bytes) stored: refused from
        // the sizes alone, before the 442 KB are allocated.
        claim_weight_shape(path, 4096, 1);
        RawFile(path).put_dataset("/conv1_1/bias", {4096}, std::vector<double>(4096, 0.0));
        require_refused(path, {"/conv1_1/weight claims", "stores only 108 bytes"});
    }
    SECTION("a dataset with nothing stored") {
        claim_weight_shape(path, 4, 0);
        require_refused(path, {"/conv1_1/weight has no data stored"});
    }
    SECTION("an external link to another file") {
        const std::string other = dir.file("other.h5");
        nst::write_weights(other, narrow_network(2, 18));
        {
            RawFile raw(path);
            raw.remove("/conv1_2");
            REQUIRE(H5Lcreate_external(other.c_str(), "/conv1_2", raw.id(), "/conv1_2",
                                       H5P_DEFAULT, H5P_DEFAULT) >= 0);
        }
        require_refused(path, {"/conv1_2 is an external link", "only objects stored in this file"});
    }
    SECTION("a soft link") {
        {
            RawFile raw(path);
            raw.remove("/conv1_1/bias");
            REQUIRE(H5Lcreate_soft("/conv1_2/bias", raw.id(), "/conv1_1/bias", H5P_DEFAULT,
                                   H5P_DEFAULT) >= 0);
        }
        require_refused(path, {"/conv1_1/bias is a soft or user-defined link"});
    }
    SECTION("external raw storage (a FIFO or another file named in the dataset)") {
        const std::string raw_data = dir.file("bias.raw");
        const std::vector<float> bias(4, 0.25f);
        std::ofstream(raw_data, std::ios::binary)
            .write(reinterpret_cast<const char*>(bias.data()), 16);
        {
            RawFile raw(path);
            raw.remove("/conv1_1/bias");
            const hsize_t count = 4;
            const hid_t space = H5Screate_simple(1, &count, nullptr);
            const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
            REQUIRE(H5Pset_external(create, raw_data.c_str(), 0, 16) >= 0);
            const hid_t dataset = H5Dcreate2(raw.id(), "/conv1_1/bias", H5T_IEEE_F32LE, space,
                                             H5P_DEFAULT, create, H5P_DEFAULT);
            REQUIRE(dataset >= 0);
            H5Dclose(dataset);
            H5Pclose(create);
            H5Sclose(space);
        }
        require_refused(path, {"/conv1_1/bias keeps its data in 1 external file(s)"});
    }
}

TEST_CASE("weights strings: the writer uses fixed-length, the reader still takes "
          "variable-length ones",
          "[weights]") {
    nst::test::TempDir dir("weights-strings");
    const std::string path = dir.file("w.h5");
    VggWeights w = narrow_network(2, 19);
    w.extra_attributes["note"] = "UTF-8 \xE2\x86\x92 kept";
    nst::write_weights(path, w);
    {
        RawFile raw(path);
        for (const char* name : {"format", "color_order", "source", "note"}) {
            const hid_t attribute = H5Aopen(raw.id(), name, H5P_DEFAULT);
            const hid_t type = H5Aget_type(attribute);
            INFO("attribute " << name);
            CHECK(H5Tget_class(type) == H5T_STRING);
            CHECK(H5Tis_variable_str(type) == 0);
            H5Tclose(type);
            H5Aclose(attribute);
        }
        // As nst wrote them before, and h5py writes Python strings: variable-length.
        H5Adelete(raw.id(), "source");
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
        const hid_t space = H5Screate(H5S_SCALAR);
        const hid_t attribute =
            H5Acreate2(raw.id(), "source", type, space, H5P_DEFAULT, H5P_DEFAULT);
        const char* text = "written as a variable-length string";
        REQUIRE(H5Awrite(attribute, type, &text) >= 0);
        H5Aclose(attribute);
        H5Sclose(space);
        H5Tclose(type);
    }
    w.source = "written as a variable-length string";
    require_same(nst::read_weights(path), w);
}
