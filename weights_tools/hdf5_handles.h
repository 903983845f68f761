// The engine's HDF5 handles (engine/io/hdf5_handles.h) under the names the weights
// tools use.
#pragma once

#include "engine/io/hdf5_handles.h"

namespace nst::weights_tools {

using H5File = hdf5::File;
using H5Group = hdf5::Group;
using H5Dataset = hdf5::Dataset;
using H5Dataspace = hdf5::Dataspace;
using H5Datatype = hdf5::Datatype;
using H5Attribute = hdf5::Attribute;
using hdf5::QuietHdf5Errors;

}  // namespace nst::weights_tools
