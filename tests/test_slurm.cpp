// A batch as a Slurm job array (engine/batch/slurm.h): the sbatch script's text,
// the shard of an array task, and the submission through a stand-in sbatch on
// PATH. The [.cluster] cases need a running Slurm (SLURM_CONF set): the ctest
// "slurm: …" script (tests/scripts/test_slurm_cluster.sh) starts one and runs them.
#include "engine/base/error.h"
#include "engine/batch/slurm.h"
#include "tests/test_support.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace {

namespace fs = std::filesystem;
using nst::test::TempDir;

// Sets an environment variable for one scope and restores it after.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) {
        if (const char* old = std::getenv(name)) saved_ = old;
        ::setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (saved_)
            ::setenv(name_, saved_->c_str(), 1);
        else
            ::unsetenv(name_);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> saved_;
};

void write_executable(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0755);
}

// What bash makes of `script`'s last line when it runs it: each word of the
// exec'd command on its own line, printed by printf instead of exec'd.
std::string words_bash_sees(const std::string& script, const TempDir& dir) {
    const std::string exec_line = script.substr(script.rfind("\nexec ") + 1);
    const std::string probe = dir.file("probe.sh");
    std::ofstream(probe) << "set -- " << exec_line.substr(5) << "printf '<%s>\\n' \"$@\"\n";
    const auto result = nst::test::run_command("bash '" + probe + "'");
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    return result.out;
}

}  // namespace

// ---- the script ---------------------------------------------------------------------

TEST_CASE("slurm: the sbatch script for the default options", "[slurm]") {
    nst::SlurmOptions options;  // job name nst-batch, nothing else
    const std::string script =
        nst::sbatch_script(options, 6, {"/opt/nst/bin/neural-style", "batch", "jobs.csv"});
    // One task per job (0-5), no throttle, and Slurm's defaults for the rest.
    CHECK(script ==
          "#!/bin/bash\n"
          "#SBATCH --job-name=nst-batch\n"
          "#SBATCH --array=0-5\n"
          "exec '/opt/nst/bin/neural-style' 'batch' 'jobs.csv'\n");
}

TEST_CASE("slurm: the sbatch script with every option", "[slurm]") {
    nst::SlurmOptions options;
    options.throttle = 2;
    options.gpus_per_task = "1";
    options.gres = "gpu:1";
    options.cpus_per_task = 4;
    options.partition = "gpu";
    options.time_limit = "02:00:00";
    options.account = "proj42";
    options.job_name = "styles";
    options.output_pattern = "state/slurm-%A_%a.out";
    options.extra = {"--qos=high", "--mail-type=END", "--exclude=node[1-3]"};
    const std::string script = nst::sbatch_script(
        options, 10, {"neural-style", "batch", "jobs.csv", "--state", "state"});
    // --array counts tasks from 0, so 10 tasks are 0-9; %2 runs two at once.
    // Each extra argument is a line of its own, after the named options.
    CHECK(script ==
          "#!/bin/bash\n"
          "#SBATCH --job-name=styles\n"
          "#SBATCH --array=0-9%2\n"
          "#SBATCH --gpus-per-task=1\n"
          "#SBATCH --gres=gpu:1\n"
          "#SBATCH --cpus-per-task=4\n"
          "#SBATCH --partition=gpu\n"
          "#SBATCH --time=02:00:00\n"
          "#SBATCH --account=proj42\n"
          "#SBATCH --output=state/slurm-%A_%a.out\n"
          "#SBATCH --qos=high\n"
          "#SBATCH --mail-type=END\n"
          "#SBATCH --exclude=node[1-3]\n"
          "exec 'neural-style' 'batch' 'jobs.csv' '--state' 'state'\n");
}

TEST_CASE("slurm: one task is the array 0-0", "[slurm]") {
    nst::SlurmOptions options;
    options.throttle = 1;
    const std::string script = nst::sbatch_script(options, 1, {"true"});
    CHECK(script.find("#SBATCH --array=0-0%1\n") != std::string::npos);
}

