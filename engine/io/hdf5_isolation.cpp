// The child process that parses untrusted HDF5, and the parent's side of the pipe
// (engine/io/hdf5_isolation.h).
#include "engine/io/hdf5_isolation.h"

#include <hdf5.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "engine/base/error.h"

namespace nst::isolation {

namespace {

// The first byte the child sends.
enum Status : std::uint8_t {
    kAnswer = 'A',         // the caller's answer follows
    kInputError = 'I',     // u32 length + message
    kRuntimeFailure = 'R', // u32 length + message
    kOutOfMemory = 'M',    // nothing follows
};

constexpr std::size_t kMaxMessage = 4096;
constexpr int kChildPipe = 3;       // the pipe's write end in the child
constexpr int kExitWriteFailed = 120;

double now_seconds() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

// VmSize or VmData of this process in bytes (0 when /proc is unavailable).
std::size_t mapped_bytes(const char* field) {
    FILE* status = std::fopen("/proc/self/status", "r");
    if (!status) return 0;
    char line[256];
    std::size_t kib = 0;
    const std::size_t length = std::strlen(field);
    while (std::fgets(line, sizeof line, status))
        if (std::strncmp(line, field, length) == 0 && line[length] == ':')
            kib = std::strtoull(line + length + 1, nullptr, 10);
    std::fclose(status);
    return kib * 1024;
}

void limit(int resource, rlim_t soft, rlim_t hard) {
    const rlimit value{soft, hard};
    setrlimit(resource, &value);  // best effort: a limit that cannot be set is not set
}

// Limits relative to what the process already maps: the child starts as a copy of the
// parent (its buffers, thread stacks and, under ASan, terabytes of reserved shadow), and
// only what it adds while parsing should count.
void apply_limits(const Limits& limits, bool limit_files) {
    const std::size_t address_space = mapped_bytes("VmSize");
    const std::size_t data = mapped_bytes("VmData");
    if (address_space) limit(RLIMIT_AS, address_space + limits.memory_bytes,
                             address_space + limits.memory_bytes);
    if (data) limit(RLIMIT_DATA, data + limits.memory_bytes, data + limits.memory_bytes);
    // SIGXCPU at the soft limit, SIGKILL a second later: a spinning parser ends in
    // seconds, while one waiting on a slow disk (little CPU) gets the parent's wall
    // clock. This one also holds if the parent is stopped.
    const rlim_t cpu = static_cast<rlim_t>(std::max(1, limits.cpu_seconds));
    limit(RLIMIT_CPU, cpu, cpu + 1);
    if (limit_files) limit(RLIMIT_NOFILE, rlim_t(limits.open_files), rlim_t(limits.open_files));
    limit(RLIMIT_CORE, 0, 0);  // a crash on a hostile file leaves no core file behind
}

void run_test_hook() {
    const char* hook = std::getenv("NST_TEST_HDF5_CHILD");
    if (!hook) return;
    const std::string what = hook;
    if (what == "segv") raise(SIGSEGV);
    if (what == "hang")
        for (;;) pause();
    if (what == "spin")
        for (volatile unsigned long i = 0;; i = i + 1) {
        }
    if (what == "alloc") {
        // Untouched blocks: the address-space limit stops this, not the machine's RAM.
        std::vector<std::unique_ptr<char[]>> hog;
        for (;;) hog.emplace_back(new char[std::size_t{64} << 20]);
    }
}

void write_all(int fd, const void* data, std::size_t size) {
    const char* at = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t written = ::write(fd, at, std::min<std::size_t>(size, 1 << 20));
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) _exit(kExitWriteFailed);  // the parent is gone or gave up
        at += written;
        size -= static_cast<std::size_t>(written);
    }
}

// An error frame; only possible before any of the answer was written.
void send_status(const Writer& out, Status status, const char* message = nullptr) {
    if (out.started()) _exit(kExitWriteFailed);  // half an answer: the parent sees a short pipe
    const std::uint8_t byte = status;
    write_all(out.fd(), &byte, 1);
    if (!message) return;
    const std::uint32_t length =
        static_cast<std::uint32_t>(std::min(std::strlen(message), kMaxMessage));
    write_all(out.fd(), &length, 4);
    write_all(out.fd(), message, length);
}

