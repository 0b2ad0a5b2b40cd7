// GrowingCholesky against a direct solve: after every append and delete, L L^T x = b must
// solve the current matrix (checked by its residual), for random SPD matrices of odd sizes,
// deletions at the first, a middle and the last position, one at a time and several at once,
// and growth past the capacity; blocks appended at once (append_block) the same way.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/cholesky.h"

using namespace simattr;

namespace {

// The current matrix: rows of the full SPD matrix S [N, N] picked by idx.
double residual(const GrowingCholesky& c, const std::vector<double>& S, int64_t N,
                const std::vector<int64_t>& idx) {
    const int64_t n = int64_t(idx.size());
    std::vector<double> b(n), x(n);
    for (int64_t a = 0; a < n; ++a) b[a] = x[a] = 1.0 + 0.1 * double(a % 7);
    c.solve(x.data());
    double worst = 0.0;
    for (int64_t a = 0; a < n; ++a) {
        double r = -b[a];
        for (int64_t k = 0; k < n; ++k) r += S[idx[a] * N + idx[k]] * x[k];
        worst = std::max(worst, std::fabs(r));
    }
    return worst;
}

// S = G G^T + N I [N, N] for G of standard normal entries: SPD with a moderate condition
// number.
std::vector<double> random_spd(int64_t N, std::mt19937_64& rng, std::normal_distribution<double>& normal) {
    std::vector<double> G(size_t(N * N)), S(size_t(N * N), 0.0);
    for (double& g : G) g = normal(rng);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
            for (int64_t k = 0; k < N; ++k) S[i * N + j] += G[i * N + k] * G[j * N + k];
            if (i == j) S[i * N + j] += double(N);
        }
    return S;
}

}  // namespace

