// Reading manifests of jobs (engine/batch/manifest.h).
#include "engine/batch/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/base/error.h"
#include "engine/run/run_options.h"

namespace nst {

namespace {

namespace fs = std::filesystem;

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return text;
}

// The options a job can take: the run's, and the command line's own but --plan
// (a batch runs its jobs) and the Python-only ones.
std::vector<std::string> job_option_names() {
    std::vector<std::string> names;
    for (const RunOption& option : run_options()) names.push_back(option.flag);
    for (const FrontEndOption& option : front_end_options())
        if (option.where != FrontEndOption::python && option.flag != "plan") names.push_back(option.flag);
    return names;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::stringstream stream(text);
    while (std::getline(stream, part, separator)) parts.push_back(part);
    return parts;
}

std::string trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string::npos) return "";
    return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// A flag's cell: "" (not given), or true/false.
std::vector<std::string> flag_value(const std::string& where, const std::string& flag, const std::string& text) {
    const std::string value = lower(trim(text));
    if (value.empty() || value == "false" || value == "0" || value == "no") return {};
    if (value == "true" || value == "1" || value == "yes") return {"true"};
    throw UsageError(where + ": column " + flag + ": '" + text + "' is not true or false");
}

// Sets a row's option from one cell of text (CSV, or a JSON scalar as text).
void set_cell(JobOptions& options, const std::string& where, const std::string& flag, const std::string& text) {
    if (is_flag_option(flag)) {
        const std::vector<std::string> value = flag_value(where, flag, text);
        if (!value.empty()) options[flag] = value;
        return;
    }
    if (text.empty()) return;
    if (flag == "style") {
        for (const std::string& style : split(text, ';'))
            if (!trim(style).empty()) options[flag].push_back(trim(style));
        return;
    }
    options[flag] = {text};
}

// ---- CSV (RFC 4180) -------------------------------------------------------------------------

struct CsvRecord {
    int line = 0;
    std::vector<std::string> fields;
};

std::vector<CsvRecord> read_csv(const std::string& path, const std::string& text) {
    std::vector<CsvRecord> records;
    CsvRecord record;
    std::string field;
    bool quoted = false, field_started = false;
    int line = 1;
    record.line = 1;
    const auto end_record = [&] {
        record.fields.push_back(field);
        field.clear();
        field_started = false;
        const bool blank = record.fields.size() == 1 && trim(record.fields[0]).empty();
        if (!blank) records.push_back(record);
        record = CsvRecord{};
    };
    for (std::size_t k = 0; k < text.size(); ++k) {
        const char c = text[k];
        if (quoted) {
            if (c == '"' && k + 1 < text.size() && text[k + 1] == '"') {
                field += '"';
                ++k;
            } else if (c == '"') {
                quoted = false;
            } else {
                if (c == '\n') ++line;
                field += c;
            }
            continue;
        }
        if (c == '"' && !field_started) {
            quoted = field_started = true;
        } else if (c == ',') {
            record.fields.push_back(field);
            field.clear();
            field_started = false;
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && k + 1 < text.size() && text[k + 1] == '\n') ++k;
            end_record();
            record.line = ++line;
        } else {
            if (field_started && !quoted && !field.empty() && text[k - 1] == '"')
                throw UsageError(path + ":" + std::to_string(line) + ": text after a closing quote");
            field += c;
            field_started = true;
        }
    }
    if (quoted) throw UsageError(path + ":" + std::to_string(record.line) + ": a quoted field is not closed");
    if (field_started || !record.fields.empty()) end_record();
    return records;
}

