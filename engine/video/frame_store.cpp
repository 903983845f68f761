// The work folder of a video run (engine/video/frame_store.h).
#include "engine/video/frame_store.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/base/error.h"

namespace nst {

namespace fs = std::filesystem;

namespace {

// job.json: the fingerprint as a JSON object. The first entry that differs, for the message.
std::string first_difference(const nlohmann::json& written, const std::map<std::string, std::string>& expected) {
    for (const auto& [name, value] : expected) {
        const auto entry = written.find(name);
        if (entry == written.end() || !entry->is_string()) return name + " (not recorded there)";
        const std::string before = entry->get<std::string>();
        if (before != value) return name + ": '" + before.substr(0, 60) + "' there, '" + value.substr(0, 60) + "' now";
    }
    return "an entry this version does not write";
}

void write_atomically(const std::string& path, const std::string& text) {
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << text;
        out.flush();
        if (!out) throw RuntimeFailure(temporary + ": cannot write (" + std::strerror(errno) + ")");
    }
    std::error_code error;
    fs::rename(temporary, path, error);
    if (error) throw RuntimeFailure(path + ": cannot write (" + error.message() + ")");
}

}  // namespace

FrameStore::FrameStore(std::string folder, const std::map<std::string, std::string>& fingerprint)
    : folder_(std::move(folder)), fingerprint_(fingerprint) {
    std::ifstream in(folder_ + "/job.json", std::ios::binary);
    if (!in) return;  // a new run: the folder is made with its first frame
    const nlohmann::json written = nlohmann::json::parse(in, nullptr, false);
    if (written != nlohmann::json(fingerprint))
        throw UsageError(folder_ + " holds frames of another run (" +
                         (written.is_object() ? first_difference(written, fingerprint) : "job.json unreadable") +
                         "); remove the folder to start over, or rerun the command that made it");
    created_ = true;
}

void FrameStore::create() {
    if (created_) return;
    std::error_code error;
    fs::create_directories(folder_, error);
    if (error || !fs::is_directory(folder_))
        throw RuntimeFailure(folder_ + ": cannot create the work folder (" + error.message() + ")");
    write_atomically(folder_ + "/job.json", nlohmann::json(fingerprint_).dump(2) + "\n");
    created_ = true;
}

std::string FrameStore::path(int pass, long long index) const {
    char name[64];
    std::snprintf(name, sizeof name, "/pass%d/%06lld.png", pass, index);
    return folder_ + name;
}

bool FrameStore::has(int pass, long long index) const {
    std::error_code error;
    return fs::is_regular_file(path(pass, index), error);
}

Image FrameStore::load(int pass, long long index) const { return load_image(path(pass, index)); }

void FrameStore::save(int pass, long long index, const Image& frame) {
    create();
    std::error_code error;
    fs::create_directories(folder_ + "/pass" + std::to_string(pass), error);
    SaveOptions options;
    options.png_bit_depth = 16;
    save_image(path(pass, index), frame, options);  // atomic: a temporary renamed
}

void FrameStore::drop_pass(int pass) {
    std::error_code error;
    fs::remove_all(folder_ + "/pass" + std::to_string(pass), error);
}

Image FrameStore::stored(Image frame) {
    // save_image's 16-bit rounding (engine/io/image.cpp, to_16bit), read back as
    // load_image reads it (value / 65535).
    for (float& v : frame.pixels) {
        const unsigned level = !(v > 0.0f) ? 0u
                               : v >= 1.0f ? 65535u
                                           : unsigned(static_cast<int>(static_cast<double>(v) * 65535.0 + 0.5));
        v = float(level) / 65535.0f;
    }
    return frame;
}

long long FrameStore::frame_bytes(int width, int height) {
    // 16-bit RGB rows, a filter byte per row, and PNG's chunk overhead (zlib may
    // only add 5 bytes per 64 KiB block of stored data).
    const long long raw = (6LL * width + 1) * height;
    return raw + raw / 65535 * 5 + 4096;
}

void Fingerprint::add(const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t k = 0; k < bytes; ++k) {
        state_ ^= p[k];
        state_ *= 1099511628211ULL;
    }
}

void Fingerprint::add(const Image& image) {
    add(&image.width, sizeof image.width);
    add(&image.height, sizeof image.height);
    add(image.pixels.data(), image.pixels.size() * sizeof(float));
}

std::string Fingerprint::hex() const {
    char text[20];
    std::snprintf(text, sizeof text, "%016llx", state_);
    return text;
}

}  // namespace nst
