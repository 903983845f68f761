// Signals of the neural-style command line (apps/cli_signals.h).
#include "apps/cli_signals.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace nst::cli {

std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};
std::atomic<bool> g_running{false};
std::atomic<bool> g_progress_open{false};

namespace {

std::atomic<bool> g_critical{false};  // a save or the output probe is in progress
std::atomic<int> g_exit_after{0};     // a signal that must end the process after it

void write_stderr(const char* text) {
    ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
    (void)ignored;
}

// Async-signal-safe: write(2) and _exit(2) only.
[[noreturn]] void exit_on_signal(int signal) {
    if (g_progress_open.load()) write_stderr("\n");
    write_stderr("neural-style: interrupted by ");
    write_stderr(signal_name(signal));
    write_stderr(g_running.load() ? " again; stopped at once without writing the image of this iteration\n"
                                  : " during set-up; nothing was written\n");
    ::_exit(128 + signal);
}

extern "C" void on_signal(int signal) {
    if (g_running.load() && g_signal.load() == 0) {
        g_signal = signal;  // stop after this iteration, then write the image
        g_cancel = true;
        return;
    }
    // Set-up, or a second signal. g_exit_after is set before g_critical is read,
    // and CriticalSection clears g_critical before it reads g_exit_after, so one
    // of the two always sees the other.
    g_exit_after = signal;
    if (!g_critical.load()) exit_on_signal(signal);
}

}  // namespace

const char* signal_name(int signal) {
    switch (signal) {
        case SIGINT: return "SIGINT";
        case SIGTERM: return "SIGTERM";
        case SIGHUP: return "SIGHUP";
        default: return "a signal";
    }
}

CriticalSection::CriticalSection() { g_critical = true; }

CriticalSection::~CriticalSection() {
    g_critical = false;
    if (const int signal = g_exit_after.load()) exit_on_signal(signal);
}

void save_image_critical(const std::string& path, const Image& image, const SaveOptions& options) {
    CriticalSection section;
    save_image(path, image, options);
}

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    // In set-up the handler never returns, so a blocking call there ends with the
    // process. In the loop it returns, and SA_RESTART lets a write to a pipe or a
    // terminal that it interrupted carry on instead of failing with EINTR.
    action.sa_flags = SA_RESTART;
    for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal, &action, nullptr);
}

}  // namespace nst::cli
