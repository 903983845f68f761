// `neural-style batch`: many jobs in one process (DESIGN.md, "Batches"; README,
// "Batches"). The jobs come from a manifest (engine/batch/manifest.h) or from the
// pairs of two folders; each row is parsed as its own command line (cli::parse),
// so it is checked exactly like one; all are checked before any runs.
//
//   neural-style batch MANIFEST [job options...] [--shard I/N] [--state DIR]
//   neural-style batch --contents DIR --styles DIR --output-pattern 'out/{content}_{style}.png' ...
//   neural-style batch --status MANIFEST
//   neural-style batch MANIFEST --slurm [--array-tasks N] [--throttle N] ... [--dry-run]
#pragma once

#include <string>
#include <vector>

#include "engine/batch/runner.h"

namespace nst::cli {

// The command line's entry: argv[0] is "batch". Returns the exit code.
int batch_main(int argc, const char* const* argv);

// The batch `arguments` describe (what follows "batch"), run: the summary of this
// run. UsageError (every bad row, one per line) before anything runs.
BatchSummary run_batch_command(const std::vector<std::string>& arguments);
// --status: from the records alone.
BatchStatus batch_status_command(const std::vector<std::string>& arguments);

}  // namespace nst::cli
