// One run of the neural-style command line, from parsed options to the written
// image (a still, or a video through apps/video_cli.h): what `neural-style` does,
// and what `neural-style batch` does for each job (apps/batch_cli.h).
// Signals: as described at the top of apps/cli_run.cpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "apps/cli_options.h"
#include "engine/backends/backend.h"
#include "engine/io/weights.h"
#include "engine/run/transfer.h"

namespace nst::cli {

// What a run takes from a batch instead of setting up itself: the weights (read
// once), the backend for its device (set up once) and the style targets computed
// by earlier jobs on that backend with those weights.
struct SharedRun {
    const VggWeights* weights = nullptr;
    std::string weights_path;
    Backend* backend = nullptr;
    StyleTargetCache* style_targets = nullptr;
};

// Runs the options' transfer and returns the exit code (0, or 128 + a signal);
// errors throw (main turns them into a line and a code). `shared`: a batch's.
int run(const Options& o, const SharedRun* shared = nullptr);

// The files the run reads, each with its option ("--style", path); the output
// (and the log) must be none of them.
std::vector<std::pair<std::string, std::string>> input_files(const Options& o);

}  // namespace nst::cli
