// Shared by the fuzz targets: the fuzz input written to a file that the loaders
// open by path (nst's loaders take paths, not memory). The file lives in
// /dev/shm when it exists (no disk I/O per execution), else in $TMPDIR or /tmp,
// is named after the process (parallel fuzzers do not collide) and is removed
// at exit.
#pragma once

#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace nst::fuzz {

class InputFile {
public:
    explicit InputFile(const char* suffix) {
        const char* dir = nullptr;
        if (access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
        else if (const char* env = std::getenv("TMPDIR")) dir = env;
        else dir = "/tmp";
        path_ = std::string(dir) + "/nst-fuzz-" + std::to_string(getpid()) + suffix;
    }
    ~InputFile() { std::remove(path_.c_str()); }
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    // Replaces the file's content with data[0, size); aborts when it cannot
    // (a harness failure, not a finding).
    const std::string& write(const std::uint8_t* data, std::size_t size) {
        std::FILE* f = std::fopen(path_.c_str(), "wb");
        if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
            std::perror(path_.c_str());
            std::abort();
        }
        return path_;
    }

private:
    std::string path_;
};

// For targets whose code under test forks a child that may crash on purpose (the
// isolated HDF5 parser): libFuzzer's crash reporting (the sanitizers' death
// callback and its handlers for SIGABRT, SIGFPE, SIGILL, SIGBUS) is inherited by
// the child, which would then write a crash-<hash> file for an input the parent
// handled as promised. In every forked child these are reset, so the child dies
// plainly (its sanitizer report still goes to stderr) and only the parent's
// failures are findings. Call once, from LLVMFuzzerInitialize.
inline void forked_children_do_not_report() {
    pthread_atfork(nullptr, nullptr, [] {
        __sanitizer_set_death_callback(nullptr);
        for (const int sig : {SIGABRT, SIGFPE, SIGILL, SIGBUS}) signal(sig, SIG_DFL);
    });
}

// Aborts with a message: a broken promise of the API under test is a finding.
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz: broken invariant: %s\n", what);
    std::abort();
}

}  // namespace nst::fuzz
