// The frames of a video run in the order the passes take them, each with the
// optical flows and consistency weights it needs (DESIGN.md, "Video"), made on
// a CPU thread of their own while the frame before is optimised (on the GPU the
// two overlap fully; on the CPU they share the cores).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/io/image.h"
#include "engine/run/run_options.h"
#include "engine/video/flow.h"

namespace nst {

// An earlier frame (of the pass's order) the frame is compared with: the flow
// on the frame's grid pointing into it, and the weights c of the comparison.
struct PairFlow {
    long long other = -1;
    Flow flow;
    std::vector<float> weights;  // (H·W)
};

struct FramePrep {
    int pass = 1;
    long long index = 0;
    long long neighbour = -1;        // the frame done just before it in this pass (−1: none)
    Image content;                   // colour, at the frame size
    PairFlow neighbour_pair;         // with the neighbour, short-term weights c (other −1: none)
    // The temporal loss's frames: in the first pass each j of --temporal-frames
    // with the long-term weights c_long; in later passes the neighbour.
    std::vector<PairFlow> earlier;
    bool last_of_pass = false;
    long long count = -1;            // the range's frame count, once known (from its last frame on)
};

class FlowPrefetch {
public:
    struct Schedule {
        std::string content;          // the video or frame pattern
        long long first = 0, count = -1;  // the range (count −1: to the end)
        int width = 0, height = 0;    // the frame size
        int passes = 1;
        std::vector<int> temporal_frames;  // J, ascending
        FlowOption flow;
    };
    // Starts the thread. Later passes need every content frame: with passes > 1
    // the range's frames are kept in memory (at the frame size).
    explicit FlowPrefetch(Schedule schedule);
    ~FlowPrefetch();  // stops the thread
    FlowPrefetch(const FlowPrefetch&) = delete;
    FlowPrefetch& operator=(const FlowPrefetch&) = delete;

    // The next frame's preparation in schedule order, nothing after the last;
    // rethrows what the thread met (a damaged video), after the frames before it.
    std::optional<FramePrep> pop();

private:
    void produce();
    void push(FramePrep prep);
    Flow flow_between(long long on, long long into, const Image& on_frame, const Image& into_frame,
                      std::vector<bool>& unknown) const;
    PairFlow pair(long long index, long long other, const Image& frame, const Image& other_frame) const;

    const Schedule schedule_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<FramePrep> ready_;
    std::exception_ptr error_;
    bool finished_ = false, stop_ = false;
    std::thread thread_;
    static constexpr std::size_t kAhead = 2;  // frames prepared ahead of the one being optimised
};

}  // namespace nst
