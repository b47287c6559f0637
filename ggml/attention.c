//go:build cgo

// Fused causal attention, forward and backward, as ggml custom ops for the CPU backend.
//
// Built from ggml's generic ops, training attention computes the full T×T score matrix
// of every head (half of it masked), stores the probabilities, and its backward pass
// needs transposed copies of those T×T matrices, which the CPU copies one value at a
// time. Here each head is taken in 64×64 blocks: blocks above the diagonal (or outside
// a sliding window) are never computed, softmax is taken online, and the backward pass
// recomputes probabilities from the saved log-sum-exp of each row, so nothing of size
// T×T is stored except the score gradients the dq pass reads back (lower-triangle
// blocks only). Each output block belongs to exactly one unit of work, so results do
// not depend on the number of threads.

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "kernels.h"

#define BLK ECOTUNE_ATTN_BLOCK

// attn is one op's view of its operands.
struct attn {
    struct ecotune_attn_params p;
    float c1; // scale·pre: the score factor without a soft cap
    int hd, H, KV, T, B, r, nqb;
    const char * q, * k, * v;
    size_t q1, q2, q3, k1, k2, k3, v1, v2, v3;
    const int32_t * st; // each query's first visible key, T per sequence; NULL: 0
};

static void attn_init(struct attn * a, const struct ggml_tensor * dst, const struct ggml_tensor * q,
                      const struct ggml_tensor * k, const struct ggml_tensor * v) {
    memcpy(&a->p, (const char *)dst->op_params + ECOTUNE_ATTN_PARAMS_OFFSET, sizeof a->p);
    a->c1 = a->p.scale * a->p.pre;
    a->hd = (int)k->ne[0];
    a->KV = (int)k->ne[1];
    a->T = (int)k->ne[2];
    a->B = (int)k->ne[3];
    a->H = q ? (int)q->ne[1] : (int)dst->ne[1];
    a->r = a->H / a->KV;
    a->nqb = (a->T + BLK - 1) / BLK;
    a->st = a->p.starts >= 0 ? (const int32_t *)dst->src[a->p.starts]->data : NULL;
    a->k = k->data;
    a->k1 = k->nb[1]; a->k2 = k->nb[2]; a->k3 = k->nb[3];
    if (q) {
        a->q = q->data;
        a->q1 = q->nb[1]; a->q2 = q->nb[2]; a->q3 = q->nb[3];
    }
    if (v) {
        a->v = v->data;
        a->v1 = v->nb[1]; a->v2 = v->nb[2]; a->v3 = v->nb[3];
    }
}

static inline const float * at(const char * base, size_t n1, size_t n2, size_t n3, int h, int t, int b) {
    return (const float *)(base + (size_t)h * n1 + (size_t)t * n2 + (size_t)b * n3);
}

// The key blocks query block qb of sequence b sees are kb_first..qb; the query blocks
// that see key block kb are kb..qb_last. Both say: some query i and key j of the two
// blocks have starts[i] <= j <= i and i - j < window. Starts never decrease along a
// sequence, so the block's first query has the smallest.
static inline int kb_first(const struct attn * a, int b, int qb) {
    int j = a->p.window > 0 ? imax(0, qb * BLK - a->p.window + 1) : 0;
    if (a->st) j = imax(j, a->st[(size_t)b * a->T + qb * BLK]);
    return j / BLK;
}

static inline int qb_last(const struct attn * a, int b, int kb) {
    const int j0 = kb * BLK, nj = imin(BLK, a->T - j0);
    int last = a->p.window <= 0 ? a->nqb - 1 : imin(a->nqb - 1, (a->p.window + j0 + nj - 2) / BLK);
    if (a->st) {
        // The last query whose start is at most the block's last key: query j0 is one.
        const int32_t * st = a->st + (size_t)b * a->T;
        int lo = j0, hi = a->T - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (st[mid] <= j0 + nj - 1) lo = mid; else hi = mid - 1;
        }
        last = imin(last, lo / BLK);
    }
    return last;
}

