// Deterministic reductions for the CPU backend. Sums are in double with a fixed
// chunking, so the result does not depend on the number of threads: each chunk
// is summed in order, then the chunk sums in order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace nst::cpu {

constexpr std::size_t kReduceChunk = 1 << 14;

// Σ_{i<count} term(i). term may also write element i of an output (each i is
// visited exactly once), which lets a loss and its gradient share one pass.
template <typename Term>
double chunked_sum(std::size_t count, Term term) {
    const std::size_t chunks = (count + kReduceChunk - 1) / kReduceChunk;
    std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static)
    for (std::size_t c = 0; c < chunks; ++c) {
        const std::size_t begin = c * kReduceChunk, end = std::min(count, begin + kReduceChunk);
        double s = 0.0;
        for (std::size_t i = begin; i < end; ++i) s += term(i);
        partial[c] = s;
    }
    double total = 0.0;
    for (double p : partial) total += p;
    return total;
}

}  // namespace nst::cpu
