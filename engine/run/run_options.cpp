// The run options' table, text syntax and per-option checks, all generated from
// NST_RUN_OPTIONS (engine/run/run_options.h).
#include "engine/run/run_options.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "engine/backends/backend.h"
#include "engine/run/request.h"

namespace nst {

namespace {

std::string option_name(const std::string& flag) { return "--" + flag; }

UsageError not_a(const std::string& flag, const std::string& text, const char* what) {
    return UsageError(option_name(flag) + ": '" + text + "' is not " + what);
}

// ---- reading text ------------------------------------------------------------------------------

std::vector<std::string> split(const std::string& text) { return TransferRequest::split_layer_list(text); }

long long read_integer(const std::string& flag, const std::string& text) {
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || end == text.c_str() || *end != '\0' || errno == ERANGE)
        throw not_a(flag, text, "a whole number");
    return value;
}

int read_int(const std::string& flag, const std::string& text) {
    const long long value = read_integer(flag, text);
    if (value < -2147483647LL || value > 2147483647LL) throw not_a(flag, text, "a whole number in int's range");
    return int(value);
}

std::uint64_t read_unsigned(const std::string& flag, const std::string& text) {
    errno = 0;
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || text[0] == '-' || end == text.c_str() || *end != '\0' || errno == ERANGE)
        throw not_a(flag, text, "a whole number >= 0");
    return value;
}

double read_real(const std::string& flag, const std::string& text) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end == text.c_str() || *end != '\0') throw not_a(flag, text, "a number");
    return value;
}

bool read_flag(const std::string& flag, const std::string& text) {
    if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "0" || text == "no" || text == "off" || text.empty()) return false;
    throw not_a(flag, text, "true or false");
}

// ---- writing text ------------------------------------------------------------------------------

// The shortest decimal that reads back as the same double.
std::string real_text(double value) {
    char text[40];
    for (int digits = 1; digits <= 17; ++digits) {
        std::snprintf(text, sizeof text, "%.*g", digits, value);
        if (std::strtod(text, nullptr) == value) break;
    }
    return text;
}

template <typename T>
std::string join(const std::vector<T>& values) {
    std::string text;
    for (const T& v : values) {
        if (!text.empty()) text += ",";
        if constexpr (std::is_same_v<T, double>) text += real_text(v);
        else if constexpr (std::is_same_v<T, std::string>) text += v;
        else text += std::to_string(v);
    }
    return text;
}

// One function per kind, overloaded on the field's type where kinds share one.
void read_into(RunOptionKind kind, const std::string& flag, const std::string& text, int& field) {
    if (kind != RunOptionKind::tile) {
        field = read_int(flag, text);
    } else if (text == "auto") {
        field = TransferRequest::tile_auto;
    } else {
        try {
            field = read_int(flag, text);
        } catch (const UsageError&) {
            throw UsageError(option_name(flag) + " must be auto or a size in px (0: untiled), got '" + text + "'");
        }
    }
}
// std::size_t and std::uint64_t are one type here: the kind tells a byte size from a count.
static_assert(std::is_same_v<std::size_t, std::uint64_t>, "byte sizes and seeds share one reader");
void read_into(RunOptionKind kind, const std::string& flag, const std::string& text, std::uint64_t& field) {
    field = kind == RunOptionKind::bytes ? parse_byte_size(text, option_name(flag)) : read_unsigned(flag, text);
}
void read_into(RunOptionKind, const std::string& flag, const std::string& text, double& field) {
    field = read_real(flag, text);
}
void read_into(RunOptionKind, const std::string& flag, const std::string& text, std::optional<double>& field) {
    if (text.empty()) field.reset();
    else field = read_real(flag, text);
}
void read_into(RunOptionKind, const std::string& flag, const std::string& text, bool& field) {
    field = read_flag(flag, text);
}
void read_into(RunOptionKind, const std::string&, const std::string& text, std::string& field) { field = text; }
void read_into(RunOptionKind, const std::string&, const std::string& text, std::vector<std::string>& field) {
    field = split(text);
}
void read_into(RunOptionKind, const std::string& flag, const std::string& text, std::vector<double>& field) {
    field.clear();
    for (const auto& part : split(text)) field.push_back(read_real(flag, part));
}
void read_into(RunOptionKind, const std::string& flag, const std::string& text, std::vector<int>& field) {
    field.clear();
    for (const auto& part : split(text)) field.push_back(read_int(flag, part));
    if (field.empty() && !text.empty()) throw not_a(flag, text, "a list of whole numbers");
}
template <typename E>
void read_into(RunOptionKind, const std::string&, const std::string& text, Choice<E>& field) {
    field = Choice<E>(text);  // validate() names a text that is no choice
}

