// The flow thread of a video run (engine/video/flow_prefetch.h).
#include "engine/video/flow_prefetch.h"

#include <map>

#include "engine/base/error.h"
#include "engine/video/consistency.h"
#include "engine/video/video_io.h"

namespace nst {

FlowPrefetch::FlowPrefetch(Schedule schedule) : schedule_(std::move(schedule)) {
    thread_ = std::thread([this] { produce(); });
}

FlowPrefetch::~FlowPrefetch() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

std::optional<FramePrep> FlowPrefetch::pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty() || finished_; });
    if (ready_.empty()) {
        if (error_) std::rethrow_exception(error_);
        return std::nullopt;
    }
    FramePrep prep = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return prep;
}

void FlowPrefetch::push(FramePrep prep) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ready_.size() < kAhead || stop_; });
    if (stop_) return;
    ready_.push_back(std::move(prep));
    changed_.notify_all();
}

Flow FlowPrefetch::flow_between(long long on, long long into, const Image& on_frame, const Image& into_frame,
                                std::vector<bool>& unknown) const {
    const FlowOption& option = schedule_.flow;
    if (option.method != FlowOption::files)
        return compute_flow(option.method == FlowOption::dis ? FlowMethod::dis : FlowMethod::deepflow, on_frame,
                            into_frame);
    Flow flow = read_flo(option.file(on, into), &unknown);
    if (flow.width != schedule_.width || flow.height != schedule_.height) {
        // Unknown values go with the nearest pixel of the resized flow.
        std::vector<bool> resized(std::size_t(schedule_.width) * schedule_.height, false);
        for (int y = 0; y < schedule_.height; ++y)
            for (int x = 0; x < schedule_.width; ++x) {
                const int sy = std::min(flow.height - 1, int(double(y) * flow.height / schedule_.height));
                const int sx = std::min(flow.width - 1, int(double(x) * flow.width / schedule_.width));
                resized[std::size_t(y) * schedule_.width + x] = unknown[std::size_t(sy) * flow.width + sx];
            }
        unknown = std::move(resized);
        flow = resize_flow(flow, schedule_.width, schedule_.height);
    }
    return flow;
}

PairFlow FlowPrefetch::pair(long long index, long long other, const Image& frame, const Image& other_frame) const {
    std::vector<bool> unknown_to, unknown_back;
    PairFlow pair;
    pair.other = other;
    pair.flow = flow_between(index, other, frame, other_frame, unknown_to);
    const Flow back = flow_between(other, index, other_frame, frame, unknown_back);
    pair.weights = consistency_weights(pair.flow, back);
    if (!unknown_to.empty()) zero_unknown(pair.weights, unknown_to);
    return pair;
}

void FlowPrefetch::produce() {
    try {
        const Schedule& s = schedule_;
        const bool keep_all = s.passes > 1;
        std::map<long long, Image> contents;  // recent frames (every one with passes > 1)
        const long long look_back = s.temporal_frames.empty() ? 1 : std::max(1, s.temporal_frames.back());
        auto source = FrameSource::open(s.content);
        Image decoded;
        long long index = 0;
        // The first pass: the frames as they are decoded, one ahead (to know the last).
        const auto read = [&](Image& out) {
            while (true) {
                if (s.count >= 0 && index >= s.first + s.count) return false;
                if (!source->next(decoded)) return false;
                const long long at = index++;
                if (at < s.first) continue;
                out = decoded.width == s.width && decoded.height == s.height
                          ? decoded
                          : resize_image(decoded, s.width, s.height);
                return true;
            }
        };
        Image current, following;
        bool have = read(current);
        if (!have) throw InputError(s.content + ": no frame in the range to stylise");
        long long i = s.first;
        while (have) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (stop_) return;
            }
            // A frame that cannot be read (a damaged stream, a gap) ends the range
            // after this one, which is prepared first: the frames before it are kept.
            std::exception_ptr unreadable;
            bool more = false;
            try {
                more = read(following);
            } catch (...) {
                unreadable = std::current_exception();
            }
            FramePrep prep;
            prep.pass = 1;
            prep.index = i;
            prep.neighbour = i > s.first ? i - 1 : -1;
            prep.content = current;
            contents[i] = current;
            std::vector<std::vector<float>> shorts;
            for (const int j : s.temporal_frames) {
                if (i - j < s.first) break;
                prep.earlier.push_back(pair(i, i - j, current, contents.at(i - j)));
                shorts.push_back(prep.earlier.back().weights);
            }
            const std::vector<std::vector<float>> longs = long_term_weights(shorts);
            for (std::size_t k = 0; k < longs.size(); ++k) prep.earlier[k].weights = longs[k];
            if (prep.neighbour >= 0) {
                PairFlow neighbour = !prep.earlier.empty() && prep.earlier.front().other == prep.neighbour
                                         ? prep.earlier.front()  // j = 1: c_long = c
                                         : pair(i, i - 1, current, contents.at(i - 1));
                prep.neighbour_pair = std::move(neighbour);
            }
            prep.last_of_pass = !more;
            if (!more) prep.count = i - s.first + 1;
            if (!keep_all)
                while (!contents.empty() && contents.begin()->first < i + 1 - look_back) contents.erase(contents.begin());
            push(std::move(prep));
            if (unreadable) std::rethrow_exception(unreadable);
            current = std::move(following);
            have = more;
            ++i;
        }
        const long long count = i - s.first;
        // Later passes: alternately backward and forward over the kept frames,
        // each compared with the frame done just before it.
        for (int pass = 2; pass <= s.passes; ++pass) {
            const bool backward = pass % 2 == 0;
            for (long long k = 0; k < count; ++k) {
                {
                    std::lock_guard<std::mutex> lock(mutex_);
                    if (stop_) return;
                }
                const long long at = backward ? s.first + count - 1 - k : s.first + k;
                FramePrep prep;
                prep.pass = pass;
                prep.index = at;
                prep.count = count;
                prep.content = contents.at(at);
                if (k > 0) {
                    prep.neighbour = backward ? at + 1 : at - 1;
                    prep.neighbour_pair = pair(at, prep.neighbour, prep.content, contents.at(prep.neighbour));
                    prep.earlier.push_back(prep.neighbour_pair);
                }
                prep.last_of_pass = k + 1 == count;
                push(std::move(prep));
            }
        }
    } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
    changed_.notify_all();
}

}  // namespace nst
