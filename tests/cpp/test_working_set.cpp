// The working-set bookkeeping of csrc/cpu/esvm_working_set.h. violators against a full sort:
// the `budget` worst violators outside the working set (largest f first, ties to the lower
// row), whether or not the sampled floor is used, holds, or misjudges and is dropped; for
// pools of odd sizes, with ties, with rows already in the working set and with no violator
// at all. prune_working_set: the rows it drops are exactly the inactive ones, and the kept
// Gram block is the old one restricted to the kept slots, whatever the pattern of drops.
// nearest: the rows nearest a query in Euclidean distance, against distances computed
// directly, with keys of unequal norms (where the largest inner products are other rows).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/esvm_working_set.h"

using namespace simattr;
using namespace simattr::esvm_detail;

namespace {

std::vector<int64_t> reference(const std::vector<float>& f, const Svm& s, double margin, int64_t budget) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < int64_t(f.size()); ++i)
        if (outside_gradient(f[size_t(i)]) < margin && !s.in_ws[size_t(i)]) rows.push_back(i);
    std::sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) {
        return f[size_t(a)] > f[size_t(b)] || (f[size_t(a)] == f[size_t(b)] && a < b);
    });
    if (int64_t(rows.size()) > budget) rows.resize(size_t(budget));
    return rows;
}

}  // namespace

