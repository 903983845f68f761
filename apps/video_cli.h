// neural-style with a video as --content (DESIGN.md, "Video"): the plan, the
// frames' progress and log, the output, and what a signal does.
#pragma once

#include <string>

#include "apps/cli_options.h"
#include "engine/io/weights.h"

namespace nst::cli {

// Runs the video of `o` and returns the exit code (128 + the signal when one
// stopped it). Signals: the first stops after the current iteration, drops that
// frame and keeps every finished one (a rerun resumes after them); with
// --partial-output the frames done are also written to --output.
int run_video(const Options& o, const VggWeights& weights, const std::string& weights_path);

}  // namespace nst::cli
