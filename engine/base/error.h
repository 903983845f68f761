// Errors: every failure in engine/ and kernels/ throws one of these; only
// main() turns an error into a message and an exit code (see apps/).
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

namespace nst {

// Base class. what() is one line that names what failed and why.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Bad command-line usage or option values (exit code 2).
class UsageError : public Error {
public:
    using Error::Error;
};

// Bad input data: an image, a weights file, a mask (exit code 3).
class InputError : public Error {
public:
    using Error::Error;
};

// Failure while running: out of memory, a device or library error, an
// unwritable output (exit code 4).
class RuntimeFailure : public Error {
public:
    using Error::Error;
};

// A device (CUDA, cuDNN, cuBLAS) error; runs fail with exit code 4.
class DeviceError : public RuntimeFailure {
public:
    using RuntimeFailure::RuntimeFailure;
};

// Not enough host or device memory for a run, found at an allocation or up
// front by the memory plan (exit code 4; MemoryError in Python).
class OutOfMemory : public RuntimeFailure {
public:
    using RuntimeFailure::RuntimeFailure;
};

// "file.cpp:123" for error messages that point at the failing call.
inline std::string source_location(const char* file, int line) {
    const char* base = std::strrchr(file, '/');
    return std::string(base ? base + 1 : file) + ":" + std::to_string(line);
}

}  // namespace nst

// Throws nst::Error when an internal invariant does not hold. Used for
// programming errors (a caller broke a precondition), not for bad input.
#define NST_ASSERT(cond)                                                                   \
    do {                                                                                   \
        if (!(cond))                                                                       \
            throw ::nst::Error(::nst::source_location(__FILE__, __LINE__) +                \
                               ": internal check failed: " #cond);                        \
    } while (0)