std::string text_of(RunOptionKind kind, int value) {
    return kind == RunOptionKind::tile && value == TransferRequest::tile_auto ? "auto" : std::to_string(value);
}
std::string text_of(RunOptionKind, std::uint64_t value) { return std::to_string(value); }
std::string text_of(RunOptionKind, double value) { return real_text(value); }
std::string text_of(RunOptionKind, const std::optional<double>& value) { return value ? real_text(*value) : ""; }
std::string text_of(RunOptionKind, bool value) { return value ? "true" : "false"; }
std::string text_of(RunOptionKind, const std::string& value) { return value; }
template <typename T>
std::string text_of(RunOptionKind, const std::vector<T>& value) { return join(value); }
template <typename E>
std::string text_of(RunOptionKind, const Choice<E>& value) { return value.text(); }

template <typename T> std::vector<std::string> choice_names(const T&) { return {}; }
template <typename E> std::vector<std::string> choice_names(const Choice<E>&) {
    return {std::begin(ChoiceNames<E>::names), std::end(ChoiceNames<E>::names)};
}

// ---- checks ------------------------------------------------------------------------------------

std::string number_text(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.15g", value);
    return text;
}

void check_value(const RunOptionCheck& check, RunOptionKind kind, const std::string& flag, double value,
                 bool in_list) {
    const std::string name = option_name(flag);
    switch (check.rule) {
    case RunOptionCheck::none_rule:
    case RunOptionCheck::device_rule:
    case RunOptionCheck::frame_range_rule:
    case RunOptionCheck::flow_rule:
        return;
    case RunOptionCheck::closed:
        if (kind == RunOptionKind::tile && value == TransferRequest::tile_auto) return;
        if (value >= check.lo && value <= check.hi) return;
        if (kind == RunOptionKind::tile)
            throw UsageError(name + " must be auto or a size in [0, " + number_text(check.hi) + "] px (0: untiled)");
        if (in_list)
            throw UsageError(name + ": " + number_text(value) + " is not in [" + number_text(check.lo) + ", " +
                             number_text(check.hi) + "]");
        throw UsageError(name + " must be in [" + number_text(check.lo) + ", " + number_text(check.hi) + "]");
    case RunOptionCheck::open_low:
        if (std::isfinite(value) && value > check.lo && value <= check.hi) return;
        throw UsageError(name + " must be in (" + number_text(check.lo) + ", " + number_text(check.hi) + "]");
    case RunOptionCheck::weight_rule:
        if (!std::isfinite(value) || value < 0) throw UsageError(name + " must be a finite number >= 0");
        if (value > TransferRequest::max_weight)
            throw UsageError(name + " must be at most 1e24 (larger weights overflow the objective's fp32 gradient)");
        return;
    case RunOptionCheck::learning_rate_rule:
        if (!std::isfinite(value) || value <= 0) throw UsageError(name + " must be a finite number > 0");
        if (value > TransferRequest::max_learning_rate)
            throw UsageError(name + " must be at most 1e6 (a step moves pixels whose whole range is 1)");
        return;
    }
}

template <typename T>
void check_field(const RunOptionCheck& check, RunOptionKind kind, const std::string& flag, const T& value) {
    if constexpr (std::is_arithmetic_v<T>) {
        check_value(check, kind, flag, double(value), false);
    } else if constexpr (std::is_same_v<T, std::optional<double>>) {
        if (value) check_value(check, kind, flag, *value, false);
    } else if constexpr (std::is_same_v<T, std::vector<int>> || std::is_same_v<T, std::vector<double>>) {
        for (const auto& v : value) check_value(check, kind, flag, double(v), true);
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (check.rule == RunOptionCheck::device_rule) parse_device(value);  // UsageError
        if (check.rule == RunOptionCheck::frame_range_rule) parse_frame_range(value);
        if (check.rule == RunOptionCheck::flow_rule) parse_flow_option(value);
    }
}