TEST_CASE("slurm: awkward paths reach the command as they are", "[slurm]") {
    TempDir dir("slurm-quote");
    const std::vector<std::string> command = {
        "/work/my nst/neural-style",        // a space
        "it's here",                        // a single quote
        "$HOME and `date` and $(id) \\n",   // what a shell would expand
        "\"double\" 'single' '' \t tab",    // both quotes, an empty pair, a tab
        "",                                 // an empty argument
        "line one\nline two",               // a line break
        "*.jpg ~ ; | & > <",                // globs, redirections, separators
    };
    const std::string script = nst::sbatch_script(nst::SlurmOptions{}, 2, command);
    // The text, by the quoting rule: every word single-quoted, a single quote
    // inside written '\''.
    CHECK(script.substr(script.rfind("\nexec ") + 1) ==
          "exec '/work/my nst/neural-style' 'it'\\''s here' "
          "'$HOME and `date` and $(id) \\n' "
          "'\"double\" '\\''single'\\'' '\\'''\\'' \t tab' '' "
          "'line one\nline two' '*.jpg ~ ; | & > <'\n");
    // And what bash makes of it: the same words, none expanded.
    std::string expected;
    for (const std::string& word : command) expected += "<" + word + ">\n";
    CHECK(words_bash_sees(script, dir) == expected);
}

TEST_CASE("slurm: #SBATCH values with spaces are quoted, ones sbatch cannot read refused", "[slurm]") {
    nst::SlurmOptions options;
    options.output_pattern = "/data/my runs/it's #1/slurm-%A_%a.out";
    options.job_name = "style transfer";
    const std::string script = nst::sbatch_script(options, 3, {"true"});
    // sbatch splits an #SBATCH line at spaces and stops at '#' outside double
    // quotes, and drops the quotes.
    CHECK(script ==
          "#!/bin/bash\n"
          "#SBATCH \"--job-name=style transfer\"\n"
          "#SBATCH --array=0-2\n"
          "#SBATCH \"--output=/data/my runs/it's #1/slurm-%A_%a.out\"\n"
          "exec 'true'\n");

    nst::SlurmOptions quoted;
    quoted.partition = "a\"b";
    CHECK_THROWS_AS(nst::sbatch_script(quoted, 1, {"true"}), nst::UsageError);
    nst::SlurmOptions two_lines;
    two_lines.extra = {"--qos=high\n--account=other"};
    CHECK_THROWS_WITH(nst::sbatch_script(two_lines, 1, {"true"}),
                      Catch::Contains("line break"));
}

TEST_CASE("slurm: the script refuses no tasks, negative counts and no command", "[slurm]") {
    nst::SlurmOptions options;
    CHECK_THROWS_AS(nst::sbatch_script(options, 0, {"true"}), nst::UsageError);
    CHECK_THROWS_AS(nst::sbatch_script(options, 2, {}), nst::UsageError);
    options.throttle = -1;
    CHECK_THROWS_AS(nst::sbatch_script(options, 2, {"true"}), nst::UsageError);
    options.throttle = 0;
    options.cpus_per_task = -2;
    CHECK_THROWS_AS(nst::sbatch_script(options, 2, {"true"}), nst::UsageError);
}

// ---- shards -------------------------------------------------------------------------

TEST_CASE("slurm: parse_shard reads I/N", "[slurm]") {
    const nst::Shard first = nst::parse_shard("0/4");
    CHECK(first.index == 0);
    CHECK(first.count == 4);
    const nst::Shard last = nst::parse_shard("6/7");
    CHECK(last.index == 6);
    CHECK(last.count == 7);
    const nst::Shard whole = nst::parse_shard("0/1");
    CHECK(whole.index == 0);
    CHECK(whole.count == 1);
}

TEST_CASE("slurm: parse_shard refuses what is not I/N with 0 <= I < N", "[slurm]") {
    for (const char* text : {"", "3", "/", "1/", "/4", "4/4", "5/4", "0/0", "-1/4", "1/-4",
                             "+1/4", " 1/4", "1/4 ", "1 / 4", "1/4/5", "a/4", "1/b", "1.0/4",
                             "0x1/4", "99999999999999999999/4", "1/99999999999999999999"}) {
        INFO("'" << text << "'");
        CHECK_THROWS_AS(nst::parse_shard(text), nst::UsageError);
    }
    CHECK_THROWS_WITH(nst::parse_shard("4/4"), Catch::Contains("'4/4'") && Catch::Contains("I/N"));
}

