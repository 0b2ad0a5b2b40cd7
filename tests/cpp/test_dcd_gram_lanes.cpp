// The CUDA solver's Gram form without a GPU: its coordinate descent (common/dcd_gram_lanes.h),
// run on the host by one thread playing the warp's 32 lanes, must reach liblinear's optimum
// (KKT conditions to the tolerance) and give the decision values of the CPU solver's primal
// form; its plan (cuda/esvm_gram_plan.h) picks the classes and lays out their Gram matrices.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "common/dcd_gram_lanes.h"
#include "cpu/dcd_cpu.h"
#include "cuda/esvm_gram_plan.h"

using namespace simattr;

// One problem: rows [1 + n, d] (row 0 the query), B; checks one loss.
static void check_problem(int64_t n, int64_t d, bool sq, double scale, double tol, unsigned seed) {
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t l = n + 1;
    const double B = 1.0, C = 0.1;
    std::vector<float> rows(size_t(l * d));
    for (auto& v : rows) v = float(scale) * normal(gen);
    if (n >= 3) std::copy(rows.begin() + d, rows.begin() + 2 * d, rows.begin() + 3 * d);  // a duplicated key
    std::vector<double> K(size_t(l * l));
    for (int64_t s = 0; s < l; ++s)
        for (int64_t t = 0; t < l; ++t) {
            double dot = B * B;
            for (int64_t c = 0; c < d; ++c) dot += double(rows[s * d + c]) * double(rows[t * d + c]);
            K[s * l + t] = dot;
        }
    std::vector<double> kq(K.begin() + 1, K.begin() + l), kx(size_t(n * n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) kx[i * n + j] = K[(i + 1) * l + j + 1];
    const DcdConstants dc = dcd_constants(C, n, sq);
    // The CPU solver's primal form on the same problem gives the same decision values.
    std::vector<double> a2(l, 0.0), w(size_t(d + 1), 0.0);
    SplitMix64 rng(7);
    int64_t it2 = 0;
    DcdState st{a2.data(), w.data(), &rng, &it2};
    std::vector<const float*> ptrs(static_cast<size_t>(l));
    for (int64_t t = 0; t < l; ++t) ptrs[size_t(t)] = rows.data() + t * d;
    CHECK(dcd_primal(WorkingSet{ptrs.data(), l, d, B, dc}, st, tol, 100000));
    const GramProblem P{n, K[0], kq.data(), n > 0 ? kx.data() : nullptr, dc, tol, 100000};
    std::vector<double> alpha(l), g(l);
    std::vector<int> index(l);
    GramState S{alpha.data(), index.data(), g.data()};
    int64_t iters = 0;
    CHECK(dcd_gram_lanes(HostLanes{}, P, S, 12345 + seed, &iters));
    CHECK(iters > 0 && iters < 100000);

    // The coordinate order is still a permutation of the slots.
    std::vector<int> sorted(index);
    std::sort(sorted.begin(), sorted.end());
    for (int64_t t = 0; t < l; ++t) CHECK(sorted[t] == int(t));
    // g is K (alpha * y), and the KKT conditions hold to the tolerance.
    for (int64_t s = 0; s < l; ++s) {
        double want = 0.0;
        for (int64_t t = 0; t < l; ++t) want += K[s * l + t] * alpha[t] * slot_y(t);
        CHECK(std::fabs(g[s] - want) <= 1e-9 * (1.0 + std::fabs(want)));
        const double G = dc.gradient(s, g[s], alpha[s]);
        CHECK(alpha[s] >= 0.0 && alpha[s] <= dc.upper(s));
        if (alpha[s] == 0.0)
            CHECK(G >= -tol);
        else if (alpha[s] == dc.upper(s))
            CHECK(G <= tol);
        else
            CHECK(std::fabs(G) <= tol);
    }
    for (int64_t s = 1; s < l; ++s) {
        double f = w[d] * B;
        for (int64_t c = 0; c < d; ++c) f += w[c] * double(rows[s * d + c]);
        CHECK(std::fabs(g[s] - f) <= 1e-6 * (1.0 + std::fabs(f)));
    }
}

static void check_plan() {
    using cuda::EsvmForm;
    CHECK(cuda::esvm_uses_gram(1281, 2048, EsvmForm::Auto));   // ImageNet's shape
    CHECK(!cuda::esvm_uses_gram(6000, 256, EsvmForm::Auto));   // Fashion-MNIST's
    CHECK(cuda::esvm_uses_gram(6000, 256, EsvmForm::Gram));    // forced
    CHECK(!cuda::esvm_uses_gram(8192, 9000, EsvmForm::Gram));  // beyond 8,192 slots
    CHECK(!cuda::esvm_uses_gram(10, 2048, EsvmForm::Primal));  // forced
    CHECK(cuda::esvm_uses_gram(0, 1, EsvmForm::Auto) && !cuda::esvm_uses_gram(2, 1, EsvmForm::Auto));
    // Classes of 3, 100, 5 and 2 keys with d = 8 (Gram up to 15 keys); class 3 has no queries.
    const int64_t offsets[] = {0, 3, 103, 108, 110};
    const int32_t qclass[] = {0, 0, 1, 2, 2, 2};
    const cuda::GramPlan p = cuda::plan_gram(6, qclass, offsets, 4, 8, EsvmForm::Auto);
    CHECK((p.gram == std::vector<uint8_t>{1, 0, 1, 0}));
    CHECK(p.kx_off[0] == 0 && p.kx_off[2] == 9 && p.kx_total == 9 + 25 && p.slots == 6);
    const cuda::GramPlan none = cuda::plan_gram(6, qclass, offsets, 4, 8, EsvmForm::Primal);
    CHECK(none.slots == 0 && none.kx_total == 0);
}

int main() {
    check_plan();
    for (bool sq : {true, false}) {
        check_problem(1, 3, sq, 1.0, 1e-10, 1);
        check_problem(3, 1, sq, 1.0, 1e-10, 2);
        check_problem(97, 16, sq, 1.0, 1e-10, 3);
        check_problem(97, 200, sq, 0.01, 1e-10, 4);  // tiny norms
        check_problem(60, 80, sq, 30.0, 1e-7, 5);    // large norms
    }
    // The host lanes draw the order a warp draws: one sweep's shuffle of 100 slots by the 32
    // lanes, replayed lane by lane with WarpLanes, gives the same permutation.
    std::vector<int> a(100), b(100);
    for (int t = 0; t < 100; ++t) a[t] = b[t] = t;
    SplitMix64 sh_a(9), own_a[32];
    seed_lanes(HostLanes{}, 9, own_a);
    shuffle_runs(HostLanes{}, a.data(), 100, sh_a, own_a);
    for (int lane = 0; lane < 32; ++lane) {
        SplitMix64 sh_lane(9), own[1];
        seed_lanes(WarpLanes{lane}, 9, own);
        shuffle_runs(WarpLanes{lane}, b.data(), 100, sh_lane, own);
    }
    CHECK(a == b);
    std::puts("test_dcd_gram_lanes: ok");
    return 0;
}