// The score gradients of sequence b, head h, blocks (qb, kb ≤ qb) are kept at
// block index qb(qb+1)/2 + kb, BLK×BLK floats each.
static inline float * score_block(const struct attn * a, float * scores, int b, int h, int qb, int kb) {
    const size_t nblk = (size_t)a->nqb * (a->nqb + 1) / 2;
    return scores + (((size_t)b * a->H + h) * nblk + (size_t)qb * (qb + 1) / 2 + kb) * BLK * BLK;
}

int64_t ecotune_attn_scores_size(int64_t H, int64_t T, int64_t B) {
    const int64_t nqb = (T + BLK - 1) / BLK;
    return B * H * (nqb * (nqb + 1) / 2) * BLK * BLK;
}

void ecotune_attn_set_params(struct ggml_tensor * t, struct ecotune_attn_params p) {
    memcpy((char *)t->op_params + ECOTUNE_ATTN_PARAMS_OFFSET, &p, sizeof p);
}

// scores turns the products z = q·k of rows i0.. and keys j0.. of S (BLK columns) of
// sequence b into scores, -inf where masked. With a soft cap, th (if not NULL) keeps
// tanh(pre·z/cap).
static void scores(const struct attn * a, float * S, float * th, int b, int i0, int ni, int j0, int nj) {
    const float cap = a->p.softcap;
    for (int ii = 0; ii < ni; ii++) {
        float * s = S + ii * BLK;
        if (cap > 0) {
            for (int jj = 0; jj < BLK; jj += VW) {
                const vf t = vtanh(vld(s + jj) * (a->p.pre / cap));
                if (th) vst(th + ii * BLK + jj, t);
                vst(s + jj, t * (cap * a->p.scale));
            }
        } else {
            for (int jj = 0; jj < BLK; jj += VW) vst(s + jj, vld(s + jj) * a->c1);
        }
        const int i = i0 + ii;
        int lo = a->p.window > 0 ? imax(0, i - a->p.window + 1 - j0) : 0;
        if (a->st) lo = imax(lo, a->st[(size_t)b * a->T + i] - j0);
        const int hi = imax(0, imin(nj, i - j0 + 1));
        for (int jj = 0; jj < imin(lo, BLK); jj++) s[jj] = -INFINITY;
        for (int jj = hi; jj < BLK; jj++) s[jj] = -INFINITY;
    }
}

// pack_t writes rows j0..j0+nj of head h (rows ld floats apart, hd long) transposed into
// P (hd × BLK), zero past nj.
static void pack_t(float * P, const float * X, ptrdiff_t ld, int nj, int hd) {
    for (int jj = 0; jj < nj; jj++) {
        const float * x = X + (ptrdiff_t)jj * ld;
        for (int d = 0; d < hd; d++) P[d * BLK + jj] = x[d];
    }
    for (int d = 0; d < hd; d++) {
        for (int jj = nj; jj < BLK; jj++) P[d * BLK + jj] = 0;
    }
}

// share assigns n units of work with the given costs to nth threads, the costliest
// first, each to the least loaded thread; every thread computes the same assignment
// and keeps its own units in mine (in order). It returns how many.
static int share(int n, const int * cost, int nth, int ith, int * mine) {
    int maxc = 0;
    for (int u = 0; u < n; u++) maxc = imax(maxc, cost[u]);
    int64_t * load = calloc((size_t)nth, sizeof *load);
    int cnt = 0;
    for (int c = maxc; c >= 0; c--) {
        for (int u = 0; u < n; u++) {
            if (cost[u] != c) continue;
            int t = 0;
            for (int j = 1; j < nth; j++) if (load[j] < load[t]) t = j;
            load[t] += c;
            if (t == ith) mine[cnt++] = u;
        }
    }
    free(load);
    return cnt;
}

// share_query_blocks lists, in *mine, the (sequence, head, query block) units thread ith
// of nth takes, each costing the key blocks it sees, and returns how many; free *mine.
static int share_query_blocks(const struct attn * a, int nth, int ith, int ** mine) {
    const int n = a->B * a->H * a->nqb;
    int * cost = malloc(sizeof(int) * 2 * (size_t)n);
    for (int u = 0; u < n; u++) {
        const int qb = u % a->nqb;
        cost[u] = qb - kb_first(a, u / (a->nqb * a->H), qb) + 1;
    }
    // The units are copied to the front, so that the caller frees one block.
    const int cnt = share(n, cost, nth, ith, cost + n);
    memmove(cost, cost + n, sizeof(int) * (size_t)cnt);
    *mine = cost;
    return cnt;
}

