// A top-k candidate packed into one uint64 whose ascending order is "better first": the
// high 32 bits order scores descending, the low 32 bits hold the key id (ids < 2^32). One
// integer comparison is the whole ordering (score descending, ties to the lower id, -0 equal
// to +0), the same on the CPU and the GPU.
#pragma once
#include <cstdint>
#include <cstring>

#include "common/dcd_math.h"  // SIMATTR_HD

namespace simattr {

using Key = uint64_t;

// Ascending floats -> ascending uints (-0 maps as +0, so the two tie; not for NaN).
SIMATTR_HD inline uint32_t ascending_bits(float score) {
    uint32_t u;
    const float s = score == 0.f ? 0.f : score;
    memcpy(&u, &s, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The inverse of ascending_bits (-0 comes back as +0).
SIMATTR_HD inline float from_ascending_bits(uint32_t u) {
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

SIMATTR_HD inline Key pack(float score, int64_t id) {
    return (Key(~ascending_bits(score)) << 32) | Key(uint32_t(id));
}

SIMATTR_HD inline float unpack_score(Key key) {
    return from_ascending_bits(~uint32_t(key >> 32));
}

SIMATTR_HD inline int64_t unpack_id(Key key) {
    return int64_t(key & 0xffffffffu);
}

}  // namespace simattr
