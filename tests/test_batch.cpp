// `neural-style batch` (DESIGN.md, "Batches"): the manifest and its errors, the
// shards, the style-target cache, the runner's records (resume, a changed option,
// a failing job, --status), and outputs byte-identical to single runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/base/error.h"
#include "engine/batch/manifest.h"
#include "engine/batch/runner.h"
#include "engine/batch/slurm.h"
#include "engine/io/image.h"
#include "engine/io/weights.h"
#include "engine/run/transfer.h"
#include "tests/test_support.h"

using namespace nst;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

void write_text(const std::string& path, const std::string& text) {
    std::ofstream file(path, std::ios::binary);
    file << text;
}

// A folder with a narrow network's weights and a few small images.
struct BatchFolder {
    test::TempDir dir{"batch"};
    std::string weights = dir.file("narrow.h5");
    BatchFolder() {
        write_weights(weights, test::narrow_vgg19(7));
        for (unsigned k = 0; k < 3; ++k) save_image(dir.file("photo" + std::to_string(k) + ".png"), test::random_image(24, 20, 10 + k));
        for (unsigned k = 0; k < 2; ++k) save_image(dir.file("style" + std::to_string(k) + ".png"), test::random_image(20, 24, 20 + k));
    }
    std::string file(const std::string& name) const { return dir.file(name); }
    // neural-style batch ARGS, run in the folder, on the CPU with the narrow network.
    // `environment`: "NAME=value " assignments for the command.
    test::CommandResult batch(const std::string& args, const std::string& environment = "") const {
        return test::run_command("cd " + quote(dir.path()) + " && " + environment + quote(test::cli_path()) + " batch " + args +
                                 " --weights " + quote(weights) + " --device cpu --threads 1 --quiet");
    }
};

const char* kHeader = "content,style,output,size,iterations\n";

}  // namespace

TEST_CASE("batch: CSV and JSON Lines manifests, columns with dashes or underscores", "[batch]") {
    test::TempDir dir("batch-manifest");
    write_text(dir.file("m.csv"),
               "\xEF\xBB\xBF"  // a spreadsheet's byte-order mark
               "content,style,style_weight,output,mask-erosion\n"
               "a.png,\"s1.png;s2.png\",1e3,\"out, one.png\",true\n"
               "\n"
               "\"b \"\"x\"\".png\",s1.png,,\"two\nlines.png\",0\n");
    const Manifest csv = read_manifest(dir.file("m.csv"));
    REQUIRE(csv.rows.size() == 2);
    CHECK(csv.rows[0].line == 2);
    CHECK(csv.rows[0].options.at("style") == std::vector<std::string>{"s1.png", "s2.png"});
    CHECK(csv.rows[0].options.at("style-weight") == std::vector<std::string>{"1e3"});
    CHECK(csv.rows[0].options.at("output") == std::vector<std::string>{"out, one.png"});
    CHECK(csv.rows[0].options.at("mask-erosion") == std::vector<std::string>{"true"});
    CHECK(csv.rows[1].line == 4);  // the blank line 3 is skipped
    CHECK(csv.rows[1].options.at("content") == std::vector<std::string>{"b \"x\".png"});
    CHECK(csv.rows[1].options.count("style-weight") == 0);  // empty cell: not given
    CHECK(csv.rows[1].options.count("mask-erosion") == 0);
    CHECK(csv.rows[1].options.at("output") == std::vector<std::string>{"two\nlines.png"});

    write_text(dir.file("m.jsonl"),
               "{\"content\": \"a.png\", \"style\": [\"s1.png\", \"s2.png\"], \"size\": 256, \"style_layers\": [\"conv1_1\", \"conv2_1\"], \"seed\": null}\n"
               "\n"
               "{\"content\": \"b.png\", \"style\": \"s1.png\", \"tv-weight\": 0.5}\n");
    const Manifest jsonl = read_manifest(dir.file("m.jsonl"));
    REQUIRE(jsonl.rows.size() == 2);
    CHECK(jsonl.rows[0].options.at("style") == std::vector<std::string>{"s1.png", "s2.png"});
    CHECK(jsonl.rows[0].options.at("size") == std::vector<std::string>{"256"});
    CHECK(jsonl.rows[0].options.at("style-layers") == std::vector<std::string>{"conv1_1,conv2_1"});
    CHECK(jsonl.rows[0].options.count("seed") == 0);
    CHECK(jsonl.rows[1].line == 3);
    CHECK(jsonl.rows[1].options.at("tv-weight") == std::vector<std::string>{"0.5"});

    // The batch command line's options apply to every row; a row's value wins.
    const std::vector<std::string> arguments =
        job_arguments({{"size", {"128"}}, {"iterations", {"7"}}}, jsonl.rows[0].options);
    CHECK(std::count(arguments.begin(), arguments.end(), "--size=256") == 1);
    CHECK(std::count(arguments.begin(), arguments.end(), "--iterations=7") == 1);
    CHECK(std::count(arguments.begin(), arguments.end(), "--size=128") == 0);

    write_text(dir.file("bad.csv"), "content,stlye_weight\na.png,1\n");
    CHECK_THROWS_WITH(read_manifest(dir.file("bad.csv")),
                      Catch::Contains("bad.csv:1: unknown column 'stlye_weight'") && Catch::Contains("style-weight"));
    write_text(dir.file("bad.jsonl"), "{\"content\": \"a.png\"}\n{\"colour\": 1}\n");
    CHECK_THROWS_WITH(read_manifest(dir.file("bad.jsonl")), Catch::Contains("bad.jsonl:2: unknown column 'colour'"));
    write_text(dir.file("fields.csv"), "content,style\na.png\n");
    CHECK_THROWS_WITH(read_manifest(dir.file("fields.csv")), Catch::Contains("fields.csv:2: 1 fields, the header has 2"));
    CHECK_THROWS_WITH(read_manifest(dir.file("m.txt")), Catch::Contains(".csv or .jsonl"));
}