static float * scratch(size_t floats) {
    return aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
}

void ecotune_attn_fwd(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    struct attn a;
    attn_init(&a, dst, dst->src[0], dst->src[1], dst->src[2]);
    const int hd = a.hd, H = a.H, T = a.T;
    float * out = dst->data;
    float * lse = out + (size_t)hd * H * T * a.B;

    int * mine;
    const int cnt = share_query_blocks(&a, nth, ith, &mine);

    float * ws = scratch((size_t)hd * BLK * 2 + BLK * BLK + 2 * BLK);
    float * Kt = ws, * S = Kt + hd * BLK, * acc = S + BLK * BLK, * mx = acc + hd * BLK, * l = mx + BLK;
    for (int w = 0; w < cnt; w++) {
        const int u = mine[w], qb = u % a.nqb, h = (u / a.nqb) % H, b = u / (a.nqb * H), g = h / a.r;
        const int i0 = qb * BLK, ni = imin(BLK, T - i0);
        const float * Q = at(a.q, a.q1, a.q2, a.q3, h, i0, b);
        memset(acc, 0, sizeof(float) * (size_t)ni * hd);
        for (int ii = 0; ii < ni; ii++) { mx[ii] = -INFINITY; l[ii] = 0; }
        for (int kb = kb_first(&a, b, qb); kb <= qb; kb++) {
            const int j0 = kb * BLK, nj = imin(BLK, T - j0);
            pack_t(Kt, at(a.k, a.k1, a.k2, a.k3, g, j0, b), a.k2 / 4, nj, hd);
            gemm(ni, BLK, hd, Q, a.q2 / 4, 1, Kt, BLK, S, BLK, 0);
            scores(&a, S, NULL, b, i0, ni, j0, nj);
            for (int ii = 0; ii < ni; ii++) {
                float * s = S + ii * BLK;
                vf vm = vld(s);
                for (int jj = VW; jj < BLK; jj += VW) vm = vmax(vld(s + jj), vm);
                const float m = hmax(vm);
                if (m == -INFINITY) {
                    memset(s, 0, sizeof(float) * BLK);
                    continue;
                }
                const float mnew = m > mx[ii] ? m : mx[ii];
                if (mnew != mx[ii] && mx[ii] != -INFINITY) {
                    const float corr = expf(mx[ii] - mnew);
                    l[ii] *= corr;
                    for (int d = 0; d < hd; d++) acc[ii * hd + d] *= corr;
                }
                vf sum = (vf){0};
                for (int jj = 0; jj < BLK; jj += VW) {
                    const vf p = vexp(vld(s + jj) - mnew);
                    vst(s + jj, p);
                    sum += p;
                }
                l[ii] += hsum(sum);
                mx[ii] = mnew;
            }
            gemm(ni, hd, nj, S, BLK, 1, at(a.v, a.v1, a.v2, a.v3, g, j0, b), a.v2 / 4, acc, hd, 1);
        }
        for (int ii = 0; ii < ni; ii++) {
            const size_t row = ((size_t)b * T + i0 + ii) * H + h;
            const float inv = 1 / l[ii];
            for (int d = 0; d < hd; d++) out[row * hd + d] = acc[ii * hd + d] * inv;
            lse[row] = mx[ii] + logf(l[ii]);
        }
    }
    free(ws);
    free(mine);
}

