// The work folder of a video run (DESIGN.md, "Video"): every finished frame of
// every pass, written atomically, so that a run that stops (a signal, a full
// disk, a crash, a pre-empted machine) loses at most the frame in flight, and a
// rerun of the same request resumes after the last finished frame.
//
//   <folder>/job.json          what the frames were made from (the fingerprint)
//   <folder>/pass<P>/<i>.png   frame i (the video's number, 6 digits) after pass P
//
// A frame is kept as the optimiser left it (before the colour control's chroma),
// clamped to [0, 1] and rounded to 16 bits: the run itself continues from the
// frame as stored (rounded), so a resumed run computes what an uninterrupted one
// does, bit for bit. The rounding (1/65535) is far below what 8-bit output shows.
#pragma once

#include <map>
#include <string>

#include "engine/io/image.h"

namespace nst {

class FrameStore {
public:
    // Opens `folder` (made, with job.json, when the first frame is saved).
    // `fingerprint` lists what the frames depend on, name → value; a folder made
    // with another one is refused with UsageError naming the first entry that differs.
    FrameStore(std::string folder, const std::map<std::string, std::string>& fingerprint);

    const std::string& folder() const { return folder_; }
    bool has(int pass, long long index) const;
    Image load(int pass, long long index) const;  // InputError when unreadable
    // Writes atomically; RuntimeFailure naming the file when it cannot (a full disk).
    void save(int pass, long long index, const Image& frame);
    // Removes the frames of a pass no later pass needs.
    void drop_pass(int pass);
    std::string path(int pass, long long index) const;

    // The frame as the store keeps it: clamped to [0, 1], rounded to 16 bits.
    static Image stored(Image frame);
    // The largest size of one stored frame of width × height (uncompressed PNG).
    static long long frame_bytes(int width, int height);

private:
    void create();

    std::string folder_;
    std::map<std::string, std::string> fingerprint_;
    bool created_ = false;
};

// A 64-bit FNV-1a hash of bytes, as 16 hex digits: the fingerprint of images and
// the weights.
class Fingerprint {
public:
    void add(const void* data, std::size_t bytes);
    void add(const Image& image);
    std::string hex() const;

private:
    unsigned long long state_ = 1469598103934665603ULL;
};

}  // namespace nst
