// Where the exemplar SVMs' working sets start (csrc/cpu/esvm_start.h). LdaStart: each query's
// direction (S + lambda tr(S) / d I)^-1 (q - mu) against one solved directly by Gaussian
// elimination in double, on odd sizes, and no fit where the pool has no spread. top_rows:
// the largest scores first, ties to the lower row, count clamped. lda_start_pays: the pilot's
// verdict follows the support vectors its callback reports.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/esvm_start.h"
#include "cpu/esvm_working_set.h"  // nearest
#include "cpu/scores.h"

using namespace simattr;
using namespace simattr::esvm_detail;

namespace {

// x = A^-1 b for A [d, d] row-major (full), by Gaussian elimination with partial pivoting.
std::vector<double> solve_direct(std::vector<double> A, std::vector<double> b, int64_t d) {
    for (int64_t c = 0; c < d; ++c) {
        int64_t p = c;
        for (int64_t r = c + 1; r < d; ++r)
            if (std::fabs(A[size_t(r * d + c)]) > std::fabs(A[size_t(p * d + c)])) p = r;
        for (int64_t k = 0; k < d; ++k) std::swap(A[size_t(c * d + k)], A[size_t(p * d + k)]);
        std::swap(b[size_t(c)], b[size_t(p)]);
        for (int64_t r = c + 1; r < d; ++r) {
            const double m = A[size_t(r * d + c)] / A[size_t(c * d + c)];
            for (int64_t k = c; k < d; ++k) A[size_t(r * d + k)] -= m * A[size_t(c * d + k)];
            b[size_t(r)] -= m * b[size_t(c)];
        }
    }
    for (int64_t c = d - 1; c >= 0; --c) {
        for (int64_t k = c + 1; k < d; ++k) b[size_t(c)] -= A[size_t(c * d + k)] * b[size_t(k)];
        b[size_t(c)] /= A[size_t(c * d + c)];
    }
    return b;
}

// The direction of query q for keys [n, d] (stride ldk), computed as LdaStart documents it.
std::vector<double> direction_ref(const std::vector<float>& keys, int64_t ldk, int64_t n, int64_t d,
                                  const float* q) {
    std::vector<double> mu(static_cast<size_t>(d), 0.0), S(static_cast<size_t>(d * d), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) mu[size_t(c)] += keys[size_t(i * ldk + c)] / double(n);
    const int64_t s = std::min(n, LdaStart::kSampleRows);
    for (int64_t r = 0; r < s; ++r)
        for (int64_t a = 0; a < d; ++a)
            for (int64_t b = 0; b < d; ++b)
                S[size_t(a * d + b)] += (keys[size_t((r * n / s) * ldk + a)] - mu[size_t(a)]) *
                                        (keys[size_t((r * n / s) * ldk + b)] - mu[size_t(b)]) / double(s);
    double trace = 0.0;
    for (int64_t a = 0; a < d; ++a) trace += S[size_t(a * d + a)];
    for (int64_t a = 0; a < d; ++a) S[size_t(a * d + a)] += LdaStart::kRidge * trace / double(d);
    std::vector<double> b(static_cast<size_t>(d));
    for (int64_t c = 0; c < d; ++c) b[size_t(c)] = q[c] - mu[size_t(c)];
    return solve_direct(S, b, d);
}

}  // namespace

