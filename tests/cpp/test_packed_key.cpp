// Packed keys order "better first": score descending, ties to the lower id, -0 equal to +0;
// the score and id survive the round trip.
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "check.h"
#include "common/packed_key.h"

using simattr::pack;
using simattr::unpack_id;
using simattr::unpack_score;

int main() {
    const std::vector<float> scores = {
        -std::numeric_limits<float>::infinity(), -1e30f, -1.f, -1e-30f, 0.f, 1e-30f, 1.f, 1e30f,
        std::numeric_limits<float>::infinity()};
    for (size_t i = 0; i < scores.size(); ++i) {
        CHECK(unpack_score(pack(scores[i], 7)) == scores[i]);
        CHECK(unpack_id(pack(scores[i], 7)) == 7);
        // A higher score packs lower (sorts first), whatever the ids.
        for (size_t j = i + 1; j < scores.size(); ++j)
            CHECK(pack(scores[j], 4000000000LL) < pack(scores[i], 0));
    }
    // Equal scores: the lower id first; -0 ties with +0.
    CHECK(pack(0.5f, 3) < pack(0.5f, 4));
    CHECK(pack(-0.f, 3) < pack(0.f, 4));
    CHECK(pack(0.f, 3) < pack(-0.f, 4));
    // The largest id that fits.
    CHECK(unpack_id(pack(2.f, 0xffffffffLL)) == 0xffffffffLL);
    std::puts("test_packed_key: ok");
    return 0;
}
