// One dual coordinate descent update (liblinear's solve_l2r_l1l2_svc), by hand: the
// balanced constants, the projected gradient and shrinking rule, and the clipped step.
#include <cmath>
#include <cstdio>

#include "check.h"
#include "common/dcd_math.h"

using namespace simattr;

static bool close(double a, double b) {
    return std::fabs(a - b) <= 1e-12 * (1.0 + std::fabs(b));
}

int main() {
    // C = 0.1, one positive and n = 4 negatives: C_pos = 0.25, C_neg = 0.0625.
    const DcdConstants sq = dcd_constants(0.1, 4, true);
    CHECK(close(sq.diag_pos, 0.5 / 0.25) && close(sq.diag_neg, 0.5 / 0.0625));
    CHECK(sq.upper(0) > 1e299 && sq.upper(1) > 1e299);
    const DcdConstants hinge = dcd_constants(0.1, 4, false);
    CHECK(hinge.diag(0) == 0.0 && close(hinge.upper(0), 0.25) && close(hinge.upper(1), 0.0625));

    // The positive (slot 0) at alpha = 0 with margin 0.2: G = 0.2 - 1 = -0.8 < 0, an update.
    double pg = 0.0;
    const double G = sq.gradient(0, 0.2, 0.0);
    CHECK(close(G, -0.8));
    CHECK(dcd_visit(G, 0.0, sq.upper(0), 1e300, -1e300, &pg) == DcdAction::Update && close(pg, -0.8));
    // Step with Q_ii = |x|^2 + B^2 + diag = 3 + 1 + 2: alpha = 0.8 / 6.
    CHECK(close(dcd_step(0.0, G, 6.0, sq.upper(0)), 0.8 / 6.0));
    // Hinge: the step is clipped at the upper bound.
    CHECK(close(dcd_step(0.0, -10.0, 1.0, hinge.upper(0)), 0.25));
    // A negative (slot 1) at alpha = 0 with margin -3: G = 3 - 1 = 2 > previous max 1, shrunk.
    CHECK(dcd_visit(sq.gradient(1, -3.0, 0.0), 0.0, sq.upper(1), 1.0, -1.0, &pg) == DcdAction::Shrink);
    // Sweep-end thresholds: the wrong sign becomes +-inf.
    double mx = 0.0, mn = 0.0;
    dcd_next_thresholds(-0.5, 0.5, &mx, &mn);
    CHECK(mx > 1e299 && mn < -1e299);
    dcd_next_thresholds(0.5, -0.5, &mx, &mn);
    CHECK(mx == 0.5 && mn == -0.5);
    std::puts("test_dcd_update: ok");
    return 0;
}