int main() {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal;
    const Blas no_lapack;  // the portable fallback factorisation
    for (int64_t N : {1, 3, 97}) {
        const std::vector<double> S = random_spd(N, rng, normal);
        // Factor the first half directly, append the rest one by one (past the capacity).
        const int64_t h = (N + 1) / 2;
        std::vector<int64_t> idx;
        for (int64_t i = 0; i < h; ++i) idx.push_back(i);
        std::vector<double> M(size_t(h * h));
        for (int64_t a = 0; a < h; ++a)
            for (int64_t b = 0; b < h; ++b) M[a * h + b] = S[a * N + b];
        GrowingCholesky c;
        CHECK(c.factor(no_lapack, M.data(), h));
        CHECK(residual(c, S, N, idx) < 1e-9);
        for (int64_t t = h; t < N; ++t) {
            std::vector<double> m(idx.size());
            for (size_t a = 0; a < idx.size(); ++a) m[a] = S[t * N + idx[a]];
            CHECK(c.append(m.data(), S[t * N + t]));
            idx.push_back(t);
            CHECK(c.size() == int64_t(idx.size()));
            CHECK(residual(c, S, N, idx) < 1e-9);
        }
        // Delete the last, the first and a middle row; then append one back.
        for (int64_t pos : {N - 1, int64_t(0), (N - 2) / 2}) {
            if (idx.empty() || pos >= int64_t(idx.size())) continue;
            c.remove(pos);
            idx.erase(idx.begin() + pos);
            CHECK(c.size() == int64_t(idx.size()));
            if (!idx.empty()) CHECK(residual(c, S, N, idx) < 1e-9);
        }
        // Several rows at once (the first, two adjacent ones, the last): as many as Newton
        // drops in one step. Then append one back.
        std::vector<int64_t> js;
        for (int64_t pos : {int64_t(0), int64_t(2), int64_t(3), int64_t(idx.size()) - 1})
            if (pos < int64_t(idx.size()) && (js.empty() || pos > js.back())) js.push_back(pos);
        if (int64_t(js.size()) < int64_t(idx.size())) {
            c.remove(js.data(), int64_t(js.size()));
            for (auto it = js.rbegin(); it != js.rend(); ++it) idx.erase(idx.begin() + *it);
            CHECK(c.size() == int64_t(idx.size()));
            CHECK(residual(c, S, N, idx) < 1e-9);
            const int64_t back = N - 1;  // removed above, so not in idx
            std::vector<double> m(idx.size());
            for (size_t a = 0; a < idx.size(); ++a) m[a] = S[back * N + idx[a]];
            CHECK(c.append(m.data(), S[back * N + back]));
            idx.push_back(back);
            CHECK(residual(c, S, N, idx) < 1e-9);
        }
    }
    // Blocks: factor the first rows, then append blocks of 1, 3 and the rest (past the
    // capacity), each against what is there; delete some and append a block again. Once with
    // new[] storage, once from a pool whose buffers hold NaN (a factor that read storage it
    // had not written, or lost entries when it grew, would show it).
    BufferPool pool;
    std::vector<std::pair<double*, size_t>> poisoned;
    for (double size = 1; size < 1e5; size *= 1.3) {
        size_t cap = 0;
        double* p = pool.acquire(size_t(size), &cap);
        std::fill(p, p + cap, std::nan(""));
        poisoned.emplace_back(p, cap);
    }
    for (auto [p, cap] : poisoned) pool.release(p, cap);
    for (int pooled = 0; pooled < 2; ++pooled)
        for (int64_t N : {1, 3, 97, 211}) {
            const std::vector<double> S = random_spd(N, rng, normal);
            std::vector<int64_t> idx{N - 1};
            GrowingCholesky c;
            if (pooled) c.set_pool(&pool);
            CHECK(c.factor(no_lapack, &S[(N - 1) * N + N - 1], 1));
            const auto append_rows = [&](const std::vector<int64_t>& ts) {
                const int64_t n = int64_t(idx.size()), k = int64_t(ts.size());
                std::vector<double> Mon(size_t(k * n)), Mnn(size_t(k * k));
                for (int64_t a = 0; a < k; ++a) {
                    for (int64_t b = 0; b < n; ++b) Mon[size_t(a * n + b)] = S[ts[a] * N + idx[b]];
                    for (int64_t b = 0; b < k; ++b)  // the lower triangle is garbage: not read
                        Mnn[size_t(a * k + b)] = b >= a ? S[ts[a] * N + ts[b]] : std::nan("");
                }
                CHECK(c.append_block(no_lapack, Mon.data(), Mnn.data(), k));
                idx.insert(idx.end(), ts.begin(), ts.end());
                CHECK(c.size() == int64_t(idx.size()));
                CHECK(residual(c, S, N, idx) < 1e-9);
            };
            int64_t next = 0;
            for (int64_t k : {int64_t(1), int64_t(3), N}) {
                std::vector<int64_t> ts;
                for (; next < N - 1 && int64_t(ts.size()) < k; ++next) ts.push_back(next);
                append_rows(ts);  // an empty block too, once the rows run out
            }
            if (idx.size() > 4) {
                const int64_t js[] = {1, 2};
                const std::vector<int64_t> back{idx[1], idx[2]};
                c.remove(js, 2);
                idx.erase(idx.begin() + 1, idx.begin() + 3);
                append_rows(back);
            }
        }
    // A singular block is refused and leaves the factor as it was: rows 1 and 2 of the new
    // block copy row 0 of the factor.
    {
        GrowingCholesky c;
        const double one = 1.0, Mon[] = {0.5, 1.0, 1.0},
                     Mnn[] = {2.0, 0.5, 0.5, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0};
        CHECK(c.factor(Blas{}, &one, 1));
        CHECK(!c.append_block(Blas{}, Mon, Mnn, 3));
        CHECK(c.size() == 1);
        double x = 2.0;
        c.solve(&x);
        CHECK(x == 2.0);
    }
    // A singular extension is refused and leaves the factor as it was: appending a copy of
    // an existing row of M = [[1, 1], [1, 1]].
    GrowingCholesky c;
    const double one = 1.0;
    CHECK(c.factor(Blas{}, &one, 1));
    CHECK(!c.append(&one, 1.0));
    CHECK(c.size() == 1);
    // Not positive definite from the start.
    const double neg = -1.0;
    CHECK(!c.factor(Blas{}, &neg, 1));
    std::puts("test_cholesky: ok");
    return 0;
}