// keep_descriptors: the parent has HDF5 files open, and the child's copy of HDF5's state
// refers to their descriptors (opening one of those files again reuses them).
[[noreturn]] void child_main(int write_end, const Limits& limits, bool keep_descriptors,
                             const std::function<void(Writer&)>& child) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Ctrl-C reaches the whole process group: the child stops at once, the parent decides.
    // A crash must end the child with its signal, whatever handler the host program
    // installed (a test framework's, a crash reporter's, a sanitizer's): the parent
    // reads the signal from the exit status.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
                    SIGTRAP, SIGSYS, SIGXCPU})
        signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int pipe_end = write_end;
    if (!keep_descriptors && write_end != kChildPipe) {
        if (dup2(write_end, kChildPipe) < 0) _exit(kExitWriteFailed);
        close(write_end);
        pipe_end = kChildPipe;
    }
    // Only stdin/stdout/stderr and the pipe stay open: the parent's files, sockets and
    // devices are out of reach, and RLIMIT_NOFILE then bounds what the parser opens.
    if (!keep_descriptors && close_range(kChildPipe + 1, ~0U, 0) != 0)
        for (int fd = kChildPipe + 1; fd < 4096; ++fd) close(fd);
    apply_limits(limits, /*limit_files=*/!keep_descriptors);

    // Nothing may leave this function but _exit: an exception escaping into the copy of
    // the caller's stack would run the parent's code a second time.
    Writer out(pipe_end);
    try {
        run_test_hook();
        child(out);
        out.bytes(nullptr, 0);  // an empty answer still starts with its status byte
    } catch (const std::bad_alloc&) {
        send_status(out, kOutOfMemory);
    } catch (const InputError& e) {
        send_status(out, kInputError, e.what());
    } catch (const std::exception& e) {
        send_status(out, kRuntimeFailure, e.what());
    } catch (...) {
        send_status(out, kRuntimeFailure, "unknown error");
    }
    _exit(0);
}

// The child's message, made one printable line.
std::string printable(std::string text) {
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return text;
}

std::string signal_name(int sig) {
    switch (sig) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS: return "SIGBUS";
        case SIGFPE: return "SIGFPE";
        case SIGILL: return "SIGILL";
        case SIGABRT: return "SIGABRT";
        case SIGTRAP: return "SIGTRAP";
        case SIGSYS: return "SIGSYS";
        case SIGKILL: return "SIGKILL";
        case SIGXCPU: return "SIGXCPU";
        case SIGXFSZ: return "SIGXFSZ";
        case SIGINT: return "SIGINT";
        case SIGTERM: return "SIGTERM";
        case SIGHUP: return "SIGHUP";
        default: return "signal " + std::to_string(sig);
    }
}

// Owns the child until it is reaped: an early exit from run_isolated kills it.
class Child {
public:
    Child(pid_t pid, int read_end) : pid_(pid), read_end_(read_end) {}
    ~Child() {
        if (read_end_ >= 0) close(read_end_);
        if (pid_ > 0) reap(/*kill_first=*/true);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    int read_end() const { return read_end_; }
    // Waits for the child to end (killing it first when asked) and returns its status.
    int reap(bool kill_first = false) {
        if (read_end_ >= 0) close(read_end_);
        read_end_ = -1;
        if (pid_ <= 0) return status_;  // reaped already: never kill(-1, ...)
        if (kill_first) kill(pid_, SIGKILL);
        rusage usage{};
        while (wait4(pid_, &status_, 0, &usage) < 0 && errno == EINTR) {
        }
        cpu_seconds_ = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
        pid_ = -1;
        return status_;
    }
    // The CPU time (user + system) the reaped child used.
    double cpu_seconds() const { return cpu_seconds_; }

private:
    pid_t pid_;
    int read_end_;
    int status_ = 0;
    double cpu_seconds_ = 0;
};

}  // namespace

Limits default_limits() {
    Limits limits;
    if (const char* text = std::getenv("NST_HDF5_TIMEOUT_S"); text && *text) {
        char* end = nullptr;
        const double seconds = std::strtod(text, &end);
        if (end && *end == '\0' && seconds > 0 && seconds <= 86400) limits.wall_seconds = seconds;
    }
    return limits;
}

// ---- Writer ---------------------------------------------------------------------------------

void Writer::bytes(const void* data, std::size_t size) {
    if (!started_) {
        const std::uint8_t answer = kAnswer;
        write_all(fd_, &answer, 1);
        started_ = true;
    }
    write_all(fd_, data, size);
}

void Writer::text(const std::string& value) {
    u32(static_cast<std::uint32_t>(value.size()));
    bytes(value.data(), value.size());
}

void Writer::floats(const std::vector<float>& values) {
    u64(values.size());
    bytes(values.data(), values.size() * sizeof(float));
}

// ---- Reader ---------------------------------------------------------------------------------

void Reader::bytes(void* data, std::size_t size) {
    char* at = static_cast<char*>(data);
    while (size > 0) {
        const double left = deadline_ - now_seconds();
        if (left <= 0) throw Broken{"", true};
        pollfd ready{fd_, POLLIN, 0};
        const int polled = ::poll(&ready, 1, static_cast<int>(std::ceil(left * 1000.0)));
        if (polled < 0 && errno == EINTR) continue;
        if (polled < 0) throw Broken{std::string("poll failed: ") + std::strerror(errno)};
        if (polled == 0) continue;  // the deadline check above ends the wait
        const ssize_t got = ::read(fd_, at, size);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) throw Broken{};  // the child ended early: its status says why
        at += got;
        size -= static_cast<std::size_t>(got);
    }
}

std::uint8_t Reader::u8() {
    std::uint8_t value = 0;
    bytes(&value, 1);
    return value;
}
std::uint32_t Reader::u32() {
    std::uint32_t value = 0;
    bytes(&value, 4);
    return value;
}
std::uint64_t Reader::u64() {
    std::uint64_t value = 0;
    bytes(&value, 8);
    return value;
}
float Reader::f32() {
    float value = 0;
    bytes(&value, 4);
    return value;
}

