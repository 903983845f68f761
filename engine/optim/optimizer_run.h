// The bookkeeping L-BFGS and Adam share (engine/optim/lbfgs.cpp, engine/optim/adam.cpp):
// counting evaluations, knowing which evaluation is at the iterate, gathering
// events for the next report, reporting, and the result of a run. Internal to
// the engine (not an installed header).
#pragma once

#include <cstdio>
#include <string>
#include <utility>

#include "engine/optim/optimizer.h"

namespace nst {

// "%.6g", for messages.
inline std::string format_number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", value);
    return text;
}

class RunRecord {
public:
    explicit RunRecord(const IterationCallback& callback) : callback_(callback) {}

    int evaluations = 0;         // objective evaluations so far, rejected ones included
    int iterate_evaluation = 1;  // the evaluation (1-based) at the current iterate

    // Events (a rejected step, ...) go with the next report.
    void add_event(const std::string& event) {
        if (!events_.empty()) events_ += "; ";
        events_ += event;
    }
    // Reports iteration `iteration` at loss `loss`; false when the callback
    // asks to stop.
    bool report(int iteration, double loss) {
        IterationReport r;
        r.iteration = iteration;
        r.evaluations = evaluations;
        r.evaluation = iterate_evaluation;
        r.loss = loss;
        r.event = std::exchange(events_, {});
        return !callback_ || callback_(r);
    }
    OptimizationResult finish(StopReason reason, int iterations_done, double loss,
                              std::string message) const {
        OptimizationResult result;
        result.reason = reason;
        result.iterations = iterations_done;
        result.evaluations = evaluations;
        result.loss = loss;
        result.message = std::move(message);
        return result;
    }

private:
    const IterationCallback& callback_;
    std::string events_;
};

}  // namespace nst