TEST_CASE("batch: the folder-pairs generator, sorted, content-major", "[batch]") {
    test::TempDir dir("batch-pairs");
    fs::create_directories(dir.file("c"));
    fs::create_directories(dir.file("s"));
    for (const char* name : {"c/b.jpg", "c/a.png", "c/notes.txt", "s/y.png", "s/x.JPEG"}) write_text(dir.file(name), "");
    const Manifest m = pair_manifest(dir.file("c"), dir.file("s"), "out/{content}_{style}.png");
    REQUIRE(m.rows.size() == 4);
    CHECK(m.rows[0].options.at("output")[0] == "out/a_x.png");
    CHECK(m.rows[1].options.at("output")[0] == "out/a_y.png");
    CHECK(m.rows[2].options.at("output")[0] == "out/b_x.png");
    CHECK(m.rows[3].options.at("content")[0] == dir.file("c") + "/b.jpg");
    CHECK_THROWS_WITH(pair_manifest(dir.file("c"), dir.file("s"), "out.png"), Catch::Contains("neither"));
}

TEST_CASE("batch: every job is in exactly one shard", "[batch][shards]") {
    for (int count = 1; count <= 7; ++count)
        for (long long k = 0; k < 50; ++k) {
            int shards = 0;
            for (int index = 0; index < count; ++index) shards += in_shard(parse_shard(std::to_string(index) + "/" + std::to_string(count)), k);
            INFO("job " << k << " of N = " << count);
            CHECK(shards == 1);
        }
    for (const char* bad : {"4/4", "-1/4", "1/0", "1", "a/b", "1/4/2", ""})
        CHECK_THROWS_AS(parse_shard(bad), UsageError);
    CHECK_FALSE(shard_from_slurm({}).has_value());
    const std::optional<Shard> task =
        shard_from_slurm({{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "3"}});
    REQUIRE(task.has_value());
    CHECK(task->index == 2);
    CHECK(task->count == 4);
    CHECK_THROWS_AS(shard_from_slurm({{"SLURM_ARRAY_TASK_ID", "9"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}), UsageError);
}

TEST_CASE("batch: the style-target cache computes a style once, and the outputs are the same bits", "[batch][cache]") {
    const VggWeights weights = test::narrow_vgg19(3);
    const auto request = [](unsigned content_seed, unsigned style_seed) {
        TransferRequest r;
        r.content = test::random_image(30, 24, content_seed);
        r.styles = {test::random_image(28, 28, style_seed)};
        r.size = 32;
        r.iterations = 4;
        r.device = "cpu";
        r.threads = 1;
        return r;
    };
    const std::vector<TransferRequest> jobs = {request(1, 100), request(2, 100), request(3, 100), request(4, 200)};
    std::unique_ptr<Backend> backend = make_backend(parse_device("cpu"), 1, false);
    StyleTargetCache cache;
    for (const TransferRequest& job : jobs) {
        const TransferResult alone = run_transfer(weights, job);
        const TransferResult cached = run_transfer(*backend, weights, job, {}, &cache);
        REQUIRE(alone.image.pixels.size() == cached.image.pixels.size());
        CHECK(alone.image.pixels == cached.image.pixels);  // bit for bit: the targets are copies
    }
    CHECK(cache.computed() == 2);  // style 100 once, style 200 once
    CHECK(cache.reused() == 2);

    // Guided (style masks): the regions' targets come back too.
    TransferRequest guided = request(5, 100);
    guided.style_masks = {Image{}};
    Image mask;
    mask.width = 30;
    mask.height = 24;
    mask.pixels.assign(std::size_t(30) * 24 * 3, 0.0f);
    std::fill(mask.pixels.begin(), mask.pixels.begin() + std::ptrdiff_t(mask.pixels.size() / 2), 1.0f);
    guided.style_masks = {mask};
    StyleTargetCache guided_cache;
    const TransferResult alone = run_transfer(weights, guided);
    run_transfer(*backend, weights, guided, {}, &guided_cache);
    const TransferResult again = run_transfer(*backend, weights, guided, {}, &guided_cache);
    CHECK(guided_cache.computed() == 1);
    CHECK(guided_cache.reused() == 1);
    CHECK(alone.image.pixels == again.image.pixels);
}

TEST_CASE("batch: a bad manifest names the file and line of each bad row, and nothing runs", "[batch][errors]") {
    BatchFolder f;
    const auto check = [&](const std::string& rows, const std::string& expected) {
        write_text(f.file("m.csv"), std::string(kHeader) + rows);
        const test::CommandResult r = f.batch("m.csv");
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(expected) != std::string::npos);
        CHECK_FALSE(fs::exists(f.file("m.csv.nst-batch")));
        CHECK_FALSE(fs::exists(f.file("o1.png")));
    };
    const std::string good = "photo0.png,style0.png,o1.png,32,2\n";
    check(good + "photo1.png,style0.png,o2.png,big,2\n", "m.csv:3: --size: 'big' is not a whole number");
    check(good + "photo1.png,style0.png,o2.png,8,2\n", "m.csv:3: 1 scales halving down from 8 px");
    check(good + "missing.png,style0.png,o2.png,32,2\n", "m.csv:3: --content 'missing.png': no such file");
    check(good + "photo1.png,style0.png,o1.png,32,2\n", "m.csv:3: --output 'o1.png' is also the output of m.csv:2");
    check(good + "photo1.png,style0.png,photo0.png,32,2\n", "m.csv:3: --output 'photo0.png' is an input of m.csv:2");
    check(good + "photo1.png,style0.png,o2.gif,32,2\n", "m.csv:3: --output 'o2.gif'");
    write_text(f.file("u.csv"), "content,style,output,colour\nphoto0.png,style0.png,o1.png,red\n");
    const test::CommandResult unknown = f.batch("u.csv");
    CHECK(unknown.exit_code == 2);
    CHECK(unknown.err.find("u.csv:1: unknown column 'colour'") != std::string::npos);
}

