// The neural-style command line, parsed with CLI11. The run's options are
// registered from the table of engine/run/run_options.h and read by
// set_run_option; every problem becomes one nst::UsageError line (exit code 2).
#include "apps/cli_options.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <sstream>

#include "engine/base/error.h"
#include "engine/objective/objective.h"
#include "engine/run/run_options.h"
#include "engine/video/video_transfer.h"
#include "nst_version.h"

namespace nst::cli {

namespace {

const FrontEndOption& front_end(const std::string& flag) {
    for (const FrontEndOption& option : front_end_options())
        if (option.flag == flag) return option;
    throw Error("no front-end option '" + flag + "'");
}

// "--flag" with the help and the shown default of NST_FRONT_END_OPTIONS.
template <typename T>
CLI::Option* add_front_end(CLI::App& app, const std::string& flag, T& value) {
    const FrontEndOption& option = front_end(flag);
    CLI::Option* added = app.add_option("--" + flag, value, option.help);
    if (!option.default_text.empty() && option.default_text != "required") added->default_str(option.default_text);
    return added;
}

// The files and the command line's own options.
struct FrontEndTexts {
    int scales = 1;
    std::string style_masks, style_image_masks;
};

void add_front_end_options(CLI::App& app, Options& o, FrontEndTexts& texts) {
    add_front_end(app, "content", o.content)->required();
    add_front_end(app, "style", o.styles)
        ->required()
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    add_front_end(app, "output", o.output)->required();
    add_front_end(app, "output-depth", o.save.png_bit_depth)->check(CLI::IsMember({8, 16}));
    add_front_end(app, "jpeg-quality", o.save.jpeg_quality)->check(CLI::Range(1, 100));
    add_front_end(app, "weights", o.weights);
    add_front_end(app, "init", o.init);
    add_front_end(app, "scales", texts.scales)->check(CLI::Range(1, 8));
    add_front_end(app, "style-masks", texts.style_masks);
    add_front_end(app, "style-image-masks", texts.style_image_masks);
    add_front_end(app, "content-mask", o.content_mask);
    add_front_end(app, "save-every", o.save_every)->check(CLI::Range(0, 1000000));
    add_front_end(app, "log-json", o.log_json);
    app.add_flag("--quiet", o.quiet, front_end("quiet").help);
    app.add_flag("--plan", o.plan, front_end("plan").help);
    app.add_flag("--partial-output", o.partial_output, front_end("partial-output").help);
}

// Fills scale_sizes and scale_iterations from --scales / --scale-sizes /
// --scale-iterations (README, "Running neural-style").
void plan_scales(const CLI::App& app, int scales, TransferRequest& r) {
    if (app.count("--scale-sizes")) {
        if (r.scale_sizes.empty()) throw UsageError("--scale-sizes is empty");
        if (scales > 1) throw UsageError("give --scales or --scale-sizes, not both");
        if (app.count("--size") && r.scale_sizes.back() != r.size)
            throw UsageError("--scale-sizes ends at " + std::to_string(r.scale_sizes.back()) +
                             " but --size is " + std::to_string(r.size));
        r.size = r.scale_sizes.back();
    } else {
        r.scale_sizes = coarse_to_fine_sizes(r.size, scales);
    }
    if (app.count("--scale-iterations")) {
        if (r.scale_iterations.empty()) throw UsageError("--scale-iterations is empty");
        if (app.count("--iterations")) throw UsageError("give --iterations or --scale-iterations, not both");
    } else {
        r.scale_iterations.assign(r.scale_sizes.size(), r.iterations);
    }
}

// The request's image placeholders, the initial image's kind and the masks' lists.
void apply_files(Options& o, const FrontEndTexts& texts) {
    TransferRequest& r = o.request;
    o.style_masks = TransferRequest::split_layer_list(texts.style_masks);
    // Keep empty entries here: "a.png,,c.png" means style 2 uses its whole image.
    if (!texts.style_image_masks.empty()) {
        std::stringstream stream(texts.style_image_masks);
        std::string part;
        while (std::getline(stream, part, ',')) o.style_image_masks.push_back(part);
    }
    r.styles.resize(o.styles.size());
    r.style_masks.resize(o.style_masks.size());
    r.style_image_masks.resize(o.style_image_masks.size());
    const bool named_init = o.init == "noise" || o.init == "content" || o.init == "style";
    r.init = named_init ? Choice<InitKind>(o.init) : Choice<InitKind>(InitKind::image);
}

// --output-depth is for PNG, --jpeg-quality for JPEG: either given for the other
// format is a mistake worth a word, not an option silently ignored.
void check_output_encoding(const CLI::App& app, const Options& o) {
    std::string extension = o.output.substr(std::min(o.output.size(), o.output.find_last_of('.')));
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (o.save.png_bit_depth == 16 && extension != ".png")
        throw UsageError("--output-depth 16 needs a .png --output (JPEG holds 8 bits per sample)");
    if (app.count("--jpeg-quality") && extension == ".png")
        throw UsageError("--jpeg-quality applies only to a .jpg or .jpeg --output");
}

// The value's name in --help: N, X, L,… or the choices.
std::string value_name(const RunOption& row) {
    switch (row.kind) {
    case RunOptionKind::integer:
    case RunOptionKind::unsigned_integer: return "N";
    case RunOptionKind::real:
    case RunOptionKind::optional_real: return "X";
    case RunOptionKind::layers: return "L,...";
    case RunOptionKind::reals: return "X,...";
    case RunOptionKind::integers: return "N,...";
    case RunOptionKind::bytes: return "SIZE";
    case RunOptionKind::tile: return "N|auto";
    case RunOptionKind::text: return "TEXT";
    case RunOptionKind::flag: return "";
    case RunOptionKind::choice: break;
    }
    std::string names;
    for (const std::string& name : row.choices) names += (names.empty() ? "" : "|") + name;
    return names;
}

// Edit distance between two option names: insertions, deletions, substitutions
// and transpositions of adjacent characters each cost 1 (optimal string
// alignment), so "stlye" is one step from "style".
std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitution = d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, substitution});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// The options closest to `given` ("--stlye-weight"): those at the smallest edit
// distance when it is at most a third of the name (at least 1), else those that
// `given` begins ("--iter": --iterations); at most three, in the parser's order.
std::vector<std::string> closest_options(const CLI::App& app, const std::string& given) {
    std::vector<std::string> names;
    for (const CLI::Option* option : app.get_options())
        for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
    const std::size_t start = given.find_first_not_of('-');
    if (start == std::string::npos) return {};  // "---": no name to compare
    const std::string bare = given.substr(start);
    const std::size_t threshold = std::max<std::size_t>(1, bare.size() / 3);
    std::size_t best = threshold + 1;
    for (const std::string& name : names) best = std::min(best, edit_distance(bare, name.substr(2)));
    std::vector<std::string> closest;
    for (const std::string& name : names)
        if (best <= threshold ? edit_distance(bare, name.substr(2)) == best
                              : bare.size() >= 3 && name.compare(2, bare.size(), bare) == 0)
            closest.push_back(name);
    if (closest.size() > 3) closest.resize(3);
    return closest;
}