// block_ds computes, for query rows i0..i0+ni of head h and the keys of block j0 (packed
// transposed in Kt and Vt), the probabilities P from the saved log-sum-exps, dP = dO·Vᵀ,
// the rows' D = dO·O, and the score gradients dS (ni rows of BLK, stride BLK).
static void block_ds(const struct attn * a, const float * out, const float * lse, const float * Q,
                     const float * dO, size_t g1, const float * Kt, const float * Vt, int b, int h,
                     int i0, int ni, int j0, int nj, float * P, float * dP, float * D, float * th, float * dS) {
    const int hd = a->hd, H = a->H, cap = a->p.softcap > 0;
    gemm(ni, BLK, hd, Q, a->q2 / 4, 1, Kt, BLK, P, BLK, 0);
    scores(a, P, th, b, i0, ni, j0, nj);
    for (int ii = 0; ii < ni; ii++) {
        const size_t row = ((size_t)b * a->T + i0 + ii) * H + h;
        const float L = lse[row];
        for (int jj = 0; jj < BLK; jj += VW) vst(P + ii * BLK + jj, vexp(vld(P + ii * BLK + jj) - L));
        const float * o = out + row * hd, * go = dO + (size_t)ii * (g1 / 4);
        float s = 0;
        for (int d = 0; d < hd; d++) s += go[d] * o[d];
        D[ii] = s;
    }
    gemm(ni, BLK, hd, dO, g1 / 4, 1, Vt, BLK, dP, BLK, 0);
    for (int ii = 0; ii < ni; ii++) {
        const float * p = P + ii * BLK, * dp = dP + ii * BLK;
        float * ds = dS + ii * BLK;
        if (cap) {
            const float f = a->p.scale * a->p.pre;
            const float * t = th + ii * BLK;
            for (int jj = 0; jj < BLK; jj++) ds[jj] = p[jj] * (dp[jj] - D[ii]) * f * (1 - t[jj] * t[jj]);
        } else {
            for (int jj = 0; jj < BLK; jj++) ds[jj] = p[jj] * (dp[jj] - D[ii]) * a->c1;
        }
    }
}

void ecotune_attn_back_kv(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    const struct ggml_tensor * fwd = dst->src[3], * grad = dst->src[4];
    struct attn a;
    attn_init(&a, dst, dst->src[0], dst->src[1], dst->src[2]);
    const int hd = a.hd, H = a.H, KV = a.KV, T = a.T;
    const float * out = fwd->data;
    const float * lse = out + (size_t)hd * H * T * a.B;
    float * dk = dst->data;
    float * dv = dk + (size_t)hd * KV * T * a.B;
    // Without room for the score gradients, back_q makes them again.
    float * sg = ggml_nelements(dst) > 2 * (int64_t)hd * KV * T * a.B ? dv + (size_t)hd * KV * T * a.B : NULL;
    const size_t g1 = grad->nb[1];

    const int n = a.B * KV * a.nqb;
    int * cost = malloc(sizeof(int) * 2 * (size_t)n), * mine = cost + n;
    for (int u = 0; u < n; u++) {
        const int kb = u % a.nqb;
        cost[u] = a.r * (qb_last(&a, u / (a.nqb * KV), kb) - kb + 1);
    }
    const int cnt = share(n, cost, nth, ith, mine);

    const int cap = a.p.softcap > 0;
    float * ws = scratch((size_t)hd * BLK * 4 + BLK * BLK * (cap ? 4 : 3) + BLK);
    float * Kt = ws, * Vt = Kt + hd * BLK, * dK = Vt + hd * BLK, * dV = dK + hd * BLK;
    float * P = dV + hd * BLK, * dP = P + BLK * BLK, * own = dP + BLK * BLK, * D = own + BLK * BLK;
    float * th = cap ? D + BLK : NULL;
    for (int w = 0; w < cnt; w++) {
        const int u = mine[w], kb = u % a.nqb, g = (u / a.nqb) % KV, b = u / (a.nqb * KV);
        const int j0 = kb * BLK, nj = imin(BLK, T - j0);
        pack_t(Kt, at(a.k, a.k1, a.k2, a.k3, g, j0, b), a.k2 / 4, nj, hd);
        pack_t(Vt, at(a.v, a.v1, a.v2, a.v3, g, j0, b), a.v2 / 4, nj, hd);
        memset(dK, 0, sizeof(float) * (size_t)nj * hd);
        memset(dV, 0, sizeof(float) * (size_t)nj * hd);
        for (int h = g * a.r; h < (g + 1) * a.r; h++) {
            for (int qb = kb, last = qb_last(&a, b, kb); qb <= last; qb++) {
                const int i0 = qb * BLK, ni = imin(BLK, T - i0);
                const float * Q = at(a.q, a.q1, a.q2, a.q3, h, i0, b);
                const float * dO = (const float *)((const char *)grad->data + ((size_t)b * T + i0) * g1) + (size_t)h * hd;
                float * dS = sg ? score_block(&a, sg, b, h, qb, kb) : own;
                block_ds(&a, out, lse, Q, dO, g1, Kt, Vt, b, h, i0, ni, j0, nj, P, dP, D, th, dS);
                gemm(nj, hd, ni, P, 1, BLK, dO, g1 / 4, dV, hd, 1);
                gemm(nj, hd, ni, dS, 1, BLK, Q, a.q2 / 4, dK, hd, 1);
            }
        }
        for (int jj = 0; jj < nj; jj++) {
            const size_t row = ((size_t)b * T + j0 + jj) * KV + g;
            memcpy(dk + row * hd, dK + (size_t)jj * hd, sizeof(float) * hd);
            memcpy(dv + row * hd, dV + (size_t)jj * hd, sizeof(float) * hd);
        }
    }
    free(ws);
    free(cost);
}

