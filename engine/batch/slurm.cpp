#include "engine/batch/slurm.h"

#include "engine/base/error.h"
#include "engine/io/files.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace nst {

namespace {

// A whole non-negative decimal number (no sign, no spaces), or nothing.
std::optional<long long> parse_count(const std::string& text) {
    if (text.empty() || text.size() > 18) return std::nullopt;  // 18 digits cannot overflow
    long long value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value;
}

// One word for bash: single quotes keep everything ($, `, \, spaces, newlines)
// literal; a single quote inside ends the quoted run, adds an escaped quote and
// opens a new run ('it'\''s').
std::string shell_quote(const std::string& word) {
    std::string quoted = "'";
    for (const char c : word) {
        if (c == '\'')
            quoted += "'\\''";
        else
            quoted += c;
    }
    return quoted + "'";
}

// One "#SBATCH --name=value" line. sbatch reads these lines itself, not through
// a shell: it splits at white space outside double quotes, drops the quotes, and
// stops at a '#' outside them. A value with white space or '#' is double-quoted; a
// value that cannot be written so (a double quote, a line break) is refused.
std::string sbatch_line(const std::string& argument) {
    for (const char c : argument)
        if (c == '"' || c == '\n' || c == '\r' || c == '\0')
            throw UsageError("sbatch argument '" + argument +
                             "': a double quote or a line break cannot be written in an #SBATCH line");
    bool needs_quotes = argument.empty();
    for (const char c : argument)
        if (c == ' ' || c == '\t' || c == '#' || c == '\'') needs_quotes = true;
    return "#SBATCH " + (needs_quotes ? "\"" + argument + "\"" : argument) + "\n";
}

// Reads both pipes to their end without letting either fill up (a child blocked
// writing its stderr while we wait on its stdout would never finish).
void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string* sinks[2] = {&out, &err};
    int open_count = 2;
    char buffer[4096];
    while (open_count > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw RuntimeFailure(std::string("sbatch: cannot read its output (") +
                                 std::strerror(errno) + ")");
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            const ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
            if (got > 0) {
                sinks[i]->append(buffer, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                fds[i].fd = -1;  // poll() skips negative descriptors
                --open_count;
            }
        }
    }
}

