// neural-style: the command-line front end (DESIGN.md, "CLI contract"). One run
// (apps/cli_run.h), or with `batch` first a batch of runs (apps/batch_cli.h).
#include <cstring>

#include "apps/batch_cli.h"
#include "apps/cli_options.h"
#include "apps/cli_run.h"
#include "apps/cli_signals.h"
#include "engine/base/exit_codes.h"

int main(int argc, char** argv) {
    nst::cli::install_signal_handlers();
    if (argc > 1 && std::strcmp(argv[1], "batch") == 0) return nst::cli::batch_main(argc - 1, argv + 1);
    return nst::run_reporting_errors("neural-style", [&] {
        nst::cli::Options options;
        if (nst::cli::parse(argc, argv, options) == nst::cli::ParseOutcome::exit_success) return 0;
        return nst::cli::run(options);
    });
}