TEST_CASE("batch: a rerun skips done jobs, runs the rest and those whose options changed", "[batch][resume]") {
    BatchFolder f;
    const std::string rows = "photo0.png,style0.png,o0.png,32,3\n"
                             "photo1.png,style0.png,o1.png,32,3\n"
                             "photo2.png,style1.png,o2.png,32,3\n";
    write_text(f.file("m.csv"), std::string(kHeader) + rows);
    // Stopped after some jobs: here, shard 0/2 ran jobs 0 and 2 only.
    test::CommandResult first = f.batch("m.csv --shard 0/2");
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    CHECK(first.err.find("2 jobs: 2 succeeded, 0 failed, 0 skipped") != std::string::npos);
    CHECK_FALSE(fs::exists(f.file("o1.png")));
    const std::string o0 = test::read_file(f.file("o0.png"));

    test::CommandResult second = f.batch("m.csv");
    INFO(second.err);
    CHECK(second.exit_code == 0);
    CHECK(second.err.find("3 jobs: 1 succeeded, 0 failed, 2 skipped") != std::string::npos);
    CHECK(test::file_exists(f.file("o1.png")));

    test::CommandResult third = f.batch("m.csv");
    CHECK(third.err.find("3 jobs: 0 succeeded, 0 failed, 3 skipped") != std::string::npos);

    // A changed option (row 2's iterations) and a changed input (style1) rerun their jobs only.
    write_text(f.file("m.csv"), std::string(kHeader) + "photo0.png,style0.png,o0.png,32,3\n"
                                                       "photo1.png,style0.png,o1.png,32,4\n"
                                                       "photo2.png,style1.png,o2.png,32,3\n");
    save_image(f.file("style1.png"), test::random_image(20, 24, 99));
    test::CommandResult fourth = f.batch("m.csv");
    INFO(fourth.err);
    CHECK(fourth.err.find("3 jobs: 2 succeeded, 0 failed, 1 skipped") != std::string::npos);
    CHECK(test::read_file(f.file("o0.png")) == o0);
    // An option given on the batch command line for every job changes them all.
    test::CommandResult fifth = f.batch("m.csv --tv-weight 0.5");
    CHECK(fifth.err.find("3 jobs: 3 succeeded, 0 failed, 0 skipped") != std::string::npos);
    // A deleted output is made again.
    fs::remove(f.file("o2.png"));
    test::CommandResult sixth = f.batch("m.csv --tv-weight 0.5");
    CHECK(sixth.err.find("3 jobs: 1 succeeded, 0 failed, 2 skipped") != std::string::npos);
}

