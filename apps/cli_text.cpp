// How the neural-style command line writes numbers and durations (apps/cli_text.h).
#include "apps/cli_text.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace nst::cli {

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const long s = std::lround(seconds);
    char text[32];
    if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
    else std::snprintf(text, sizeof text, "%lds", s);
    return text;
}

std::string short_number(double value) {
    if (value == 0) return "0";
    if (!std::isfinite(value)) return std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
    char text[48];
    std::snprintf(text, sizeof text, "%.2e", value);  // rounded first: 999.7 is 1.00e+03
    const char* e = std::strchr(text, 'e');
    const int exponent = std::atoi(e + 1);
    if (exponent >= -2 && exponent <= 2) {
        std::snprintf(text, sizeof text, "%.*f", 2 - exponent, std::atof(text));
        return text;
    }
    return std::string(text, static_cast<std::size_t>(e - text)) + "e" + std::to_string(exponent);
}

}  // namespace nst::cli
