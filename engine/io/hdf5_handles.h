// Small RAII owners for HDF5 C API identifiers, and a scope that silences
// HDF5's error-stack printing (nst's messages are one line). Used by the
// weights reader/writer and the weights tools.
#pragma once

#include <hdf5.h>

#include <utility>

namespace nst::hdf5 {

// Owns one hid_t and closes it with the matching H5*close on destruction.
template <herr_t (*Close)(hid_t)>
class Handle {
public:
    Handle() = default;
    explicit Handle(hid_t id) : id_(id) {}
    ~Handle() { close(); }
    Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)) {}
    Handle& operator=(Handle&& other) noexcept {
        if (this != &other) {
            close();
            id_ = std::exchange(other.id_, -1);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;

    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    // Closes now; the return value matters for files, whose close flushes.
    herr_t close() {
        const herr_t status = id_ >= 0 ? Close(id_) : 0;
        id_ = -1;
        return status;
    }

private:
    hid_t id_ = -1;
};

using File = Handle<H5Fclose>;
using Group = Handle<H5Gclose>;
using Dataset = Handle<H5Dclose>;
using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using Attribute = Handle<H5Aclose>;
using PropertyList = Handle<H5Pclose>;

// Turns off HDF5's printing of its error stack for this scope, restoring the
// previous handler afterwards.
class QuietHdf5Errors {
public:
    QuietHdf5Errors() {
        H5Eget_auto2(H5E_DEFAULT, &saved_function_, &saved_data_);
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
    ~QuietHdf5Errors() { H5Eset_auto2(H5E_DEFAULT, saved_function_, saved_data_); }
    QuietHdf5Errors(const QuietHdf5Errors&) = delete;
    QuietHdf5Errors& operator=(const QuietHdf5Errors&) = delete;

private:
    H5E_auto2_t saved_function_ = nullptr;
    void* saved_data_ = nullptr;
};

}  // namespace nst::hdf5