TEST_CASE("slurm: every job is in exactly one shard", "[slurm]") {
    for (int count = 1; count <= 7; ++count) {
        for (long long job = 0; job < 50; ++job) {
            int owners = 0;
            for (int index = 0; index < count; ++index)
                owners += nst::in_shard(nst::Shard{index, count}, job) ? 1 : 0;
            INFO("N = " << count << ", job " << job);
            CHECK(owners == 1);
        }
        // Shards are as even as they can be: sizes differ by one at most.
        std::vector<int> sizes(count, 0);
        for (long long job = 0; job < 23; ++job)
            for (int index = 0; index < count; ++index)
                if (nst::in_shard(nst::Shard{index, count}, job)) ++sizes[index];
        INFO("N = " << count);
        CHECK(*std::max_element(sizes.begin(), sizes.end()) -
                  *std::min_element(sizes.begin(), sizes.end()) <= 1);
    }
}

TEST_CASE("slurm: an array task's shard is ID - MIN of COUNT", "[slurm]") {
    using Env = std::map<std::string, std::string>;
    CHECK_FALSE(nst::shard_from_slurm(Env{}).has_value());
    CHECK_FALSE(nst::shard_from_slurm(Env{{"SLURM_JOB_ID", "12"}, {"PATH", "/bin"}}).has_value());

    const auto shard = nst::shard_from_slurm(
        Env{{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "6"}, {"SLURM_ARRAY_TASK_MIN", "0"},
            {"SLURM_ARRAY_TASK_MAX", "5"}});
    REQUIRE(shard.has_value());
    CHECK(shard->index == 3);
    CHECK(shard->count == 6);

    // An array that starts elsewhere (--array=10-13): task 12 is the third.
    const auto offset = nst::shard_from_slurm(
        Env{{"SLURM_ARRAY_TASK_ID", "12"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "10"}});
    REQUIRE(offset.has_value());
    CHECK(offset->index == 2);
    CHECK(offset->count == 4);
}