// The first argument, in command-line order, that CLI11 could not place and
// that looks like an option ("--stlye-weight", "--stlye-weight=5", "-x"; not a
// negative number), without its "=value"; "" when there is none.
std::string unknown_option(const CLI::App& app, int argc, const char* const* argv) {
    const std::vector<std::string> left = app.remaining();
    const std::set<std::string> unplaced(left.begin(), left.end());
    for (int k = 1; k < argc; ++k) {
        const std::string argument = argv[k];
        if (argument == "--") break;
        char* number_end = nullptr;
        std::strtod(argument.c_str(), &number_end);
        const bool number = number_end && *number_end == '\0';
        if (argument.size() < 2 || argument[0] != '-' || number || !unplaced.count(argument)) continue;
        return argument.substr(0, argument.find('='));
    }
    return "";
}

// "unknown option --stlye-weight; did you mean --style-weight?"
std::string unknown_option_message(const CLI::App& app, const std::string& given) {
    const std::vector<std::string> closest = closest_options(app, given);
    std::string message = "unknown option " + given;
    if (closest.empty()) return message + " (see --help)";
    message += "; did you mean ";
    for (std::size_t k = 0; k < closest.size(); ++k)
        message += (k == 0 ? "" : k + 1 == closest.size() ? " or " : ", ") + closest[k];
    return message + "?";
}

}  // namespace

ParseOutcome parse(int argc, const char* const* argv, Options& o) {
    CLI::App app{"neural-style: image style transfer by optimisation (Gatys, Ecker, Bethge 2016)",
                 "neural-style"};
    app.set_version_flag("--version", std::string("neural-style (nst) ") + NST_VERSION_STRING);
    app.get_formatter()->column_width(34);

    FrontEndTexts texts;
    add_front_end_options(app, o, texts);
    // One option per entry of NST_RUN_OPTIONS, read as text by set_run_option.
    const std::vector<RunOption>& rows = run_options();
    std::vector<std::string> values(rows.size());
    std::vector<bool> flags(rows.size(), false);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const RunOption& row = rows[k];
        if (row.kind == RunOptionKind::flag) {
            app.add_flag("--" + row.flag, [&flags, k](std::int64_t) { flags[k] = true; }, row.help);
            continue;
        }
        CLI::Option* option = app.add_option("--" + row.flag, values[k], row.help);
        option->type_name(value_name(row));
        if (!row.default_text.empty()) option->default_str(row.default_text);
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        app.exit(e);
        return ParseOutcome::exit_success;
    } catch (const CLI::CallForAllHelp& e) {
        app.exit(e);
        return ParseOutcome::exit_success;
    } catch (const CLI::CallForVersion& e) {
        app.exit(e);
        return ParseOutcome::exit_success;
    } catch (const CLI::ParseError& e) {
        // A mistyped option first: it is often why something else seems missing
        // ("--contnet x.jpg" also leaves --content unset).
        if (const std::string unknown = unknown_option(app, argc, argv); !unknown.empty())
            throw UsageError(unknown_option_message(app, unknown));
        std::string message = e.what();
        if (message.empty()) message = "invalid command line";
        throw UsageError(message + " (see --help)");
    }

    for (std::size_t k = 0; k < rows.size(); ++k)
        if (app.count("--" + rows[k].flag))
            set_run_option(o.request, rows[k].flag, rows[k].kind == RunOptionKind::flag ? "true" : values[k]);
    if (o.request.preserve_colors.valid() && o.request.preserve_colors != PreserveColors::histogram &&
        app.count("--color-transfer"))
        throw UsageError("--color-transfer applies only with --preserve-colors histogram");
    o.video = is_video_content(o.content);
    if (o.partial_output && !o.video) throw UsageError("--partial-output applies to a video --content");
    check_output_encoding(app, o);
    apply_files(o, texts);
    plan_scales(app, texts.scales, o.request);
    o.request.validate();
    return ParseOutcome::run;
}

}  // namespace nst::cli
