// Checks for untrusted HDF5 files (engine/io/hdf5_checks.h).
#include "engine/io/hdf5_checks.h"

#include <cstdio>

#include "engine/base/error.h"
#include "engine/io/hdf5_handles.h"

namespace nst::hdf5 {

std::string type_class_name(H5T_class_t type_class) {
    switch (type_class) {
        case H5T_INTEGER: return "integer";
        case H5T_FLOAT: return "floating-point";
        case H5T_STRING: return "string";
        case H5T_COMPOUND: return "compound";
        case H5T_ENUM: return "enum";
        case H5T_ARRAY: return "array";
        case H5T_VLEN: return "variable-length";
        default: return "unsupported";
    }
}

void require_hard_link(const std::string& prefix, hid_t location, const std::string& name,
                       const std::string& shown) {
    H5L_info_t info{};
    if (H5Lget_info(location, name.c_str(), &info, H5P_DEFAULT) < 0)
        throw InputError(prefix + "cannot read the link " + shown);
    if (info.type == H5L_TYPE_HARD) return;
    throw InputError(prefix + shown + " is " +
                     (info.type == H5L_TYPE_EXTERNAL ? "an external link (to another file)"
                                                     : "a soft or user-defined link") +
                     "; only objects stored in this file are read");
}

bool hard_links_along(const std::string& prefix, hid_t location, const std::string& path,
                      const std::string& shown_parent) {
    // H5Lexists and H5Lget_info on "a/b" traverse "a" first: check each prefix in turn,
    // so no link is followed before it is known to be hard.
    for (std::size_t end = path.find('/');; end = path.find('/', end + 1)) {
        const std::string part = path.substr(0, end);
        if (!part.empty() && part.back() != '/') {
            if (H5Lexists(location, part.c_str(), H5P_DEFAULT) <= 0) return false;
            require_hard_link(prefix, location, part, shown_parent + part);
        }
        if (end == std::string::npos) return true;
    }
}

void check_filters(const std::string& prefix, hid_t dataset, const std::string& shown) {
    PropertyList create_list(H5Dget_create_plist(dataset));
    if (!create_list.valid()) return;
    const int filter_count = H5Pget_nfilters(create_list.get());
    for (int f = 0; f < filter_count; ++f) {
        unsigned flags = 0;
        std::size_t value_count = 0;
        char filter_name[64] = {};
        unsigned filter_config = 0;
        const H5Z_filter_t filter =
            H5Pget_filter2(create_list.get(), static_cast<unsigned>(f), &flags, &value_count,
                           nullptr, sizeof filter_name, filter_name, &filter_config);
        if (filter >= 0 && H5Zfilter_avail(filter) <= 0)
            throw InputError(prefix + shown + " is compressed with HDF5 filter " +
                             std::to_string(filter) + " ('" + filter_name +
                             "'), which this build cannot decode");
    }
}

void check_storage_is_inside(const std::string& prefix, hid_t dataset, const std::string& shown) {
    PropertyList create_list(H5Dget_create_plist(dataset));
    if (!create_list.valid()) throw InputError(prefix + "cannot read how " + shown + " is stored");
    const int external = H5Pget_external_count(create_list.get());
    if (external != 0)
        throw InputError(prefix + shown + " keeps its data in " +
                         (external > 0 ? std::to_string(external) : std::string("some")) +
                         " external file(s); only data stored in this file is read");
    const H5D_layout_t layout = H5Pget_layout(create_list.get());
    if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED)
        throw InputError(prefix + shown + " is a virtual dataset or has an unknown layout; only "
                         "data stored in this file is read");
}

void check_stored_size(const std::string& prefix, hid_t dataset, std::size_t elements,
                       const std::string& shown) {
    Datatype type(H5Dget_type(dataset));
    const std::size_t value_bytes = type.valid() ? H5Tget_size(type.get()) : 0;
    if (value_bytes == 0 || value_bytes > 16)
        throw InputError(prefix + shown + " has an element type of " +
                         std::to_string(value_bytes) + " bytes");
    const double claimed = double(elements) * double(value_bytes);
    const hsize_t stored = H5Dget_storage_size(dataset);
    if (stored == 0) throw InputError(prefix + shown + " has no data stored (never written)");
    if (claimed > double(stored) * kMaxExpansion) {
        char bytes[32];
        std::snprintf(bytes, sizeof bytes, "%g", claimed);
        throw InputError(prefix + shown + " claims " + bytes + " bytes of values " +
                         "but the file stores only " + std::to_string(stored) +
                         " bytes for it (more than gzip can expand)");
    }
}

}  // namespace nst::hdf5
