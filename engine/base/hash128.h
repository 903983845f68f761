// A 128-bit content hash for keys and fingerprints (the style-target cache, a
// batch's job records): two FNV-1a hashes with different offset bases, so that
// thousands of keys never meet by chance. Not cryptographic: it guards against
// accidents, not adversaries.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace nst {

class Hash128 {
public:
    void bytes(const void* data, std::size_t count) {
        const auto* p = static_cast<const unsigned char*>(data);
        for (std::size_t k = 0; k < count; ++k) {
            low_ = (low_ ^ p[k]) * kPrime;
            high_ = (high_ ^ p[k]) * kPrime;
        }
    }
    template <typename T> void value(const T& v) { bytes(&v, sizeof v); }
    template <typename T> void values(const std::vector<T>& v) {
        value(v.size());
        bytes(v.data(), v.size() * sizeof(T));
    }
    // Its length first, so that ("ab", "c") and ("a", "bc") differ.
    void text(const std::string& s) {
        value(s.size());
        bytes(s.data(), s.size());
    }
    std::string hex() const {
        char out[33];
        std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(high_),
                      static_cast<unsigned long long>(low_));
        return out;
    }

private:
    static constexpr std::uint64_t kPrime = 0x100000001b3ULL;
    std::uint64_t low_ = 0xcbf29ce484222325ULL, high_ = 0x84222325cbf29ce4ULL;
};

}  // namespace nst