template <typename E>
void check_field(const RunOptionCheck&, RunOptionKind, const std::string& flag, const Choice<E>& value) {
    if (value.valid()) return;
    std::string list;
    for (const char* name : ChoiceNames<E>::names) list += (list.empty() ? "" : ", ") + std::string(name);
    throw UsageError(option_name(flag) + ": '" + value.text() + "' is not one of " + list);
}

std::string bare(const std::string& flag) { return flag.rfind("--", 0) == 0 ? flag.substr(2) : flag; }

}  // namespace

const std::vector<RunOption>& run_options() {
    static const std::vector<RunOption> table = [] {
        const TransferRequest defaults;
        std::vector<RunOption> rows;
#define NST_RUN_OPTION_ROW(kind, type, field, option_flag, default_value, shown, check, help)       \
    rows.push_back({option_flag, #field, RunOptionKind::kind,                                      \
                    std::string(shown).empty() && RunOptionKind::kind != RunOptionKind::flag       \
                        ? text_of(RunOptionKind::kind, defaults.field)                             \
                        : std::string(shown),                                                      \
                    help, choice_names(defaults.field)});
        NST_RUN_OPTIONS(NST_RUN_OPTION_ROW)
#undef NST_RUN_OPTION_ROW
        return rows;
    }();
    return table;
}

const RunOption* find_run_option(const std::string& flag) {
    const std::string name = bare(flag);
    for (const RunOption& option : run_options())
        if (option.flag == name || option.field == name) return &option;
    return nullptr;
}

const std::vector<std::string>& video_only_options() {
    static const std::vector<std::string> flags = {"temporal-weight", "temporal-frames", "passes",
                                                   "frame-iterations", "frames", "flow"};
    return flags;
}

namespace {

// A whole number >= 0 that is all of `text`, or -1.
long long frame_number(const std::string& text) {
    if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoll(text);
}

// Where each printf number (%d, %0Nd with N ≤ 9) of `pattern` starts and ends;
// {} when another '%' sequence appears ("%%" is a literal '%').
std::vector<std::pair<std::size_t, std::size_t>> number_fields(const std::string& pattern) {
    std::vector<std::pair<std::size_t, std::size_t>> fields;
    for (std::size_t k = 0; k < pattern.size(); ++k) {
        if (pattern[k] != '%') continue;
        if (k + 1 < pattern.size() && pattern[k + 1] == '%') {
            ++k;
            continue;
        }
        std::size_t end = k + 1;
        if (end + 1 < pattern.size() && pattern[end] == '0' && pattern[end + 1] >= '1' && pattern[end + 1] <= '9')
            end += 2;
        if (end >= pattern.size() || pattern[end] != 'd') return {};
        fields.emplace_back(k, end + 1);
        k = end;
    }
    return fields;
}

}  // namespace

FrameRange parse_frame_range(const std::string& text) {
    FrameRange range;
    if (text.empty() || text == ":") return range;
    const std::size_t colon = text.find(':');
    const auto bad = [&] {
        return UsageError("--frames: '" + text + "' is not A:B (frames from A up to but not including B, 0-based; e.g. 0:100, 50:, :25)");
    };
    if (colon == std::string::npos || text.find(':', colon + 1) != std::string::npos) throw bad();
    const std::string first = text.substr(0, colon), end = text.substr(colon + 1);
    if (!first.empty() && (range.first = frame_number(first)) < 0) throw bad();
    if (!end.empty() && (range.end = frame_number(end)) < 0) throw bad();
    if (range.end >= 0 && range.end <= range.first)
        throw UsageError("--frames: '" + text + "' selects no frame (B must be greater than A)");
    return range;
}