Manifest read_csv_manifest(const std::string& path, const std::string& text) {
    const std::vector<CsvRecord> records = read_csv(path, text);
    Manifest manifest{path, {}};
    if (records.empty()) throw UsageError(path + ": empty manifest (a header row of option names, then one job per row)");
    std::vector<std::string> columns;
    for (const std::string& name : records[0].fields) {
        try {
            columns.push_back(manifest_column(trim(name)));
        } catch (const UsageError& e) {
            throw UsageError(path + ":" + std::to_string(records[0].line) + ": " + e.what());
        }
    }
    for (std::size_t i = 0; i < columns.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (columns[i] == columns[j])
                throw UsageError(path + ":" + std::to_string(records[0].line) + ": column " + columns[i] + " twice");
    for (std::size_t r = 1; r < records.size(); ++r) {
        ManifestRow row{records[r].line, {}};
        const std::string where = manifest.where(row);
        if (records[r].fields.size() != columns.size())
            throw UsageError(where + ": " + std::to_string(records[r].fields.size()) + " fields, the header has " +
                             std::to_string(columns.size()));
        for (std::size_t c = 0; c < columns.size(); ++c) set_cell(row.options, where, columns[c], records[r].fields[c]);
        manifest.rows.push_back(std::move(row));
    }
    return manifest;
}

// ---- JSON Lines -------------------------------------------------------------------------------

std::string json_text(const nlohmann::json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
    return value.dump();  // a number as JSON writes it: 512, 1e3, 0.5
}

Manifest read_jsonl_manifest(const std::string& path, const std::string& text) {
    Manifest manifest{path, {}};
    std::stringstream stream(text);
    std::string line_text;
    int line = 0;
    while (std::getline(stream, line_text)) {
        ++line;
        if (trim(line_text).empty()) continue;
        ManifestRow row{line, {}};
        const std::string where = manifest.where(row);
        nlohmann::json object;
        try {
            object = nlohmann::json::parse(line_text);
        } catch (const nlohmann::json::exception& e) {
            throw UsageError(where + ": not JSON: " + e.what());
        }
        if (!object.is_object()) throw UsageError(where + ": not a JSON object");
        for (const auto& [name, value] : object.items()) {
            std::string flag;
            try {
                flag = manifest_column(name);
            } catch (const UsageError& e) {
                throw UsageError(where + ": " + e.what());
            }
            if (value.is_null()) continue;
            if (value.is_object()) throw UsageError(where + ": column " + flag + ": an object is not a value");
            if (!value.is_array()) {
                set_cell(row.options, where, flag, json_text(value));
                continue;
            }
            std::vector<std::string> items;
            for (const auto& item : value) items.push_back(json_text(item));
            if (flag == "style") {
                row.options.erase(flag);
                for (const std::string& item : items) set_cell(row.options, where, flag, item);
            } else {
                std::string joined;
                for (const std::string& item : items) joined += (joined.empty() ? "" : ",") + item;
                set_cell(row.options, where, flag, joined);
            }
        }
        manifest.rows.push_back(std::move(row));
    }
    return manifest;
}

bool is_still_image(const fs::path& path) {
    const std::string extension = lower(path.extension().string());
    return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

std::vector<fs::path> images_in(const std::string& dir, const char* option) {
    std::error_code error;
    if (!fs::is_directory(dir, error)) throw UsageError(std::string(option) + " '" + dir + "' is not a folder");
    std::vector<fs::path> images;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file() && is_still_image(entry.path()) && entry.path().filename().string()[0] != '.')
            images.push_back(entry.path());
    if (images.empty()) throw UsageError(std::string(option) + " '" + dir + "' has no .png, .jpg or .jpeg image");
    std::sort(images.begin(), images.end());
    return images;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

}  // namespace

bool is_flag_option(const std::string& flag) {
    if (flag == "quiet" || flag == "partial-output") return true;
    const RunOption* option = find_run_option(flag);
    return option && option->kind == RunOptionKind::flag;
}

std::string manifest_column(const std::string& name) {
    std::string flag = name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (flag.rfind("--", 0) == 0) flag = flag.substr(2);
    const std::vector<std::string> names = job_option_names();
    if (std::find(names.begin(), names.end(), flag) != names.end()) return flag;
    // The closest by common prefix and suffix: enough for a typo's hint.
    std::string hint;
    std::size_t best = 0;
    for (const std::string& candidate : names) {
        std::size_t common = 0;
        while (common < flag.size() && common < candidate.size() && flag[common] == candidate[common]) ++common;
        std::size_t tail = 0;
        while (tail < flag.size() && tail < candidate.size() &&
               flag[flag.size() - 1 - tail] == candidate[candidate.size() - 1 - tail])
            ++tail;
        if (common + tail > best && common + tail >= std::max<std::size_t>(3, flag.size() / 2)) {
            best = common + tail;
            hint = candidate;
        }
    }
    throw UsageError("unknown column '" + name + "'" + (hint.empty() ? "" : "; did you mean " + hint + "?"));
}

Manifest read_manifest(const std::string& path) {
    const std::string extension = lower(fs::path(path).extension().string());
    if (extension != ".csv" && extension != ".jsonl")
        throw UsageError("manifest '" + path + "': the extension must be .csv or .jsonl");
    std::ifstream file(path, std::ios::binary);
    if (!file) throw UsageError("cannot read the manifest '" + path + "'");
    std::stringstream stream;
    stream << file.rdbuf();
    std::string text = stream.str();
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte-order mark (spreadsheets write one)
    return extension == ".csv" ? read_csv_manifest(path, text) : read_jsonl_manifest(path, text);
}

Manifest pair_manifest(const std::string& contents_dir, const std::string& styles_dir, const std::string& pattern) {
    if (pattern.find("{content}") == std::string::npos && pattern.find("{style}") == std::string::npos)
        throw UsageError("--output-pattern '" + pattern + "' names neither {content} nor {style}");
    Manifest manifest{"(" + contents_dir + " x " + styles_dir + ")", {}};
    int number = 0;
    for (const fs::path& content : images_in(contents_dir, "--contents"))
        for (const fs::path& style : images_in(styles_dir, "--styles")) {
            const std::string output = replace_all(replace_all(pattern, "{content}", content.stem().string()),
                                                   "{style}", style.stem().string());
            manifest.rows.push_back({++number, {{"content", {content.string()}}, {"style", {style.string()}},
                                                {"output", {output}}}});
        }
    return manifest;
}

std::vector<std::string> job_arguments(const JobOptions& defaults, const JobOptions& row) {
    JobOptions merged = defaults;
    for (const auto& [flag, values] : row) merged[flag] = values;
    std::vector<std::string> arguments;
    for (const auto& [flag, values] : merged) {
        if (is_flag_option(flag)) {
            if (!values.empty() && values.front() == "true") arguments.push_back("--" + flag);
            continue;
        }
        // --flag=value: a value that begins with '-' stays a value.
        for (const std::string& value : values) arguments.push_back("--" + flag + "=" + value);
    }
    return arguments;
}

std::string state_folder(const std::string& manifest_path) { return manifest_path + ".nst-batch"; }

}  // namespace nst
