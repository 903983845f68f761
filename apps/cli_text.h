// How the neural-style command line writes numbers and durations (README,
// "Running `neural-style`").
#pragma once

#include <string>

namespace nst::cli {

// "1h02m", "3m05s", "42s"; "?" when not finite.
std::string format_duration(double seconds);

// A value with 3 significant digits, short: "3.02e11", "1.50e-5", "0.0123", "12.3", "0".
std::string short_number(double value);

}  // namespace nst::cli