FlowOption parse_flow_option(const std::string& text) {
    FlowOption option;
    if (text == "dis") return option;
    if (text == "deepflow") {
        option.method = FlowOption::deepflow;
        return option;
    }
    const std::size_t dot = text.rfind('.');
    if (dot == std::string::npos || text.substr(dot) != ".flo" || number_fields(text).size() != 2)
        throw UsageError("--flow: '" + text +
                         "' is not dis, deepflow or a pattern of .flo files with two numbers "
                         "(the frame the flow is on, then the frame it points into: flow/%04d_%04d.flo)");
    option.method = FlowOption::files;
    option.pattern = text;
    return option;
}

std::string FlowOption::file(long long on, long long into) const {
    std::string path;
    std::size_t at = 0;
    const long long numbers[2] = {on, into};
    const auto fields = number_fields(pattern);
    for (std::size_t k = 0; k < fields.size(); ++k) {
        path += pattern.substr(at, fields[k].first - at);
        const std::string spec = pattern.substr(fields[k].first, fields[k].second - fields[k].first);
        char digits[32];
        std::snprintf(digits, sizeof digits, (spec.substr(0, spec.size() - 1) + "lld").c_str(), numbers[k]);
        path += digits;
        at = fields[k].second;
    }
    path += pattern.substr(at);
    // "%%" stands for '%'
    std::string out;
    for (std::size_t k = 0; k < path.size(); ++k) {
        out += path[k];
        if (path[k] == '%' && k + 1 < path.size() && path[k + 1] == '%') ++k;
    }
    return out;
}

const std::vector<FrontEndOption>& front_end_options() {
    static const std::vector<FrontEndOption> table = {
#define NST_FRONT_END_ROW(option_flag, shown, where, help) {option_flag, shown, help, FrontEndOption::where},
        NST_FRONT_END_OPTIONS(NST_FRONT_END_ROW)
#undef NST_FRONT_END_ROW
    };
    return table;
}

void set_run_option(TransferRequest& request, const std::string& flag, const std::string& text) {
    const std::string name = bare(flag);
#define NST_SET_RUN_OPTION(kind, type, field, option_flag, default_value, shown, check, help)       \
    if (name == option_flag || name == #field) {                                                   \
        read_into(RunOptionKind::kind, option_flag, text, request.field);                          \
        return;                                                                                    \
    }
    NST_RUN_OPTIONS(NST_SET_RUN_OPTION)
#undef NST_SET_RUN_OPTION
    throw UsageError("unknown option '" + name + "'");
}

std::string run_option_text(const TransferRequest& request, const std::string& flag) {
    const std::string name = bare(flag);
#define NST_RUN_OPTION_TEXT(kind, type, field, option_flag, default_value, shown, check, help)      \
    if (name == option_flag || name == #field) return text_of(RunOptionKind::kind, request.field);
    NST_RUN_OPTIONS(NST_RUN_OPTION_TEXT)
#undef NST_RUN_OPTION_TEXT
    throw UsageError("unknown option '" + name + "'");
}

void check_run_options(const TransferRequest& request) {
#define NST_CHECK_RUN_OPTION(kind, type, field, option_flag, default_value, shown, check, help)     \
    check_field(check, RunOptionKind::kind, option_flag, request.field);
    NST_RUN_OPTIONS(NST_CHECK_RUN_OPTION)
#undef NST_CHECK_RUN_OPTION
}

std::size_t parse_byte_size(const std::string& text, const std::string& option) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    double unit = 1;
    const std::string suffix = end ? std::string(end) : std::string();
    if (suffix == "k" || suffix == "K") unit = 1024.0;
    else if (suffix == "m" || suffix == "M") unit = 1024.0 * 1024;
    else if (suffix == "g" || suffix == "G") unit = 1024.0 * 1024 * 1024;
    else if (suffix == "t" || suffix == "T") unit = 1024.0 * 1024 * 1024 * 1024;
    else if (!suffix.empty()) end = nullptr;
    const double bytes = value * unit;
    // 0: what the device has free (the default).
    if (end == nullptr || end == text.c_str() || !std::isfinite(bytes) || bytes < 0 || bytes > 1e18 ||
        (bytes > 0 && bytes < 1))
        throw UsageError(option + ": '" + text + "' is not a size (a number of bytes, or with K, M, G or T)");
    return static_cast<std::size_t>(bytes);
}

}  // namespace nst
