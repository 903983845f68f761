// What an allocation is for, as the memory plan lists it (engine/run/memory_plan.h).
// The code that allocates says so with a scope:
//   MemoryUseScope use(MemoryUse::loss_targets);
//   layer.target = Buffer(backend, n * n);
// Backends that allocate for real ignore it; the counting backend
// (engine/backends/counting_backend.h) files each allocation under the use in
// scope, so the plan's table comes from the allocations themselves. Scopes nest
// (the innermost wins) and are per thread.
#pragma once

namespace nst {

enum class MemoryUse {
    unattributed,     // no scope: only transient set-up buffers should be
    weights,          // the network's filters and biases
    activations,      // the network's outputs, their gradients and its scratch
    loss_targets,     // what the loss terms match (P^l, A^l, masks) and their values
    masked_features,  // the masked copies of a layer's features (spatial control)
    tiles,            // tiled evaluation: a tile's input, gradient and crops
    optimiser,        // the image and the optimiser's vectors and scalars
};
inline constexpr int kMemoryUses = int(MemoryUse::optimiser) + 1;

inline MemoryUse& current_memory_use() {
    thread_local MemoryUse use = MemoryUse::unattributed;
    return use;
}

class MemoryUseScope {
public:
    explicit MemoryUseScope(MemoryUse use) : previous_(current_memory_use()) { current_memory_use() = use; }
    ~MemoryUseScope() { current_memory_use() = previous_; }
    MemoryUseScope(const MemoryUseScope&) = delete;
    MemoryUseScope& operator=(const MemoryUseScope&) = delete;

private:
    MemoryUse previous_;
};

}  // namespace nst
