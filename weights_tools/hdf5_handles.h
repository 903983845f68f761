// Small RAII owners for HDF5 C API identifiers, and a scope that silences
// HDF5's error-stack printing (our messages are one line).
#pragma once

#include <hdf5.h>

#include <utility>

namespace nst::weights_tools {

template <herr_t (*Close)(hid_t)>
class Hdf5Handle {
public:
    Hdf5Handle() = default;
    explicit Hdf5Handle(hid_t id) : id_(id) {}
    ~Hdf5Handle() {
        if (id_ >= 0) Close(id_);
    }
    Hdf5Handle(Hdf5Handle&& other) noexcept : id_(std::exchange(other.id_, -1)) {}
    Hdf5Handle& operator=(Hdf5Handle&& other) noexcept {
        if (this != &other) {
            if (id_ >= 0) Close(id_);
            id_ = std::exchange(other.id_, -1);
        }
        return *this;
    }
    Hdf5Handle(const Hdf5Handle&) = delete;
    Hdf5Handle& operator=(const Hdf5Handle&) = delete;

    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }

private:
    hid_t id_ = -1;
};

using H5File = Hdf5Handle<H5Fclose>;
using H5Group = Hdf5Handle<H5Gclose>;
using H5Dataset = Hdf5Handle<H5Dclose>;
using H5Dataspace = Hdf5Handle<H5Sclose>;
using H5Datatype = Hdf5Handle<H5Tclose>;
using H5Attribute = Hdf5Handle<H5Aclose>;

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

}  // namespace nst::weights_tools
