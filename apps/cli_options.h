// Options of the neural-style command line (DESIGN.md, "CLI contract"). The
// run's options come from engine/run/run_options.h (one CLI option per entry of
// NST_RUN_OPTIONS, parsed by set_run_option); the files and the options of the
// command line alone (NST_FRONT_END_OPTIONS) are read here.
#pragma once

#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/run/transfer.h"

namespace nst::cli {

struct Options {
    // The run's options, with one placeholder (empty) Image per image file:
    // TransferRequest::validate() checks counts, not pixels, and the files are
    // decoded only when the run starts (apps/neural_style.cpp).
    TransferRequest request;

    std::string content;
    std::vector<std::string> styles;
    std::vector<std::string> style_masks;        // one output region per style image
    std::vector<std::string> style_image_masks;  // one region of each style image ("" = whole)
    std::string content_mask;
    std::string init = "content";  // noise | content | style, or an image file
    std::string output;
    SaveOptions save;  // --output-depth, --jpeg-quality: how the output and snapshots are encoded
    std::string weights;  // empty: $NST_WEIGHTS, then ~/.cache/nst/vgg19.h5
    int save_every = 0;
    std::string log_json;
    bool quiet = false;
    bool plan = false;  // --plan: print the memory plan and exit
    bool video = false;           // --content is a video (is_video_content)
    bool partial_output = false;  // --partial-output: a stopped video run writes what is done
};

enum class ParseOutcome { run, exit_success };

// Parses argv. Prints --help / --version itself (returns exit_success).
// Throws nst::UsageError with a one-line message for anything invalid.
ParseOutcome parse(int argc, const char* const* argv, Options& options);

}  // namespace nst::cli
