// A manifest of jobs for `neural-style batch` (DESIGN.md, "Batches"; README,
// "Batches"): one job per row, its columns the command line's option names.
//   CSV (.csv): RFC 4180 (quoted fields, "" for a quote, line breaks inside
//   quotes), a header row of column names, an empty cell: the option not given.
//   JSON Lines (.jsonl): one object per line; null: not given; a list: several
//   styles for "style", else its items joined by commas (layers, sizes).
// Column names are option names with dashes or underscores ("style_weight",
// "style-weight"); several styles in one CSV cell are separated by ';'. Flags
// (mask-erosion, quiet, partial-output) take true/false, 1/0, yes/no.
// Reading checks the syntax and the columns; the values are checked by the front
// end, which parses each job as its own command line.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace nst {

// An option's values by its dashed name: one, or several for "style".
using JobOptions = std::map<std::string, std::vector<std::string>>;

struct ManifestRow {
    int line = 0;  // of the manifest (CSV: where the record starts), or the job's number
    JobOptions options;
};

struct Manifest {
    std::string path;  // the file, or a description of a generated one
    std::vector<ManifestRow> rows;
    // "m.csv:3": where errors about row `row` point.
    std::string where(const ManifestRow& row) const { return path + ":" + std::to_string(row.line); }
};

// Reads a .csv or .jsonl manifest; UsageError "m.csv:3: ..." for a syntax error,
// an unknown column, or a row with the wrong number of fields.
Manifest read_manifest(const std::string& path);

// Every (content, style) pair of the still images (.png, .jpg, .jpeg) in two
// folders, sorted by name, content-major; the output is `pattern` with
// {content} and {style} replaced by the files' stems. UsageError when a folder
// has no image or the pattern names neither placeholder.
Manifest pair_manifest(const std::string& contents_dir, const std::string& styles_dir, const std::string& pattern);

// A column's option: "style_weight" -> "style-weight"; UsageError (with the
// closest names) when it is no option a job can take.
std::string manifest_column(const std::string& name);
// Whether option `flag` (dashed) is a flag: present or not, no value.
bool is_flag_option(const std::string& flag);

// The job's command-line arguments: `defaults` (the batch command line's options)
// overridden by `row`, as "--flag=value", flags when true, sorted by name.
std::vector<std::string> job_arguments(const JobOptions& defaults, const JobOptions& row);

// The state folder of a manifest: "<manifest>.nst-batch" beside it.
std::string state_folder(const std::string& manifest_path);

}  // namespace nst
