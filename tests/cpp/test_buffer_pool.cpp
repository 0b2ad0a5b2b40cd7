// BufferPool and PooledDoubles (csrc/cpu/buffer_pool.h): a released buffer serves a later
// request of at least half its size and no smaller one, the pool frees what would exceed its
// limit, and a PooledDoubles keeps its first entries when it grows and hands its buffer back
// when it is released, reassigned or destroyed.
#include <cstdio>
#include <utility>

#include "check.h"
#include "cpu/buffer_pool.h"

using namespace simattr;

int main() {
    {
        BufferPool pool(1000 * sizeof(double));
        size_t cap = 0;
        double* a = pool.acquire(600, &cap);
        CHECK(a != nullptr && cap == 600);
        pool.release(a, cap);
        size_t c2 = 0;
        double* small = pool.acquire(299, &c2);  // below half of 600: a new buffer
        CHECK(small != a && c2 == 299);
        double* b = pool.acquire(300, &c2);  // half of 600: the pooled one
        CHECK(b == a && c2 == 600);
        double* big = pool.acquire(601, &c2);  // larger than any pooled one: new
        CHECK(big != a && c2 == 601);
        pool.release(b, 600);
        CHECK(pool.held() == 600 * sizeof(double));
        pool.release(big, 601);  // 600 + 601 doubles would exceed the limit: freed
        CHECK(pool.held() == 600 * sizeof(double));
        pool.release(small, 299);
        CHECK(pool.held() == 899 * sizeof(double));
    }
    {
        BufferPool pool;
        PooledDoubles v(&pool);
        v.resize(3);
        for (size_t i = 0; i < 3; ++i) v[i] = double(i + 1);
        const double* first = v.data();
        v.resize(2);  // shrinking keeps the buffer and the entries
        CHECK(v.size() == 2 && v.data() == first && v[1] == 2.0);
        v.resize(1000);  // growing keeps the first entries
        CHECK(v.size() == 1000 && v[0] == 1.0 && v[1] == 2.0);
        double* grown = v.data();
        size_t cap = 0;
        double* old = pool.acquire(3, &cap);  // the 3-entry buffer went back to the pool
        CHECK(old == first && cap == 3);
        pool.release(old, cap);
        PooledDoubles w(&pool);
        w = std::move(v);  // w takes the buffer; v is empty
        CHECK(w.data() == grown && w.size() == 1000 && v.size() == 0 && v.data() == nullptr);
        w.reset(10);  // fits: same buffer, size 10
        CHECK(w.data() == grown && w.size() == 10);
        w.release();
        CHECK(w.size() == 0 && w.data() == nullptr);
        CHECK(pool.acquire(1000, &cap) == grown && cap >= 1000);
        pool.release(grown, cap);
        {
            PooledDoubles x(&pool);
            x.reset(800);
            CHECK(x.data() == grown);  // 800 is at least half its capacity
        }  // destroyed: back to the pool
        CHECK(pool.acquire(900, &cap) == grown);
        pool.release(grown, cap);
    }
    {
        PooledDoubles plain;  // no pool: new[] and delete[]
        plain.resize(5);
        plain[4] = 7.0;
        plain.resize(50);
        CHECK(plain[4] == 7.0);
    }
    std::puts("test_buffer_pool: ok");
    return 0;
}
