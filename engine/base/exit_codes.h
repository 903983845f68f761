// How nst's programs end: the one place where an nst::Error becomes one line on
// stderr and an exit code.
//   0 success, 2 usage error, 3 bad input (image, weights, mask),
//   4 failure while running (output not writable, out of memory, device error).
#pragma once

#include <cstdio>
#include <exception>
#include <new>

#include "engine/base/error.h"

namespace nst {

enum ExitCode { exit_success = 0, exit_usage = 2, exit_bad_input = 3, exit_failure = 4 };

// Runs body() and returns its exit code, or prints "<program>: error: <what>"
// and returns the code that matches what was thrown.
template <typename Body>
int run_reporting_errors(const char* program, Body body) {
    const auto fail = [program](const char* what, int code) {
        std::fprintf(stderr, "%s: error: %s\n", program, what);
        return code;
    };
    try {
        return body();
    } catch (const UsageError& e) {
        return fail(e.what(), exit_usage);
    } catch (const InputError& e) {
        return fail(e.what(), exit_bad_input);
    } catch (const std::bad_alloc&) {
        return fail("out of memory", exit_failure);
    } catch (const std::exception& e) {
        return fail(e.what(), exit_failure);
    }
}

}  // namespace nst
