// Parsing a weights file in the isolated child (engine/io/hdf5_isolation.h) and checking
// what comes back. Internal to nst: read_weights and nst-weights' Keras import use it.
#pragma once

#include <functional>
#include <string>

#include "engine/io/weights.h"

namespace nst {

// Runs `parse` in a child process under limits; the weights it returns travel back
// over a pipe and must pass the writer's rules (write_weights) again in the parent.
// Errors name `subject` ("weights 'x.h5'"); a crash, limit or time-out in the child is
// an InputError. `parse` must not use OpenMP or CUDA (see engine/io/hdf5_isolation.h).
VggWeights parse_weights_isolated(const std::string& subject,
                                  const std::function<VggWeights()>& parse);

}  // namespace nst
