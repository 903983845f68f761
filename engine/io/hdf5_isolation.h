// Untrusted HDF5 is parsed in a child process (docs/RELIABILITY.md, "Weights files (HDF5)").
//
// libhdf5 1.10 crashes, hangs and allocates gigabytes on hostile files; it cannot be made
// safe from the outside, so every HDF5 file nst reads is parsed by a forked child that runs
// under limits, and only a small, length-prefixed answer crosses back over a pipe:
//
//   parent                                      child (fork, no exec)
//   pipe(), fork() ───────────────────────────▶ limits: RLIMIT_AS/DATA (what the process
//   read the pipe, at most `wall` seconds         already maps + memory_bytes), RLIMIT_CPU
//   (poll); validate every length and count       (`cpu_seconds`, far below `wall`),
//   before allocating for it                      RLIMIT_NOFILE; every other descriptor closed
//                                                 (unless the host has HDF5 files open);
//                                                 dies with the parent (PR_SET_PDEATHSIG)
//                                 ◀─────────────  status byte, then the answer or a message
//   wait4: a signal, a limit, a time-out          _exit (no atexit handlers, no stdio flush)
//   or a short answer → one-line InputError
//
// Why fork without exec: read_weights is a library function (libnst, the Python module),
// which has no helper program it could reliably find and exec. The child calls only HDF5,
// the allocator and write(2): it never enters an OpenMP region (libgomp's pool is not
// copied into a child and would hang it) or CUDA. glibc's fork makes malloc usable in the
// child whatever the other threads held. HDF5 (a serial build, not thread-safe anyway) must
// not be in use by another thread of the parent at that moment; nst calls it from one
// thread only.
//
// Test hook: NST_TEST_HDF5_CHILD=segv|hang|spin|alloc makes the child raise SIGSEGV, sleep
// for ever, burn CPU or allocate without bound before parsing, so that the tests can check
// each way a child can fail. NST_HDF5_TIMEOUT_S overrides the wall-clock limit (seconds);
// the CPU-time limit has no override: a file that needs more is not a VGG-19.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nst::isolation {

struct Limits {
    // Address space the child may add to what the process already maps (RLIMIT_AS and
    // RLIMIT_DATA are set to current + this): room for the largest weights file the
    // reader accepts (kMaxParameters floats, 1 GiB) plus HDF5's chunk cache and buffers.
    std::size_t memory_bytes = std::size_t{2} << 30;
    // Wall clock: what a slow disk or network file system may need; a child that
    // sleeps or waits on I/O uses no CPU and is stopped here.
    double wall_seconds = 120.0;  // real VGG-19 (80 MB) reads in about 1 s
    // CPU time (RLIMIT_CPU, user + system): a parser that spins on a hostile file is
    // stopped after this, long before the wall clock. Measured: the real VGG-19
    // weights (vgg19-conv-hybrid.h5, 42 MB gzip, 20 M parameters) take 0.46–0.66 s
    // of the child's CPU (15 reads on the 2-core development machine at a load of
    // 7–12; getrusage(RUSAGE_CHILDREN)); 5 s is 7.5× the most, room for a slower CPU
    // or a sanitizer build, and a spinning parser is refused within a few seconds.
    int cpu_seconds = 5;
    int open_files = 16;  // the file, HDF5's probes, the pipe
};

// The limits, with NST_HDF5_TIMEOUT_S applied.
Limits default_limits();

// The child's end: raw bytes, written whole (a failed write ends the child). The first
// write marks the start of the answer; nothing may throw after it.
class Writer {
public:
    explicit Writer(int fd) : fd_(fd) {}
    bool started() const { return started_; }
    int fd() const { return fd_; }
    void bytes(const void* data, std::size_t size);
    void u8(std::uint8_t value) { bytes(&value, 1); }
    void u32(std::uint32_t value) { bytes(&value, 4); }
    void u64(std::uint64_t value) { bytes(&value, 8); }
    void f32(float value) { bytes(&value, 4); }
    void text(const std::string& value);                 // u32 length, bytes
    void floats(const std::vector<float>& values);       // u64 count, values

private:
    int fd_;
    bool started_ = false;
};

// The parent's end: every read waits at most until the deadline; lengths and counts are
// checked against the caller's bounds before anything is allocated, and large arrays
// grow as their bytes arrive, so a lying child cannot make the parent allocate more than
// it actually sent. Throws Reader::Broken on end of file, time-out or a bound exceeded.
class Reader {
public:
    struct Broken {
        std::string why;  // "" when the pipe ended or timed out: the child's status tells why
        bool timed_out = false;
    };
    Reader(int fd, double deadline_seconds) : fd_(fd), deadline_(deadline_seconds) {}
    void bytes(void* data, std::size_t size);
    std::uint8_t u8();
    std::uint32_t u32();
    std::uint64_t u64();
    float f32();
    std::string text(std::size_t max_length);
    std::vector<float> floats(std::size_t max_count);
    bool at_end();  // true when the child closed the pipe with nothing more to say

private:
    int fd_;
    double deadline_;  // CLOCK_MONOTONIC seconds
};

// Runs `child(writer)` in a child process and `parent(reader)` on what it wrote.
// `child` must finish all work that can throw before it writes anything. An InputError or
// RuntimeFailure thrown in the child is thrown again in the parent with its message (made
// printable and at most 4 KiB); a crash, a limit, a time-out or an answer that breaks the
// parent's checks becomes InputError("<subject>: the HDF5 parser ...; the file is damaged
// or hostile"). `subject` names the file, e.g. "weights 'x.h5'".
void run_isolated(const std::string& subject, const std::function<void(Writer&)>& child,
                  const std::function<void(Reader&)>& parent,
                  const Limits& limits = default_limits());

}  // namespace nst::isolation