TEST_CASE("batch: a failing job is recorded with its message and code, the others run, and --status lists it", "[batch][errors]") {
    BatchFolder f;
    write_text(f.file("broken.png"), "not a PNG at all");
    write_text(f.file("m.csv"), std::string(kHeader) + "photo0.png,style0.png,o0.png,32,2\n"
                                                       "broken.png,style0.png,o1.png,32,2\n"
                                                       "photo2.png,style0.png,o2.png,32,2\n");
    const test::CommandResult r = f.batch("m.csv");
    INFO(r.err);
    CHECK(r.exit_code == 3);  // the CLI's code for a bad input
    CHECK(r.err.find("m.csv:3: error:") != std::string::npos);
    CHECK(r.err.find("3 jobs: 2 succeeded, 1 failed, 0 skipped") != std::string::npos);
    CHECK(test::file_exists(f.file("o0.png")));
    CHECK(test::file_exists(f.file("o2.png")));
    CHECK_FALSE(test::file_exists(f.file("o1.png")));

    const BatchState state(f.file("m.csv.nst-batch"));
    const std::optional<JobRecord> record = state.read(f.file("o1.png"));
    REQUIRE(record.has_value());
    CHECK(record->status == "failed");
    CHECK(record->exit_code == 3);
    CHECK(record->message.find("broken.png") != std::string::npos);

    const test::CommandResult status = f.batch("--status m.csv");
    INFO(status.out);
    CHECK(status.exit_code == 1);  // not all done
    CHECK(status.out.find("3 jobs: 2 done, 1 failed, 0 pending") != std::string::npos);
    CHECK(status.out.find("failed: m.csv:3 (exit 3): ") != std::string::npos);
    CHECK(status.out.find("broken.png") != std::string::npos);
    // --status runs nothing: the failed job's output is still absent.
    CHECK_FALSE(test::file_exists(f.file("o1.png")));

    // Fixed, the rerun runs that job only; then --status says all done.
    save_image(f.file("broken.png"), test::random_image(24, 20, 77));
    const test::CommandResult rerun = f.batch("m.csv");
    CHECK(rerun.exit_code == 0);
    CHECK(rerun.err.find("3 jobs: 1 succeeded, 0 failed, 2 skipped") != std::string::npos);
    const test::CommandResult done = f.batch("--status m.csv");
    CHECK(done.exit_code == 0);
    CHECK(done.out.find("3 jobs: 3 done, 0 failed, 0 pending") != std::string::npos);
}

