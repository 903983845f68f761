// One loss term of the objective (DESIGN.md, "The objective"): its targets and
// buffers, the layers it reads, its value and its gradient. The objective
// (engine/objective/objective.cpp) runs every term of NST_LOSS_TERMS through one
// evaluation, tiled or not ("Tiling"):
//
//   tiled only, pass 1, per tile:  add_core(view)       sums over the tile's core
//                                                        what pass 2 needs (G^l) or
//                                                        the value (content)
//   pass 2, per tile (untiled: one whole tile), in the backward pass at each
//   layer the term reads:          add_layer_gradient(view, layer, layer_grad)
//   after the tiles:               add_image_gradient(x, grad)   (terms on x itself)
//   after the one host wait:       read_value()
//
// Values go to the term's scalar slots in backend memory (LossContext::slots),
// gradients are accumulated (never overwritten) with the term's weight from
// ObjectiveConfig, so that all terms' values are read in one wait and no term
// needs a gradient buffer of its own. At a layer, terms run in list order.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "engine/objective/loss_context.h"

namespace nst {

class LossTerm {
public:
    explicit LossTerm(LossContext& context) : context_(context) {}
    virtual ~LossTerm() = default;
    LossTerm(const LossTerm&) = delete;
    LossTerm& operator=(const LossTerm&) = delete;

    // The network layers whose features it reads (empty: it reads the image only).
    virtual std::vector<int> layers() const = 0;
    // Bytes of backend memory it holds: its targets, masks and own scratch.
    virtual std::size_t held_bytes() const = 0;
    // Scalar slots it writes in one evaluation (may change as its inputs are set).
    virtual std::size_t slot_count() const = 0;
    // Takes what it needs of the scale's inputs (targets, masks), at set-up.
    virtual void set_inputs(const ObjectiveInputs& inputs) { (void)inputs; }
    // Throws Error when an input it needs has not been set.
    virtual void check_ready() const {}

    // Pass 1 of a tiled evaluation: view holds a tile's forward extent.
    virtual void add_core(const TileView& view) { (void)view; }
    // At `layer` of the backward pass over view's extent, while its features are
    // intact: adds weight · ∂term/∂F^l to layer_grad (C_l, h_l, w_l). A whole
    // view also writes the value (there was no pass 1).
    virtual void add_layer_gradient(const TileView& view, int layer, float* layer_grad) {
        (void)view, (void)layer, (void)layer_grad;
    }
    // After every tile: a term on the image itself adds weight · ∂term/∂x to grad (3, H, W).
    virtual void add_image_gradient(const float* x, float* grad) { (void)x, (void)grad; }
    // After the backend's wait: the term's unweighted value from the host copy of its slots.
    virtual double read_value() = 0;

    // Its slots are [first, first + slot_count()) of LossContext::slots.
    void set_first_slot(std::size_t first) { first_slot_ = first; }

protected:
    double* slot(std::size_t k) const { return context_.slots.slot(first_slot_ + k); }
    double host_slot(std::size_t k) const { return context_.slots.host(first_slot_ + k); }

    LossContext& context_;

private:
    std::size_t first_slot_ = 0;
};

// make_content_term(), make_style_term(), ...: one per NST_LOSS_TERMS entry,
// defined in engine/objective/<name>_term.cpp.
#define NST_LOSS_TERM_FACTORY(name, weight, default_weight, help) \
    std::unique_ptr<LossTerm> make_##name##_term(LossContext& context);
NST_LOSS_TERMS(NST_LOSS_TERM_FACTORY)
#undef NST_LOSS_TERM_FACTORY

// ---- running a list of terms (engine/objective/loss_term.cpp) ----------------------------

using LossTermList = std::vector<std::unique_ptr<LossTerm>>;

// Per layer index up to the network's deepest: whether a term reads it.
std::vector<bool> layers_read(const LossContext& context, const LossTermList& terms);
// Gives each term its slots, in list order after the context's own, and
// (re)allocates context.slots when their number changed (at set-up).
void allocate_term_slots(LossContext& context, const LossTermList& terms);
// The one evaluation path, tiled or not: pass 1 (tiled only), pass 2 with the
// backward pass, then the terms on the image. x, grad (3, H, W); grad is
// overwritten. Queues the terms' values into their slots; reads nothing.
void queue_loss_terms(LossContext& context, const LossTermList& terms, const std::vector<bool>& has_loss,
                      const float* x, float* grad);

}  // namespace nst