TEST_CASE("slurm: inconsistent array variables are refused", "[slurm]") {
    using Env = std::map<std::string, std::string>;
    const Env inconsistent[] = {
        {{"SLURM_ARRAY_TASK_ID", "1"}},                                       // only the id
        {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "4"}},      // no MIN
        {{"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "0"}},     // no id
        {{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "0"}},
        {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "3"}},
        {{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_COUNT", "0"}, {"SLURM_ARRAY_TASK_MIN", "0"}},
        {{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "0"}},
        {{"SLURM_ARRAY_TASK_ID", "-1"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "0"}},
        {{"SLURM_ARRAY_TASK_ID", ""}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "0"}},
        // --array=1,3,5: COUNT 3, MIN 1, MAX 5; task 5 would be index 4 of 3.
        {{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "1"},
         {"SLURM_ARRAY_TASK_MAX", "5"}},
        // ...and task 3 is inside MIN + COUNT, but MAX shows the gaps.
        {{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "1"},
         {"SLURM_ARRAY_TASK_MAX", "5"}},
    };
    for (const Env& environment : inconsistent) {
        std::ostringstream shown;
        for (const auto& [name, value] : environment) shown << name << "=" << value << " ";
        INFO(shown.str());
        CHECK_THROWS_AS(nst::shard_from_slurm(environment), nst::UsageError);
    }
    CHECK_THROWS_WITH(
        nst::shard_from_slurm(Env{{"SLURM_ARRAY_TASK_ID", "9"}, {"SLURM_ARRAY_TASK_COUNT", "4"},
                                  {"SLURM_ARRAY_TASK_MIN", "0"}}),
        Catch::Contains("SLURM_ARRAY_TASK_ID='9'"));
}

// ---- submission, with a stand-in sbatch on PATH ---------------------------------------

TEST_CASE("slurm: submit_sbatch runs sbatch --parsable on the script and returns the id", "[slurm]") {
    TempDir dir("slurm-submit");
    // The stand-in keeps its arguments and the script it was given, and answers
    // as sbatch --parsable does (a warning on stderr does not make it a failure).
    write_executable(dir.file("sbatch"),
                     "#!/bin/sh\n"
                     "printf '%s\\n' \"$@\" > '" + dir.file("arguments") + "'\n"
                     "cat \"$2\" > '" + dir.file("submitted") + "'\n"
                     "echo 'sbatch: warning: something harmless' >&2\n"
                     "echo \"${STAND_IN_ANSWER:-4242}\"\n");
    const ScopedEnv path("PATH", dir.path() + ":/usr/bin:/bin");
    const std::string script = "#!/bin/bash\n#SBATCH --array=0-1\nexec 'true'\n";

    CHECK(nst::submit_sbatch(script) == "4242");
    CHECK(nst::test::read_file(dir.file("submitted")) == script);
    const std::string arguments = nst::test::read_file(dir.file("arguments"));
    CHECK(arguments.rfind("--parsable\n", 0) == 0);
    // The temporary script is gone once sbatch has read it.
    const std::string script_path = arguments.substr(arguments.find('\n') + 1,
                                                     arguments.size() - arguments.find('\n') - 2);
    CHECK_FALSE(fs::exists(script_path));

    SECTION("on a federation --parsable prints ID;CLUSTER") {
        const ScopedEnv answer("STAND_IN_ANSWER", "977;cluster-b");
        CHECK(nst::submit_sbatch(script) == "977");
    }
    SECTION("an answer that is no job id is a failure") {
        const ScopedEnv answer("STAND_IN_ANSWER", "Submitted batch job");
        CHECK_THROWS_AS(nst::submit_sbatch(script), nst::RuntimeFailure);
    }
}

TEST_CASE("slurm: a failing sbatch's message is the error", "[slurm]") {
    TempDir dir("slurm-submit-fails");
    write_executable(dir.file("sbatch"),
                     "#!/bin/sh\n"
                     "echo 'sbatch: error: invalid partition specified: nope' >&2\n"
                     "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\n"
                     "exit 1\n");
    const ScopedEnv path("PATH", dir.path() + ":/usr/bin:/bin");
    CHECK_THROWS_AS(nst::submit_sbatch("#!/bin/bash\nexec 'true'\n"), nst::RuntimeFailure);
    CHECK_THROWS_WITH(nst::submit_sbatch("#!/bin/bash\nexec 'true'\n"),
                      Catch::Contains("exit status 1") &&
                          Catch::Contains("Invalid partition name specified"));
}

TEST_CASE("slurm: a lot of output on both streams does not block the submission", "[slurm]") {
    TempDir dir("slurm-submit-chatty");
    // 1 MiB on stderr before the answer: more than a pipe holds.
    write_executable(dir.file("sbatch"),
                     "#!/bin/sh\n"
                     "head -c 1048576 /dev/zero | tr '\\0' x >&2\n"
                     "echo 31337\n");
    const ScopedEnv path("PATH", dir.path() + ":/usr/bin:/bin");
    CHECK(nst::submit_sbatch("#!/bin/bash\nexec 'true'\n") == "31337");
}

TEST_CASE("slurm: without sbatch on PATH the submission says so", "[slurm]") {
    TempDir dir("slurm-no-sbatch");
    const ScopedEnv path("PATH", dir.path());
    CHECK_THROWS_AS(nst::submit_sbatch("#!/bin/bash\nexec 'true'\n"), nst::RuntimeFailure);
    CHECK_THROWS_WITH(nst::submit_sbatch("#!/bin/bash\nexec 'true'\n"),
                      Catch::Contains("sbatch is not on PATH"));
}

// ---- against a running cluster (tests/scripts/test_slurm_cluster.sh) -----------------

TEST_CASE("slurm: a real array's tasks each take one shard", "[.cluster]") {
    const char* conf = std::getenv("SLURM_CONF");
    REQUIRE(conf != nullptr);  // the script that runs this case starts the cluster
    TempDir dir("slurm-cluster-array");
    nst::SlurmOptions options;
    options.throttle = 2;
    options.job_name = "nst-shard-check";
    options.output_pattern = dir.path() + "/task %a.log";  // a space: the #SBATCH quoting
    // Each task records its environment; `$` and the quotes must reach sh as written.
    const std::string record = "env > \"" + dir.path() + "/env-$SLURM_ARRAY_TASK_ID\"";
    const int tasks = 5;
    const std::string id =
        nst::submit_sbatch(nst::sbatch_script(options, tasks, {"/bin/sh", "-c", record}));
    INFO("job " << id);

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!nst::test::run_command("squeue -h -j " + id).out.empty()) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }

    std::set<int> indices;
    for (int task = 0; task < tasks; ++task) {
        CHECK(fs::exists(dir.path() + "/task " + std::to_string(task) + ".log"));
        std::ifstream file(dir.path() + "/env-" + std::to_string(task));
        REQUIRE(file);
        std::map<std::string, std::string> environment;
        for (std::string line; std::getline(file, line);) {
            const auto equals = line.find('=');
            if (equals != std::string::npos) environment[line.substr(0, equals)] = line.substr(equals + 1);
        }
        const auto shard = nst::shard_from_slurm(environment);
        REQUIRE(shard.has_value());
        CHECK(shard->count == tasks);
        CHECK(shard->index == task);
        indices.insert(shard->index);
    }
    CHECK(indices.size() == std::size_t(tasks));
}