TEST_CASE("batch: outputs are byte-identical to single neural-style runs (real weights, 64 px)", "[batch][e2e]") {
    test::TempDir dir("batch-identical");
    const std::string weights = test::shared_weights_path();
    REQUIRE(test::file_exists(weights));
    const std::string tubingen = test::shared_image_path("tubingen.jpg"), shipwreck = test::shared_image_path("shipwreck.jpg");
    const std::string starry = test::shared_image_path("starry_night.jpg"), kandinsky = test::shared_image_path("kandinsky_composition_vii.jpg");
    write_text(dir.file("m.csv"), "content,style,output\n" + tubingen + "," + starry + ",a.png\n" + shipwreck + "," +
                                      starry + ",b.png\n" + tubingen + "," + kandinsky + ",c.jpg\n");
    const std::string common = " --weights " + quote(weights) + " --size 64 --iterations 4 --device cpu --threads 1 --quiet";
    const test::CommandResult batch =
        test::run_command("cd " + quote(dir.path()) + " && " + quote(test::cli_path()) + " batch m.csv" + common);
    INFO(batch.err);
    REQUIRE(batch.exit_code == 0);
    const std::vector<std::vector<std::string>> singles = {{tubingen, starry, "a.png"}, {shipwreck, starry, "b.png"},
                                                           {tubingen, kandinsky, "c.jpg"}};
    for (const auto& job : singles) {
        const std::string single = dir.file("single_" + job[2]);
        const test::CommandResult one = test::run_command(quote(test::cli_path()) + " --content " + quote(job[0]) +
                                                          " --style " + quote(job[1]) + " --output " + quote(single) + common);
        REQUIRE(one.exit_code == 0);
        INFO(job[2]);
        CHECK(test::read_file(single) == test::read_file(dir.file(job[2])));
    }
}

TEST_CASE("batch: inside a Slurm array task the shard is the task's, and --slurm --dry-run prints the array job", "[batch][shards]") {
    BatchFolder f;
    write_text(f.file("m.csv"), std::string(kHeader) + "photo0.png,style0.png,o0.png,32,2\n"
                                                       "photo1.png,style0.png,o1.png,32,2\n"
                                                       "photo2.png,style0.png,o2.png,32,2\n");
    const test::CommandResult task =
        f.batch("m.csv", "SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_MIN=3 ");
    INFO(task.err);
    CHECK(task.exit_code == 0);
    CHECK(task.err.find("1 jobs: 1 succeeded") != std::string::npos);  // task 1 of 2: job 1 only
    CHECK(test::file_exists(f.file("o1.png")));
    CHECK_FALSE(test::file_exists(f.file("o0.png")));

    fs::remove_all(f.file("m.csv.nst-batch"));
    const test::CommandResult script = f.batch("m.csv --size 48 --slurm --array-tasks 8 --throttle 2 --dry-run");
    INFO(script.out << script.err);
    CHECK(script.exit_code == 0);
    CHECK(script.out.find("#SBATCH --array=0-2%2") != std::string::npos);  // at most one task per job
    const std::string state = fs::canonical(f.dir.path()).string() + "/m.csv.nst-batch";
    CHECK(script.out.find("'batch' '" + fs::canonical(f.dir.path()).string() + "/m.csv' '--state' '" + state + "'") !=
          std::string::npos);
    CHECK(script.out.find("'--size' '48'") != std::string::npos);
    CHECK_FALSE(fs::exists(state));  // a dry run submits and writes nothing
}

TEST_CASE("batch: SIGINT stops the current job after its iteration, which is not done and runs again", "[batch][signals]") {
    BatchFolder f;
    write_text(f.file("m.csv"), "content,style,output,size,iterations,log-json\n"
                                "photo0.png,style0.png,o0.png,32,2,\n"
                                "photo1.png,style0.png,o1.png,32,1000000,log1.jsonl\n"
                                "photo2.png,style0.png,o2.png,32,2,\n");
    // Started in the background; SIGINT once job 2 has logged an iteration (at most 30 s).
    const test::CommandResult r = test::run_command(
        "cd " + quote(f.dir.path()) + " && { " + quote(test::cli_path()) + " batch m.csv --weights " + quote(f.weights) +
        " --device cpu --threads 1 --quiet & pid=$!; n=0; while [ ! -s log1.jsonl ] && [ $n -lt 600 ]; do sleep 0.05; "
        "n=$((n+1)); done; kill -INT $pid; wait $pid; echo \"exit $?\"; }");
    INFO(r.err);
    CHECK(r.out.find("exit 130") != std::string::npos);
    CHECK(r.err.find("interrupted by SIGINT") != std::string::npos);
    CHECK_FALSE(test::file_exists(f.file("o2.png")));  // the batch stopped there
    const BatchState state(f.file("m.csv.nst-batch"));
    const std::optional<JobRecord> stopped = state.read(f.file("o1.png"));
    REQUIRE(stopped.has_value());
    CHECK(stopped->status == "interrupted");
    CHECK(stopped->exit_code == 130);
    const test::CommandResult status = f.batch("--status m.csv");
    CHECK(status.out.find("3 jobs: 1 done, 0 failed, 2 pending") != std::string::npos);
}
