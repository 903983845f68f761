// The objective's one evaluation path over a list of loss terms (tiled or not:
// DESIGN.md, "Tiling"; engine/objective/tiles.h for the geometry and why it is exact).
#include "engine/objective/loss_term.h"

#include "engine/base/memory_use.h"

namespace nst {

namespace {

// Pass 2 of one tile (untiled: the one whole tile): each term's gradient at its
// layers through the backward pass, then the core of ∂L/∂x into grad.
void backward_tile(LossContext& context, const LossTermList& terms, const std::vector<bool>& has_loss,
                   const TileView& view, float* grad) {
    Backend& backend = context.backend;
    const PixelRect& rect = view.extent;
    float* image_grad = view.whole ? grad : context.tile_grad.data();
    backend.fill(3 * std::size_t(rect.width()) * rect.height(), 0.0f, image_grad);
    context.network.backward(
        view.acts, has_loss,
        [&](int layer, float* layer_grad) {
            for (const auto& term : terms) term->add_layer_gradient(view, layer, layer_grad);
        },
        image_grad);
    if (view.whole) return;
    const LayerWindow core = window_at_layer(view.tile.core, rect, context.width, context.height, 0);
    backend.copy_window(window(3, core.rows, core.cols, rect.height(), rect.width(), core.local_y,
                               core.local_x, context.height, context.width, core.y, core.x),
                        image_grad, grad);
}

}  // namespace

std::vector<bool> layers_read(const LossContext& context, const LossTermList& terms) {
    std::vector<bool> read(context.network.deepest_layer() + 1, false);
    for (const auto& term : terms)
        for (int layer : term->layers()) read[layer] = true;
    return read;
}

void allocate_term_slots(LossContext& context, const LossTermList& terms) {
    std::size_t count = LossContext::kFirstTermSlot;
    for (const auto& term : terms) {
        term->set_first_slot(count);
        count += term->slot_count();
    }
    MemoryUseScope use(MemoryUse::loss_targets);  // the terms' values
    if (context.slots.size() != count) context.slots = ScalarBuffer(context.backend, count);
}

void queue_loss_terms(LossContext& context, const LossTermList& terms, const std::vector<bool>& has_loss,
                      const float* x, float* grad) {
    using Pass = LossContext::Pass;
    // Pass 1: what pass 2 needs of the whole image (G^l summed over the cores),
    // and the values that are sums over the cores. Untiled, it is folded into pass 2.
    if (context.tiled())
        context.for_each_tile(x, Pass::forward, [&](const TileView& view) {
            for (const auto& term : terms) term->add_core(view);
        });
    // Pass 2. The cores cover the image, so every element of grad is written
    // before the terms on the image add to it.
    context.for_each_tile(x, Pass::backward,
                          [&](const TileView& view) { backward_tile(context, terms, has_loss, view, grad); });
    for (const auto& term : terms) term->add_image_gradient(x, grad);
}

}  // namespace nst