std::string Reader::text(std::size_t max_length) {
    const std::uint32_t length = u32();
    if (length > max_length)
        throw Broken{"a text of " + std::to_string(length) + " bytes, at most " +
                     std::to_string(max_length) + " expected"};
    std::string value(length, '\0');
    bytes(value.data(), length);
    return value;
}

std::vector<float> Reader::floats(std::size_t max_count) {
    const std::uint64_t count = u64();
    if (count > max_count)
        throw Broken{"an array of " + std::to_string(count) + " values, at most " +
                     std::to_string(max_count) + " expected"};
    // Grown as the values arrive (doubling, capped at the count), so that what the
    // parent holds is never much more than what the child really sent.
    std::vector<float> values;
    std::size_t done = 0;
    while (done < count) {
        const std::size_t capacity =
            std::min<std::size_t>(count, std::max<std::size_t>(values.size() * 2, 1 << 20));
        values.reserve(capacity);
        values.resize(capacity);
        bytes(values.data() + done, (capacity - done) * sizeof(float));
        done = capacity;
    }
    return values;
}

bool Reader::at_end() {
    char extra = 0;
    try {
        bytes(&extra, 1);
    } catch (const Broken& broken) {
        if (broken.timed_out) throw;
        return broken.why.empty();
    }
    return false;
}

// ---- run_isolated ---------------------------------------------------------------------------

void run_isolated(const std::string& subject, const std::function<void(Writer&)>& child,
                  const std::function<void(Reader&)>& parent, const Limits& limits) {
    const std::string hostile = "; the file is damaged or hostile";
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0)
        throw RuntimeFailure(subject + ": cannot make a pipe for the HDF5 reader (" +
                             std::strerror(errno) + ")");
    // In nst's programs HDF5 has no file open here; a host program (a test, a tool)
    // may have, and then the child keeps the inherited descriptors HDF5 refers to.
    const bool hdf5_files_open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE) > 0;
    const pid_t pid = fork();
    if (pid < 0) {
        const int error = errno;
        close(ends[0]);
        close(ends[1]);
        throw RuntimeFailure(subject + ": cannot start the HDF5 reader process (" +
                             std::strerror(error) + ")");
    }
    if (pid == 0) {
        close(ends[0]);
        child_main(ends[1], limits, hdf5_files_open, child);
    }
    close(ends[1]);
    // A larger pipe (1 MiB, Linux's default ceiling for unprivileged users) means fewer
    // wake-ups while 80 MB of weights go through; the default 64 KiB also works.
    fcntl(ends[0], F_SETPIPE_SZ, 1 << 20);
    Child process(pid, ends[0]);
    Reader in(process.read_end(), now_seconds() + limits.wall_seconds);

    std::string broken_why;
    bool timed_out = false;
    try {
        const std::uint8_t status = in.u8();
        if (status == kAnswer) {
            parent(in);
            if (!in.at_end()) throw Reader::Broken{"more data than the answer holds"};
            const int exit_status = process.reap();
            if (WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0) return;
            throw Reader::Broken{};  // answered, then died: trust nothing it sent
        }
        if (status == kOutOfMemory)
            throw InputError(subject + ": the HDF5 parser ran out of memory (its limit is " +
                             std::to_string(limits.memory_bytes >> 20) + " MiB) reading it" +
                             hostile);
        if (status == kInputError || status == kRuntimeFailure) {
            const std::string message = printable(in.text(kMaxMessage));
            if (status == kInputError) throw InputError(message);
            throw RuntimeFailure(message);
        }
        throw Reader::Broken{"an unknown status byte " + std::to_string(status)};
    } catch (const Reader::Broken& broken) {
        broken_why = broken.why;
        timed_out = broken.timed_out;
    }

    const int exit_status = process.reap(/*kill_first=*/true);
    const double cpu_seconds_used = process.cpu_seconds();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", limits.wall_seconds);
    if (timed_out)
        throw InputError(subject + ": the HDF5 parser took longer than " + seconds +
                         " s reading it" + hostile);
    if (!broken_why.empty())
        throw InputError(subject + ": the HDF5 parser returned inconsistent data (" +
                         printable(broken_why) + ")" + hostile);
    if (WIFSIGNALED(exit_status)) {
        const int sig = WTERMSIG(exit_status);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
            throw RuntimeFailure(subject + ": reading was interrupted (" + signal_name(sig) + ")");
        if (sig == SIGXCPU || (sig == SIGKILL && cpu_seconds_used >= limits.cpu_seconds))
            throw InputError(subject + ": the HDF5 parser used more than its CPU time limit (" +
                             std::to_string(std::max(1, limits.cpu_seconds)) + " s) reading it" +
                             hostile);
        throw InputError(subject + ": the HDF5 parser crashed (" + signal_name(sig) +
                         ") reading it" + hostile);
    }
    const int code = WIFEXITED(exit_status) ? WEXITSTATUS(exit_status) : -1;
    throw InputError(subject + ": the HDF5 parser stopped (exit status " + std::to_string(code) +
                     ") without an answer reading it" + hostile);
}

}  // namespace nst::isolation
