#include "engine/io/files.h"

#include "engine/base/error.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nst {

namespace {

const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

// Permissions a plain fopen() would have given (mkstemp creates files as 0600).
// umask() can only be read by setting it; the window is a few instructions and
// saving happens outside any parallel region.
mode_t default_file_mode() {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    return static_cast<mode_t>(0666 & ~mask);
}

}  // namespace

FileDescriptor::~FileDescriptor() {
    if (descriptor_ >= 0) ::close(descriptor_);
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
        if (descriptor_ >= 0) ::close(descriptor_);
        descriptor_ = other.release();
    }
    return *this;
}

FileDescriptor open_regular_file(const std::string& path, std::string& reason) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
        reason = std::strerror(errno);
        return {};
    }
    if (!S_ISREG(status.st_mode)) {
        reason = std::string(file_kind(status.st_mode)) + ", not a regular file";
        return {};
    }
    // O_NONBLOCK: should a FIFO replace the file after stat(), open() does not wait
    // for a writer and fstat() refuses it.
    FileDescriptor file(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!file) {
        reason = std::strerror(errno);
        return {};
    }
    if (::fstat(file.get(), &status) != 0 || !S_ISREG(status.st_mode)) {
        reason = std::string(file_kind(status.st_mode)) + ", not a regular file";
        return {};
    }
    return file;
}

TemporaryFile::TemporaryFile(std::string target) : target_(std::move(target)) {
    const std::size_t slash = target_.find_last_of('/');
    const std::string directory = slash == std::string::npos ? "" : target_.substr(0, slash + 1);
    const std::string name = slash == std::string::npos ? target_ : target_.substr(slash + 1);
    const std::string temporary_template = directory + "." + name + ".tmp-XXXXXX";
    // The temporary is locked while it exists (remove_stale_temporaries() leaves
    // locked ones alone). Should a cleaner have removed it between mkstemp() and
    // flock(), its link count is 0: make another.
    for (int attempt = 0;; ++attempt) {
        path_ = temporary_template;
        descriptor_ = FileDescriptor(::mkstemp(path_.data()));
        if (!descriptor_) {
            path_.clear();
            fail(std::strerror(errno));
        }
        struct stat status {};
        if (::flock(descriptor_.get(), LOCK_EX) != 0 || ::fstat(descriptor_.get(), &status) != 0 ||
            status.st_nlink > 0 || attempt == 10)
            break;  // locked (or locks unsupported: then nothing cleans up either)
    }
    if (::fchmod(descriptor_.get(), default_file_mode()) != 0) {
        const int saved = errno;
        ::unlink(path_.c_str());  // the destructor does not run for a throwing constructor
        fail(std::strerror(saved));
    }
}

TemporaryFile::~TemporaryFile() {
    if (stream_) {
        std::fclose(stream_);
        descriptor_.release();
    }
    descriptor_ = FileDescriptor();
    if (!committed_ && !path_.empty()) ::unlink(path_.c_str());
}

void TemporaryFile::fail(const std::string& reason) const {
    throw RuntimeFailure("cannot write '" + target_ + "': " + reason);
}

std::FILE* TemporaryFile::stream() {
    if (!stream_) {
        stream_ = ::fdopen(descriptor_.get(), "wb");
        if (!stream_) fail(std::strerror(errno));
    }
    return stream_;
}

void TemporaryFile::commit() {
    errno = 0;
    if (stream_ && (std::fflush(stream_) != 0 || std::ferror(stream_))) fail(std::strerror(errno));
    if (::fsync(descriptor_.get()) != 0) fail(std::strerror(errno));
    if (stream_) {
        std::FILE* stream = stream_;
        stream_ = nullptr;
        descriptor_.release();
        if (std::fclose(stream) != 0) fail(std::strerror(errno));
    } else if (::close(descriptor_.release()) != 0) {
        fail(std::strerror(errno));
    }
    if (std::rename(path_.c_str(), target_.c_str()) != 0) fail(std::strerror(errno));
    committed_ = true;

    // Make the rename itself durable; a failure here leaves a complete file, so it
    // is not reported.
    const std::size_t slash = target_.find_last_of('/');
    const std::string directory = slash == std::string::npos ? "." : target_.substr(0, slash + 1);
    FileDescriptor folder(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (folder) ::fsync(folder.get());
}

}  // namespace nst