int main() {
    std::mt19937 gen(11);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> level(-4, 2);
    int checked = 0;
    for (int64_t n : {1, 3, 97, 1025, 6000}) {
        for (int shape = 0; shape < 5; ++shape) {
            std::vector<float> f(static_cast<size_t>(n));
            for (auto& v : f)
                v = shape == 1 ? 0.5f * float(level(gen)) : normal(gen) - (shape == 3 ? 5.f : 0.f);
            if (shape == 2 && n >= 1025) {           // every key violates, and the positions the floor
                for (auto& v : f) v = std::fabs(v);  // samples hold the largest values
                for (int64_t c = 0; c < 128; ++c) f[size_t(c * n / 128)] = 100.f + float(c);
            }
            if (shape == 4) std::sort(f.begin(), f.end());  // the worst last
            for (int64_t budget : {int64_t(1), int64_t(32), int64_t(128)}) {
                Svm s;
                s.in_ws.assign(size_t(n), 0);
                for (int64_t i = 0; i < n; i += 7) s.in_ws[size_t(i)] = 1;  // already in the working set
                const double margin = 1e-3;
                CHECK(violators(f.data(), s, n, margin, budget) == reference(f, s, margin, budget));
                ++checked;
            }
        }
    }
    // Pruning: slot t + 1 holds ws[t]; rows with alpha 0 and f far below -1 go.
    for (int64_t m : {0, 1, 5, 97}) {
        for (int pattern = 0; pattern < 4; ++pattern) {
            Svm s;
            const int64_t n = 200, l = m + 1;
            s.in_ws.assign(size_t(n), 0);
            std::vector<float> f(static_cast<size_t>(n), 0.f);
            s.alpha.assign(size_t(l), 0.0);
            s.alpha[0] = 1.0;
            std::vector<bool> keep(size_t(l), true);
            for (int64_t t = 0; t < m; ++t) {
                const int64_t row = (7 * t + 3) % n;
                s.ws.push_back(row);
                s.in_ws[size_t(row)] = 1;
                const bool drop = pattern == 1   ? t % 2 == 0
                                  : pattern == 2 ? t < m / 2
                                                 : pattern == 3 && gen() % 3 == 0;
                f[size_t(row)] = drop ? -5.f : -0.5f;  // dropped: alpha 0 and gradient 4 > keep
                if (!drop && gen() % 2) s.alpha[size_t(t + 1)] = 0.25;
                keep[size_t(t + 1)] = !drop;
            }
            s.K.resize(size_t(l * l));
            for (int64_t a = 0; a < l; ++a)
                for (int64_t b = 0; b < l; ++b) s.K[size_t(a * l + b)] = double(1000 * a + b);
            s.gram_l = s.gram_ld = l;
            const std::vector<int64_t> ws0 = s.ws;
            prune_working_set(s, f.data(), 1.0);
            std::vector<int64_t> kept;  // old slots, in order
            for (int64_t t = 0; t < l; ++t)
                if (keep[size_t(t)]) kept.push_back(t);
            for (int64_t t = 1; t < l; ++t)
                CHECK(s.in_ws[size_t(ws0[size_t(t - 1)])] == (keep[size_t(t)] ? 1 : 0));
            if (pattern == 3 && kept.size() > 2) {  // a second prune before any layout: composed
                const int64_t row = s.ws.back();
                s.alpha.back() = 0.0;
                f[size_t(row)] = -5.f;
                prune_working_set(s, f.data(), 1.0);
                kept.pop_back();
            }
            const int64_t kl = int64_t(kept.size());
            CHECK(s.gram_l == kl && int64_t(s.ws.size()) == kl - 1);
            for (int64_t a = 1; a < kl; ++a) CHECK(s.ws[size_t(a - 1)] == ws0[size_t(kept[size_t(a)] - 1)]);
            // Laid out for the kept slots alone, or with room for 3 new ones.
            const int64_t L = kl + (pattern % 2) * 3;
            layout_gram(s, L);
            CHECK(int64_t(s.K.size()) == L * L && s.gram_ld == L && s.gram_src.empty());
            for (int64_t a = 0; a < kl; ++a)
                for (int64_t b = 0; b < kl; ++b)
                    CHECK(s.K[size_t(a * L + b)] == double(1000 * kept[size_t(a)] + kept[size_t(b)]));
            // Growth alone, without renamed slots: 2 more slots.
            s.gram_l = L;
            for (int64_t a = kl; a < L; ++a)
                for (int64_t b = 0; b < L; ++b)
                    s.K[size_t(a * L + b)] = s.K[size_t(b * L + a)] = -double(a + b);
            layout_gram(s, L + 2);
            CHECK(int64_t(s.K.size()) == (L + 2) * (L + 2) && s.gram_ld == L + 2);
            for (int64_t a = 0; a < L; ++a)
                for (int64_t b = 0; b < L; ++b) {
                    const double want =
                        a < kl && b < kl ? double(1000 * kept[size_t(a)] + kept[size_t(b)]) : -double(a + b);
                    CHECK(s.K[size_t(a * (L + 2) + b)] == want);
                }
            ++checked;
        }
    }
    // nearest, on odd sizes: keys of norms 1 to 8 in random directions, ties made by copies.
    for (int64_t n : {1, 3, 97, 1025}) {
        constexpr int64_t d = 5;
        std::normal_distribution<float> normal;
        std::vector<float> x(size_t(n * d)), q(d);
        for (float& v : q) v = normal(gen);
        for (int64_t i = 0; i < n; ++i) {
            const float scale = 1.f + float(gen() % 8);
            for (int64_t c = 0; c < d; ++c) x[size_t(i * d + c)] = scale * normal(gen);
            if (i % 5 == 4)  // a copy of the row before: a tie, which the lower row wins
                std::copy(x.begin() + (i - 1) * d, x.begin() + i * d, x.begin() + i * d);
        }
        std::vector<float> f(static_cast<size_t>(n));
        std::vector<double> sq(static_cast<size_t>(n)), dist(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            double ip = 0, nn = 0, dd = 0;
            for (int64_t c = 0; c < d; ++c) {
                const double xv = x[size_t(i * d + c)], qv = q[size_t(c)];
                ip += qv * xv;
                nn += xv * xv;
                dd += (qv - xv) * (qv - xv);
            }
            f[size_t(i)] = float(ip);
            sq[size_t(i)] = nn;
            dist[size_t(i)] = dd;
        }
        for (int64_t count : {int64_t(1), std::min<int64_t>(n, 32), n}) {
            const std::vector<int64_t> got = nearest(f.data(), sq.data(), n, count);
            CHECK(int64_t(got.size()) == count);
            std::vector<int64_t> rest(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) rest[size_t(i)] = i;
            for (size_t a = 0; a < got.size(); ++a) {
                // Each pick is no farther than any row not yet picked (to the rounding of f),
                // and a copy never precedes its original.
                for (int64_t i : rest)
                    CHECK(dist[size_t(got[a])] <= dist[size_t(i)] + 1e-4 * (1 + dist[size_t(i)]));
                if (a > 0 && dist[size_t(got[a])] == dist[size_t(got[a - 1])]) CHECK(got[a] > got[a - 1]);
                rest.erase(std::find(rest.begin(), rest.end(), got[a]));
            }
            ++checked;
        }
    }
    std::printf("test_working_set: ok (%d cases)\n", checked);
    return 0;
}
