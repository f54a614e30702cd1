/* tr_rule.c - xorshift32 generator, drops, contrast and the integer rule. */
#include "twinrig_core.h"

#define TR_INT64_MAX ((int64_t)0x7FFFFFFFFFFFFFFFLL)

uint32_t tr_prng_seed(const uint8_t uid[8])
{
    uint32_t x = (uint32_t)uid[0] | ((uint32_t)uid[1] << 8) | ((uint32_t)uid[2] << 16) |
                 ((uint32_t)uid[3] << 24);
    x ^= TR_PRNG_SEED_XOR;
    return x ? x : 1u;
}

uint32_t tr_prng_next(uint32_t *x)
{
    uint32_t v = *x;
    v ^= (uint32_t)(v << 13);
    v ^= v >> 17;
    v ^= (uint32_t)(v << 5);
    *x = v;
    return v;
}

static uint64_t mag64(int64_t v)
{
    /* |v| as unsigned, defined for INT64_MIN too */
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int32_t sat_i32(int64_t v)
{
    if (v > 0x7FFFFFFFLL) {
        return 0x7FFFFFFF;
    }
    if (v < -0x7FFFFFFFLL - 1) {
        return -0x7FFFFFFF - 1;
    }
    return (int32_t)v;
}

void tr_compute_drops(const int32_t node_uv[4], const int32_t offsets_uv[4], tr_drops *out)
{
    /* each drop is exact in 64 bits (|.| <= 2^33), then saturated to i32 */
    int32_t f = sat_i32(((int64_t)node_uv[TR_FREE_A] - offsets_uv[TR_FREE_A]) -
                        ((int64_t)node_uv[TR_FREE_B] - offsets_uv[TR_FREE_B]));
    int32_t c = sat_i32(((int64_t)node_uv[TR_CLAMPED_A] - offsets_uv[TR_CLAMPED_A]) -
                        ((int64_t)node_uv[TR_CLAMPED_B] - offsets_uv[TR_CLAMPED_B]));
    /* f^2 - c^2 = (f - c)(f + c); both factors fit in 33 bits, and the
       product is formed only when it is known to be within the clip limit,
       so the contrast is exact and nothing overflows. */
    int64_t x = (int64_t)f - c;
    int64_t y = (int64_t)f + c;
    int64_t contrast;
    out->dv_free_uv = f;
    out->dv_clamped_uv = c;
    if (x == 0 || y == 0) {
        contrast = 0;
    } else {
        uint64_t ax = mag64(x);
        uint64_t ay = mag64(y);
        int negative = (x < 0) != (y < 0);
        if (ax > (uint64_t)TR_CONTRAST_LIMIT_UV2 / ay) {
            contrast = negative ? -TR_CONTRAST_LIMIT_UV2 : TR_CONTRAST_LIMIT_UV2;
        } else {
            contrast = x * y; /* |x*y| <= 2^38 */
        }
    }
    out->contrast_uv2 = contrast;
}

int64_t tr_floor_div_pow2(int64_t a, int shift)
{
    int64_t d, q;
    if (shift <= 0) {
        return a;
    }
    if (shift > 62) {
        shift = 62;
    }
    d = (int64_t)1 << shift; /* positive operand: well defined */
    q = a / d;               /* C99: truncates toward zero */
    if (a % d != 0 && a < 0) {
        q -= 1;              /* toward minus infinity */
    }
    return q;
}

int32_t tr_clip_state(int64_t v, int32_t lo, int32_t hi)
{
    if (v < lo) {
        return lo;
    }
    if (v > hi) {
        return hi;
    }
    return (int32_t)v;
}

int64_t tr_gain_delta(int64_t contrast_uv2, int64_t gain)
{
    /*
     * Round half away from zero on the magnitude m = |c| <= 2^38, all unsigned:
     * gain = gh * 2^24 + gl (0 <= gl < 2^24, 0 <= gh < 2^16):
     *   A = m * gh <= 2^38 (2^16 - 1) < 2^54;  A = a1 * 2^24 + a0, 0 <= a0 < 2^24;
     *   B = m * gl <= 2^38 (2^24 - 1) < 2^62;
     *   m * gain = a1 * 2^48 + (a0 * 2^24 + B), so
     *   floor((m * gain + 2^47) / 2^48) = a1 + floor((a0 * 2^24 + B + 2^47) / 2^48),
     *   the sum below 2^48 + 2^62 + 2^47 < 2^63; then the sign of c is put back.
     */
    const uint64_t low = ((uint64_t)1 << TR_GAIN_SPLIT) - 1u;
    const uint64_t half = (uint64_t)1 << (TR_GAIN_SHIFT - 1);
    int64_t c = contrast_uv2;
    uint64_t m, gh, gl, a, q;
    /* keep the bounds above for any input, so nothing can overflow */
    if (c > TR_CONTRAST_LIMIT_UV2) {
        c = TR_CONTRAST_LIMIT_UV2;
    } else if (c < -TR_CONTRAST_LIMIT_UV2) {
        c = -TR_CONTRAST_LIMIT_UV2;
    }
    if (gain < 0) {
        gain = 0;
    } else if (gain >= TR_GAIN_LIMIT) {
        gain = TR_GAIN_LIMIT - 1;
    }
    m = c < 0 ? (uint64_t)(-c) : (uint64_t)c; /* |c| <= 2^38: -c cannot overflow */
    gh = (uint64_t)gain >> TR_GAIN_SPLIT;      /* gain >= 0 here */
    gl = (uint64_t)gain & low;
    a = m * gh;
    q = (a >> TR_GAIN_SPLIT) + ((((a & low) << TR_GAIN_SPLIT) + m * gl + half) >> TR_GAIN_SHIFT);
    /* q <= 2^30 */
    return c < 0 ? -(int64_t)q : (int64_t)q;
}

int tr_rule_apply(uint8_t rule, uint32_t r, uint32_t probability, int64_t gain,
                  int64_t dead_band_uv2, int64_t contrast_uv2, int32_t state,
                  int32_t state_min, int32_t state_max, int32_t *state_out)
{
    int64_t next = state;
    /* -dead_band for the lower threshold; INT64_MIN has no negation */
    int64_t low = dead_band_uv2 == -TR_INT64_MAX - 1 ? TR_INT64_MAX : -dead_band_uv2;
    *state_out = state;
    if (rule != TR_RULE_TAP && rule != TR_RULE_GATE_CHARGING && rule != TR_RULE_CONTINUOUS) {
        return 0;
    }
    if ((r >> 16) >= probability) {
        return 0;
    }
    if (rule == TR_RULE_TAP) {
        if (contrast_uv2 > dead_band_uv2) {
            next = (int64_t)state + 1;
        } else if (contrast_uv2 < low) {
            next = (int64_t)state - 1;
        }
    } else {
        /* |change| <= 2^30: the sum is exact in 64 bits, then clipped to the i32 limits */
        next = (int64_t)state + tr_gain_delta(contrast_uv2, gain);
    }
    *state_out = tr_clip_state(next, state_min, state_max);
    return 1;
}