void ecotune_attn_back_q(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
    (void)userdata;
    // Two forms: src k and back_kv's dst holding the score gradients, or (recompute)
    // src q, k, v, the forward's dst and the gradient, as back_kv's.
    const int recompute = dst->src[4] != NULL;
    struct attn a;
    const struct ggml_tensor * fwd = NULL, * grad = NULL;
    float * sg = NULL;
    if (recompute) {
        attn_init(&a, dst, dst->src[0], dst->src[1], dst->src[2]);
        fwd = dst->src[3], grad = dst->src[4];
    } else {
        attn_init(&a, dst, NULL, dst->src[0], NULL);
        sg = (float *)dst->src[1]->data + 2 * (size_t)a.hd * a.KV * a.T * a.B;
    }
    const int hd = a.hd, H = a.H, T = a.T;
    const float * out = fwd ? fwd->data : NULL;
    const float * lse = out ? out + (size_t)hd * H * T * a.B : NULL;
    const size_t g1 = grad ? grad->nb[1] : 0;
    float * dq = dst->data;

    int * mine;
    const int cnt = share_query_blocks(&a, nth, ith, &mine);

    const int cap = a.p.softcap > 0;
    float * ws = scratch((size_t)hd * BLK * 3 + (recompute ? BLK * BLK * (cap ? 4 : 3) + BLK : 0));
    float * acc = ws, * Kt = acc + hd * BLK, * Vt = Kt + hd * BLK;
    float * P = Vt + hd * BLK, * dP = P + BLK * BLK, * own = dP + BLK * BLK, * D = own + BLK * BLK;
    float * th = cap ? D + BLK : NULL;
    for (int w = 0; w < cnt; w++) {
        const int u = mine[w], qb = u % a.nqb, h = (u / a.nqb) % H, b = u / (a.nqb * H), g = h / a.r;
        const int i0 = qb * BLK, ni = imin(BLK, T - i0);
        memset(acc, 0, sizeof(float) * (size_t)ni * hd);
        for (int kb = kb_first(&a, b, qb); kb <= qb; kb++) {
            const int j0 = kb * BLK, nj = imin(BLK, T - j0);
            const float * K = at(a.k, a.k1, a.k2, a.k3, g, j0, b);
            float * dS = own;
            if (recompute) {
                const float * Q = at(a.q, a.q1, a.q2, a.q3, h, i0, b);
                const float * dO = (const float *)((const char *)grad->data + ((size_t)b * T + i0) * g1) + (size_t)h * hd;
                pack_t(Kt, K, a.k2 / 4, nj, hd);
                pack_t(Vt, at(a.v, a.v1, a.v2, a.v3, g, j0, b), a.v2 / 4, nj, hd);
                block_ds(&a, out, lse, Q, dO, g1, Kt, Vt, b, h, i0, ni, j0, nj, P, dP, D, th, dS);
            } else {
                dS = score_block(&a, sg, b, h, qb, kb);
            }
            gemm(ni, hd, nj, dS, BLK, 1, K, a.k2 / 4, acc, hd, 1);
        }
        for (int ii = 0; ii < ni; ii++) {
            memcpy(dq + (((size_t)b * T + i0 + ii) * H + h) * hd, acc + (size_t)ii * hd, sizeof(float) * hd);
        }
    }
    free(ws);
    free(mine);
}