std::string trimmed(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return "";
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

// The script as a temporary file (sbatch copies it at submission, so it is
// removed as soon as sbatch returns).
class ScriptFile {
public:
    explicit ScriptFile(const std::string& script) {
        const char* folder = std::getenv("TMPDIR");
        path_ = std::string(folder && *folder ? folder : "/tmp") + "/nst-sbatch-XXXXXX";
        FileDescriptor file(::mkstemp(path_.data()));
        if (!file) {
            throw RuntimeFailure("cannot write the sbatch script '" + path_ + "': " +
                                 std::strerror(errno));
        }
        std::size_t written = 0;
        while (written < script.size()) {
            const ssize_t n = ::write(file.get(), script.data() + written, script.size() - written);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const std::string reason = std::strerror(errno);
                ::unlink(path_.c_str());
                throw RuntimeFailure("cannot write the sbatch script '" + path_ + "': " + reason);
            }
            written += static_cast<std::size_t>(n);
        }
    }
    ~ScriptFile() { ::unlink(path_.c_str()); }
    ScriptFile(const ScriptFile&) = delete;
    ScriptFile& operator=(const ScriptFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

}  // namespace

Shard parse_shard(const std::string& text) {
    const auto slash = text.find('/');
    const auto fail = [&](const std::string& why) -> Shard {
        throw UsageError("shard '" + text + "': " + why + " (expected I/N with 0 <= I < N, e.g. 0/4)");
    };
    if (slash == std::string::npos) return fail("no '/'");
    const auto index = parse_count(text.substr(0, slash));
    const auto count = parse_count(text.substr(slash + 1));
    if (!index || !count) return fail("I and N must be whole numbers");
    if (*count < 1 || *count > 1000000) return fail("N must be between 1 and 1000000");
    if (*index >= *count) return fail("I must be less than N");
    return Shard{static_cast<int>(*index), static_cast<int>(*count)};
}

std::optional<Shard> shard_from_slurm(const std::map<std::string, std::string>& environment) {
    const auto value = [&](const char* name) -> const std::string* {
        const auto it = environment.find(name);
        return it == environment.end() ? nullptr : &it->second;
    };
    const std::string* id = value("SLURM_ARRAY_TASK_ID");
    const std::string* count = value("SLURM_ARRAY_TASK_COUNT");
    const std::string* min = value("SLURM_ARRAY_TASK_MIN");
    if (!id && !count && !min) return std::nullopt;  // not an array task
    const auto show = [](const char* name, const std::string* text) {
        return std::string(name) + "=" + (text ? "'" + *text + "'" : "(unset)");
    };
    const std::string seen = show("SLURM_ARRAY_TASK_ID", id) + ", " +
                             show("SLURM_ARRAY_TASK_COUNT", count) + ", " +
                             show("SLURM_ARRAY_TASK_MIN", min);
    const auto fail = [&](const std::string& why) -> std::optional<Shard> {
        throw UsageError("the Slurm array variables are inconsistent (" + seen + "): " + why);
    };
    if (!id || !count || !min) return fail("all three must be set in an array task");
    const auto task = parse_count(*id), tasks = parse_count(*count), first = parse_count(*min);
    if (!task || !tasks || !first) return fail("they must be whole numbers");
    if (*tasks < 1 || *tasks > 1000000) return fail("the task count must be between 1 and 1000000");
    if (*task < *first || *task - *first >= *tasks)
        return fail("the task is outside MIN .. MIN + COUNT - 1");
    // A stepped or sparse array (--array=1,3,5 or 0-9:2) numbers its tasks
    // otherwise; MAX tells, where Slurm sets it.
    if (const std::string* max = value("SLURM_ARRAY_TASK_MAX")) {
        const auto last = parse_count(*max);
        if (!last || *last - *first + 1 != *tasks)
            return fail("SLURM_ARRAY_TASK_MAX='" + *max +
                        "' does not make MIN .. MAX a range of COUNT tasks (a stepped or sparse array)");
    }
    return Shard{static_cast<int>(*task - *first), static_cast<int>(*tasks)};
}

std::string sbatch_script(const SlurmOptions& options, int tasks,
                          const std::vector<std::string>& command) {
    if (tasks < 1) throw UsageError("a Slurm array needs at least one task (got " +
                                    std::to_string(tasks) + ")");
    if (options.throttle < 0)
        throw UsageError("--throttle must be 0 (no limit) or more (got " +
                         std::to_string(options.throttle) + ")");
    if (options.cpus_per_task < 0)
        throw UsageError("--cpus-per-task must be 0 (Slurm's default) or more (got " +
                         std::to_string(options.cpus_per_task) + ")");
    if (command.empty()) throw UsageError("the Slurm array has no command to run");

    std::string script = "#!/bin/bash\n";
    const auto option = [&](const char* name, const std::string& value) {
        if (!value.empty()) script += sbatch_line(std::string("--") + name + "=" + value);
    };
    option("job-name", options.job_name);
    std::string array = "0-" + std::to_string(tasks - 1);
    if (options.throttle > 0) array += "%" + std::to_string(options.throttle);
    option("array", array);
    option("gpus-per-task", options.gpus_per_task);
    option("gres", options.gres);
    if (options.cpus_per_task > 0) option("cpus-per-task", std::to_string(options.cpus_per_task));
    option("partition", options.partition);
    option("time", options.time_limit);
    option("account", options.account);
    option("output", options.output_pattern);
    for (const std::string& argument : options.extra) script += sbatch_line(argument);

    // exec: the task's process is the batch command itself, so scancel's signal
    // reaches it directly.
    script += "exec";
    for (const std::string& word : command) {
        if (word.find('\0') != std::string::npos)
            throw UsageError("a command argument holds a NUL byte");
        script += " " + shell_quote(word);
    }
    return script + "\n";
}

std::string submit_sbatch(const std::string& script) {
    ScriptFile file(script);

    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0)
        throw RuntimeFailure(std::string("sbatch: cannot make a pipe (") + std::strerror(errno) + ")");
    FileDescriptor out_read(out_pipe[0]), out_write(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0)
        throw RuntimeFailure(std::string("sbatch: cannot make a pipe (") + std::strerror(errno) + ")");
    FileDescriptor err_read(err_pipe[0]), err_write(err_pipe[1]);

    // The child's stdin is /dev/null, its stdout and stderr the pipes (dup2
    // clears O_CLOEXEC on the copies; the originals close at exec).
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
    posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
    std::string program = "sbatch", parsable = "--parsable", path = file.path();
    char* argv[] = {program.data(), parsable.data(), path.data(), nullptr};
    pid_t pid = -1;
    // posix_spawnp searches PATH and, in glibc, reports a failed exec (ENOENT
    // when sbatch is not installed) as its return value.
    const int spawned = ::posix_spawnp(&pid, "sbatch", &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        if (spawned == ENOENT)
            throw RuntimeFailure("cannot submit to Slurm: sbatch is not on PATH");
        throw RuntimeFailure(std::string("cannot run sbatch: ") + std::strerror(spawned));
    }
    out_write = FileDescriptor();
    err_write = FileDescriptor();

    std::string out, err;
    std::string drain_failure;
    try {
        drain(out_read.get(), err_read.get(), out, err);
    } catch (const RuntimeFailure& failure) {
        drain_failure = failure.what();
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!drain_failure.empty()) throw RuntimeFailure(drain_failure);

    const std::string message = trimmed(err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        const std::string how = WIFEXITED(status)
                                    ? "exit status " + std::to_string(WEXITSTATUS(status))
                                    : "signal " + std::to_string(WTERMSIG(status));
        throw RuntimeFailure("sbatch failed (" + how + ")" +
                             (message.empty() ? std::string() : ": " + message));
    }
    // --parsable prints "ID" or "ID;CLUSTER" (on a federation or with -M).
    std::string id = trimmed(out);
    id = id.substr(0, id.find_first_of(";\n"));
    if (!parse_count(id))
        throw RuntimeFailure("sbatch printed no job id (stdout '" + trimmed(out) + "'" +
                             (message.empty() ? std::string() : ", stderr '" + message + "'") + ")");
    return id;
}

}  // namespace nst