int main() {
    std::mt19937_64 gen(11);
    std::normal_distribution<float> normal;
    int checked = 0;
    const Blas no_blas{};
    // Directions, on odd sizes (1,025 rows: the covariance from a strided sample of 256).
    for (int64_t n : {3, 97, 1025})
        for (int64_t d : {1, 5, 33}) {
            const int64_t ldk = d + 3;  // a row stride wider than d
            std::vector<float> keys(size_t(n * ldk), 99.f);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t c = 0; c < d; ++c)  // anisotropic: feature c has scale 1 + c
                    keys[size_t(i * ldk + c)] = (1.f + float(c)) * normal(gen) + 0.5f;
            const int64_t m = 3, ldq = d + 1;
            std::vector<float> q(size_t(m * ldq));
            for (float& v : q) v = 2.f * normal(gen);
            LdaStart lda;
            CHECK(lda.fit(keys.data(), ldk, n, d, no_blas));
            CHECK(lda.dim() == d);
            std::vector<float> W(size_t(m * d), NAN);
            lda.directions(q.data(), ldq, m, W.data(), 2);
            for (int64_t j = 0; j < m; ++j) {
                const std::vector<double> want = direction_ref(keys, ldk, n, d, q.data() + j * ldq);
                double scale = 0.0;
                for (double v : want) scale = std::max(scale, std::fabs(v));
                for (int64_t c = 0; c < d; ++c)
                    CHECK(std::fabs(W[size_t(j * d + c)] - want[size_t(c)]) <= 1e-5 * scale + 1e-30);
            }
            ++checked;
        }
    // No spread, no fit: one key, or every key the same.
    {
        std::vector<float> one = {1.f, 2.f}, same(40, 3.f);
        LdaStart lda;
        CHECK(!lda.fit(one.data(), 2, 1, 2, no_blas) && lda.dim() == 0);
        CHECK(!lda.fit(same.data(), 4, 10, 4, no_blas) && lda.dim() == 0);
        CHECK(!lda.fit(same.data(), 4, 0, 4, no_blas));
        ++checked;
    }
    // top_rows: largest first, ties to the lower row; count clamped to [0, n].
    for (int64_t n : {1, 3, 97, 1025}) {
        std::vector<float> f(static_cast<size_t>(n));
        for (float& v : f) v = float(gen() % 7);  // many ties
        for (int64_t count : {int64_t(0), int64_t(1), n / 2, n, n + 5}) {
            const std::vector<int64_t> got = top_rows(f.data(), n, count);
            CHECK(int64_t(got.size()) == std::clamp<int64_t>(count, 0, n));
            std::vector<int64_t> want(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) want[size_t(i)] = i;
            std::stable_sort(want.begin(), want.end(),
                             [&](int64_t a, int64_t b) { return f[size_t(a)] > f[size_t(b)]; });
            CHECK(std::equal(got.begin(), got.end(), want.begin()));
        }
        ++checked;
    }
    // The pilot's verdict. Keys of unequal norms in 8 dimensions; the callback plays the SVMs.
    {
        const int64_t n = 600, d = 8, rows = 40;
        std::vector<float> keys(size_t(n * d));
        for (int64_t i = 0; i < n; ++i)
            for (int64_t c = 0; c < d; ++c) keys[size_t(i * d + c)] = (1.f + float(i % 5)) * normal(gen);
        std::vector<double> sq(static_cast<size_t>(n), 0.0);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t c = 0; c < d; ++c)
                sq[size_t(i)] += double(keys[size_t(i * d + c)]) * keys[size_t(i * d + c)];
        std::vector<float> panels(size_t((n + kNR - 1) / kNR * kNR * d));
        pack_panels(keys.data(), d, n, d, panels.data(), 1);
        const Pool pool{keys.data(), d, n, d, sq.data(), panels.data()};
        // The nearest `rows` rows of each pilot, as lda_start_pays finds them.
        const auto nearest_of = [&](const float* q) {
            std::vector<float> g(static_cast<size_t>(n));
            scores_packed(q, d, 1, panels.data(), n, d, g.data(), n, 1);
            return nearest(g.data(), sq.data(), n, rows);
        };
        // ... and the `rows` its LDA direction ranks highest.
        LdaStart fitted;
        CHECK(fitted.fit(keys.data(), d, n, d, no_blas));
        const auto lda_of = [&](const float* q) {
            std::vector<float> w(static_cast<size_t>(d)), g(static_cast<size_t>(n));
            fitted.directions(q, d, 1, w.data(), 1);
            scores_packed(w.data(), d, 1, panels.data(), n, d, g.data(), n, 1);
            return top_rows(g.data(), n, rows);
        };
        for (int mode = 0; mode < 6; ++mode) {
            int calls = 0;
            const RunPilots run = [&](const float* q, const int64_t* ids, float* f) {
                ++calls;
                for (int64_t j = 0; j < kPilots; ++j) {
                    // The pilots are the pool's own rows, spread over it.
                    CHECK(ids[j] == (2 * j + 1) * n / (2 * kPilots));
                    CHECK(std::equal(q + j * d, q + j * d + d, keys.begin() + ids[j] * d));
                    float* fj = f + j * n;
                    // f = -1 is on the margin: alpha 0, not a support vector. Mode 0: all are.
                    std::fill(fj, fj + n, mode == 0 ? 0.f : -1.f);
                    const std::vector<int64_t> near = nearest_of(q + j * d), lda = lda_of(q + j * d);
                    // The nearest rows (mode 3: half of them; mode 4: a quarter)
                    for (size_t a = 0; a < near.size(); ++a)
                        if (mode == 2 || mode == 5 || (mode == 3 && a % 2 == 0) || (mode == 4 && a % 4 == 0))
                            fj[near[a]] = -0.5f;
                    if (mode == 4 || mode == 5) {  // the LDA start's rows
                        for (int64_t i : lda) fj[i] = -0.5f;
                        int64_t shared = 0;  // mode 4 tests something only if few rows are in both
                        for (int64_t i : lda) shared += std::count(near.begin(), near.end(), i);
                        CHECK(mode == 5 || 4 * shared < rows);
                    }
                }
            };
            LdaStart lda;
            const bool pays = lda_start_pays(pool, rows, no_blas, 2, run, lda);
            CHECK(calls == 1);
            // Every row a support vector, or those of both starts: both starts full, the LDA
            // one pays. None: no. Exactly the nearest rows: LDA's start holds fewer. Half the
            // nearest: LDA's start holds fewer still. LDA's start rows and a quarter of the
            // nearest: fewer than half of the nearest, so the pool is not dense enough.
            CHECK(pays == (mode == 0 || mode == 5));
            CHECK(lda.dim() == (pays ? d : 0));  // fitted only when it pays
        }
        ++checked;
    }
    std::printf("test_esvm_start: ok (%d cases)\n", checked);
    return 0;
}
