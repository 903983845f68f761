// Signals of the neural-style command line (apps/neural_style.cpp says what each
// does when): the flags the handler sets, and the critical sections a signal
// that ends the process waits for.
#pragma once

#include <atomic>
#include <string>

#include "engine/io/image.h"

namespace nst::cli {

extern std::atomic<bool> g_cancel;          // the run's cancel flag
extern std::atomic<int> g_signal;           // the first signal of the iteration loop
extern std::atomic<bool> g_running;         // iteration 0 has been reported
extern std::atomic<bool> g_progress_open;   // the terminal's progress line awaits its newline

const char* signal_name(int signal);

// SIGINT, SIGTERM and SIGHUP: during set-up they end the process at once; once
// g_running is set the first one sets g_cancel and g_signal, a second one ends it.
void install_signal_handlers();

// A stretch during which a signal that ends the process waits for its end: it
// creates and removes (or renames) a temporary file.
class CriticalSection {
public:
    CriticalSection();
    ~CriticalSection();
    CriticalSection(const CriticalSection&) = delete;
    CriticalSection& operator=(const CriticalSection&) = delete;
};

void save_image_critical(const std::string& path, const Image& image, const SaveOptions& options);

}  // namespace nst::cli
