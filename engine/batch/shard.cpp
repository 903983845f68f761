// Shards of a batch (engine/batch/slurm.h): which jobs one process runs.
#include <cstdlib>
#include <string>

#include "engine/base/error.h"
#include "engine/batch/slurm.h"

namespace nst {

namespace {

// A whole number in [0, 2^31), or -1.
long long whole_number(const std::string& text) {
    if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
    const long long value = std::stoll(text);
    return value < (1LL << 31) ? value : -1;
}

}  // namespace

Shard parse_shard(const std::string& text) {
    const std::size_t slash = text.find('/');
    const long long index = slash == std::string::npos ? -1 : whole_number(text.substr(0, slash));
    const long long count = slash == std::string::npos ? -1 : whole_number(text.substr(slash + 1));
    if (index < 0 || count < 1 || index >= count)
        throw UsageError("--shard '" + text + "': expected I/N with 0 <= I < N (e.g. 0/4)");
    return {int(index), int(count)};
}

std::optional<Shard> shard_from_slurm(const std::map<std::string, std::string>& environment) {
    const auto get = [&](const char* name) {
        const auto found = environment.find(name);
        return found == environment.end() ? std::optional<std::string>{} : found->second;
    };
    const auto id = get("SLURM_ARRAY_TASK_ID"), count = get("SLURM_ARRAY_TASK_COUNT"),
               min = get("SLURM_ARRAY_TASK_MIN");
    if (!id) return std::nullopt;
    const long long task = whole_number(*id), tasks = count ? whole_number(*count) : -1,
                    first = min ? whole_number(*min) : 0;
    if (task < 0 || tasks < 1 || first < 0 || task < first || task - first >= tasks)
        throw UsageError("inconsistent Slurm array variables: SLURM_ARRAY_TASK_ID=" + *id +
                         ", SLURM_ARRAY_TASK_COUNT=" + count.value_or("(unset)") +
                         ", SLURM_ARRAY_TASK_MIN=" + min.value_or("(unset)"));
    return Shard{int(task - first), int(tasks)};
}

}  // namespace nst
