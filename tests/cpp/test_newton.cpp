// The active-set Newton step of the squared-hinge exemplar SVM (cpu/newton.h): from a cold
// start it must land on the KKT point of the dual, and started from a kept factor (a new
// round: the rows permuted, some pruned, new violators added) on the new problem's KKT point.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/dcd_cpu.h"
#include "cpu/newton.h"

using namespace simattr;

namespace {

// Augmented Gram matrix of rows X[idx[t]] (slot 0 is idx[0], the positive).
std::vector<double> gram(const std::vector<double>& X, int64_t d, const std::vector<int64_t>& idx, double B) {
    const int64_t l = int64_t(idx.size());
    std::vector<double> K(size_t(l * l));
    for (int64_t s = 0; s < l; ++s)
        for (int64_t t = 0; t < l; ++t) {
            double v = B * B;
            for (int64_t c = 0; c < d; ++c) v += X[idx[s] * d + c] * X[idx[t] * d + c];
            K[s * l + t] = v;
        }
    return K;
}

// KKT of the dual: G = 0 where alpha > 0, G >= 0 where alpha = 0 (no upper bound).
bool kkt(const std::vector<double>& K, int64_t l, const DcdConstants& dc, const std::vector<double>& alpha) {
    std::vector<double> g(static_cast<size_t>(l));
    gram_margins(K.data(), l, alpha.data(), g.data());
    for (int64_t t = 0; t < l; ++t) {
        const double G = dc.gradient(t, g[t], alpha[t]);
        if (alpha[t] < 0.0 || (alpha[t] > 0.0 ? std::fabs(G) > 1e-8 : G < -1e-8)) return false;
    }
    return true;
}

}  // namespace

int main() {
    std::mt19937_64 rng(3);
    std::normal_distribution<double> normal;
    const int64_t d = 12, total = 200;
    const double B = 1.0;
    std::vector<double> X(size_t(total * d));
    for (double& x : X) x = normal(rng);
    for (int64_t c = 0; c < d; ++c) X[c] += 2.0;  // the query, off the cloud of negatives

    // Round 1: the query and the first 80 rows; cold start from alpha = 0.
    std::vector<int64_t> idx1(81);
    for (int64_t t = 0; t < 81; ++t) idx1[t] = t;
    const int64_t l1 = 81;
    const DcdConstants dc = dcd_constants(0.1, total - 1, true);
    std::vector<double> K1 = gram(X, d, idx1, B), alpha1(size_t(l1), 0.0), g1(size_t(l1), 0.0);
    NewtonWarm warm;
    CHECK(newton_active_set(Blas{}, K1.data(), l1, dc, alpha1.data(), g1, &warm, idx1.data()));
    CHECK(kkt(K1, l1, dc, alpha1));
    int64_t nsv = 0;
    for (double a : alpha1) nsv += a > 0.0;
    CHECK(nsv > 4 && int64_t(warm.ids.size()) == nsv);  // the kept factor names the SVs

    // Round 2: the rows with alpha 0 pruned, the survivors in reverse order, 8 new rows
    // appended (the query stays slot 0); alpha carried over, g recomputed.
    std::vector<int64_t> idx2{0};
    for (int64_t t = l1 - 1; t >= 1; --t)
        if (alpha1[t] > 0.0) idx2.push_back(t);
    for (int64_t t = 81; t < 89; ++t) idx2.push_back(t);
    const int64_t l2 = int64_t(idx2.size());
    std::vector<double> alpha2(size_t(l2), 0.0), g2(static_cast<size_t>(l2));
    for (int64_t s = 0; s < l2; ++s)
        for (int64_t t = 0; t < l1; ++t)
            if (idx1[t] == idx2[s]) alpha2[s] = alpha1[t];
    std::vector<double> K2 = gram(X, d, idx2, B);
    gram_margins(K2.data(), l2, alpha2.data(), g2.data());
    CHECK(!kkt(K2, l2, dc, alpha2));  // the new rows violate: round 2 has work to do
    const int64_t refactors = warm.refactors;
    CHECK(newton_active_set(Blas{}, K2.data(), l2, dc, alpha2.data(), g2, &warm, idx2.data()));
    CHECK(warm.refactors == refactors);  // the kept factor was updated, not rebuilt
    CHECK(kkt(K2, l2, dc, alpha2));

    // The same problem from a cold start reaches the same optimum.
    std::vector<double> alpha3(size_t(l2), 0.0), g3(size_t(l2), 0.0);
    CHECK(newton_active_set(Blas{}, K2.data(), l2, dc, alpha3.data(), g3));
    for (int64_t t = 0; t < l2; ++t) CHECK(std::fabs(alpha2[t] - alpha3[t]) <= 1e-9 * (1.0 + alpha3[t]));
    std::puts("test_newton: ok");
    return 0;
}
