// Files read as untrusted input and files written whole or not at all: the
// two rules image.cpp keeps, shared with the video files (engine/video).
#pragma once

#include <cstdio>
#include <string>

namespace nst {

// An open file descriptor, closed on destruction (move-only).
class FileDescriptor {
public:
    FileDescriptor() = default;
    explicit FileDescriptor(int descriptor) : descriptor_(descriptor) {}
    ~FileDescriptor();
    FileDescriptor(FileDescriptor&& other) noexcept : descriptor_(other.release()) {}
    FileDescriptor& operator=(FileDescriptor&& other) noexcept;
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    int get() const { return descriptor_; }
    explicit operator bool() const { return descriptor_ >= 0; }
    int release() {
        const int descriptor = descriptor_;
        descriptor_ = -1;
        return descriptor;
    }

private:
    int descriptor_ = -1;
};

// Opens `path` read-only when it is a regular file. A FIFO, device, directory or
// socket is refused from stat() before it is opened, and the file is opened
// O_NONBLOCK and checked again with fstat(), so a FIFO swapped in between cannot
// block the reader. On failure returns an empty descriptor and sets `reason`
// ("No such file or directory", "a FIFO (named pipe), not a regular file").
FileDescriptor open_regular_file(const std::string& path, std::string& reason);

// A file written under a temporary name in its target's folder
// ("." + name + ".tmp-XXXXXX", made by mkstemp) and renamed onto the target by
// commit(), so a failure leaves no partial file and never replaces a good one.
// The temporary is flock()ed while it exists: remove_stale_temporaries()
// (image.h) removes only the ones a killed process left. It has the permissions
// a plain fopen() would have given.
class TemporaryFile {
public:
    // Throws RuntimeFailure "cannot write '<target>': <reason>".
    explicit TemporaryFile(std::string target);
    ~TemporaryFile();  // closes it and, unless committed, removes it
    TemporaryFile(const TemporaryFile&) = delete;
    TemporaryFile& operator=(const TemporaryFile&) = delete;

    const std::string& path() const { return path_; }
    const std::string& target() const { return target_; }
    // A stdio stream over the temporary ("wb"), made on first use.
    std::FILE* stream();
    // Flushes, fsync()s, closes and renames onto the target, then fsync()s the
    // folder (whose failure is not reported: the file is complete by then).
    // Throws RuntimeFailure "cannot write '<target>': <reason>".
    void commit();

private:
    [[noreturn]] void fail(const std::string& reason) const;

    std::string target_, path_;
    FileDescriptor descriptor_;
    std::FILE* stream_ = nullptr;  // owns descriptor_'s number once made
    bool committed_ = false;
};

}  // namespace nst
