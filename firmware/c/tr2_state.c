/* tr2_state.c - protocol 2's board state: the target and the closed-loop actuator with
   its residue ("State, actuator and residue"), the two-sector state store and its
   generation ("Resets and the stored state"), start-up, learns, the flags, and protocol
   2.1's actuator calibration ("Actuator calibration"). */
#include "twinrig_core2.h"

/* ---- actuator ------------------------------------------------------------- */

int32_t tr2_grid_point(const tr2_board_config *cfg, int32_t target)
{
    uint32_t r = (uint32_t)cfg->resolution;
    uint32_t range = (uint32_t)cfg->state_max - (uint32_t)cfg->state_min;
    uint32_t d;
    uint32_t q;
    int32_t t = target < cfg->state_min ? cfg->state_min
                : (target > cfg->state_max ? cfg->state_max : target);
    d = (uint32_t)t - (uint32_t)cfg->state_min;
    q = d / r;
    if (d - q * r >= r - r / 2u) {
        q++; /* halves up */
    }
    if (q > range / r) {
        q = range / r; /* never above the top grid point */
    }
    return tr2_u32_to_i32((uint32_t)cfg->state_min + q * r);
}

void tr2_board_set_target(tr2_board *b, int32_t target)
{
    b->target = target < b->cfg->state_min ? b->cfg->state_min
                : (target > b->cfg->state_max ? b->cfg->state_max : target);
    b->state = (b->hal && b->hal->actuator_move) ? b->hal->actuator_move(b->hal->user, b->target)
                                                 : tr2_grid_point(b->cfg, b->target);
}

int32_t tr2_board_residue(const tr2_board *b)
{
    return (int32_t)((int64_t)b->target - (int64_t)b->state);
}

/* ---- state store ---------------------------------------------------------- */

/* The sector of the newest valid record (-1: none); of two of one generation, which no
   sequence of stores leaves, sector 0, as store.py's max() takes the first. */
static int newest_sector(const tr2_board *b)
{
    if (b->sector_valid[0] && (!b->sector_valid[1] || b->sector_gen[0] >= b->sector_gen[1])) {
        return 0;
    }
    return b->sector_valid[1] ? 1 : -1;
}

uint32_t tr2_store_generation(const tr2_board *b)
{
    int s = newest_sector(b);
    return s < 0 ? 0u : b->sector_gen[s];
}

static int32_t restored_target(const tr2_board *b)
{
    int s = newest_sector(b);
    return s < 0 ? b->cfg->initial_state : b->sector_target[s];
}

static void store_load(tr2_board *b)
{
    unsigned s;
    uint8_t rec[TR2_RECORD_LEN];
    for (s = 0; s < 2u; s++) {
        b->sector_valid[s] = 0;
        if (b->hal && b->hal->store_read && b->hal->store_read(b->hal->user, s, rec) == 0 &&
            tr2_crc32_update(0, rec, 8) == tr2_get_u32(rec + 8)) {
            b->sector_valid[s] = 1;
            b->sector_gen[s] = tr2_get_u32(rec);
            b->sector_target[s] = tr2_u32_to_i32(tr2_get_u32(rec + 4));
        }
    }
}

/* store_state: the record goes to the sector not holding the newest one, erased first. */
uint8_t tr2_store_write(tr2_board *b, uint32_t *gen_out)
{
    int newest = newest_sector(b);
    unsigned s = (newest == 1 || newest < 0) ? 0u : 1u;
    uint32_t gen = tr2_store_generation(b) + 1u;
    uint8_t rec[TR2_RECORD_LEN];
    const tr2_hal *h = b->hal;
    if (!h || !h->store_erase || !h->store_program || h->store_erase(h->user, s) != 0) {
        return TR_STORAGE;
    }
    b->sector_valid[s] = 0;
    tr2_put_u32(rec, gen);
    tr2_put_u32(rec + 4, (uint32_t)b->target);
    tr2_put_u32(rec + 8, tr2_crc32_update(0, rec, 8));
    if (h->store_program(h->user, s, rec) != 0) {
        return TR_STORAGE;
    }
    b->sector_valid[s] = 1;
    b->sector_gen[s] = gen;
    b->sector_target[s] = b->target;
    *gen_out = gen;
    return TR_OK;
}

uint8_t tr2_store_erase(tr2_board *b)
{
    const tr2_hal *h = b->hal;
    unsigned s;
    if (!h || !h->store_erase) {
        return TR_STORAGE;
    }
    for (s = 0; s < 2u; s++) {
        if (h->store_erase(h->user, s) != 0) {
            return TR_STORAGE;
        }
        b->sector_valid[s] = 0;
    }
    return TR_OK;
}

/* ---- start-up, learn, flags ------------------------------------------------ */

void tr2_board_init(tr2_board *b, const tr2_board_config *cfg, const tr2_hal *hal,
                    const tr2_boot_info *boot)
{
    int i;
    b->cfg = cfg;
    b->hal = hal;
    b->address = cfg->address;
    for (i = 0; i < 4; i++) {
        b->offsets_uv[i] = 0;
    }
    if (!hal || !hal->calibration_load || hal->calibration_load(hal->user, b->offsets_uv) != 0) {
        for (i = 0; i < 4; i++) {
            b->offsets_uv[i] = 0;
        }
    }
    store_load(b);
    tr2_board_set_target(b, restored_target(b));
    b->rule = TR_RULE_NONE;
    b->probability = 0;
    b->gain = 0;
    b->dead_band_uv2 = 0;
    b->prng = tr_prng_seed(cfg->uid);
    b->frames_ok = b->frames_bad = b->learns = b->updates = b->glitches = 0;
    b->last_error = TR_OK;
    b->duplicate = 0;
    b->reset_cause = boot->reset_cause;
    tr2_update_forget(&b->fw);
    b->fw.phase = boot->fw_phase;
    for (i = 0; i < 3; i++) {
        b->fw.version[i] = boot->fw_version[i];
    }
    b->fw.blocks = boot->fw_blocks;
    tr2_cobs_decoder_reset(&b->rx);
}

/* The drops of the nodes as read now, offsets subtracted (zero nodes without a reader).
   The array is zeroed element by element: an initialiser would be a memset call. */
void tr2_board_drops(const tr2_board *b, tr_drops *d)
{
    int32_t node_uv[4];
    node_uv[0] = node_uv[1] = node_uv[2] = node_uv[3] = 0;
    if (b->hal && b->hal->read_nodes_uv) {
        b->hal->read_nodes_uv(b->hal->user, node_uv);
    }
    tr_compute_drops(node_uv, b->offsets_uv, d);
}

int tr2_board_learn(tr2_board *b)
{
    tr_drops d;
    int32_t next;
    int updated;
    uint32_t r = tr_prng_next(&b->prng); /* always drawn, as protocol 1.1 */
    tr2_board_drops(b, &d);
    updated = tr_rule_apply(b->rule, r, b->probability, b->gain, b->dead_band_uv2, d.contrast_uv2,
                            b->target, b->cfg->state_min, b->cfg->state_max, &next);
    b->learns++;
    if (updated) {
        b->updates++;
        tr2_board_set_target(b, next);
    }
    return updated;
}

void tr2_board_trigger(tr2_board *b, uint32_t width_us)
{
    if (width_us >= TR2_TRIGGER_MIN_US) {
        (void)tr2_board_learn(b);
    } else {
        b->glitches++;
    }
}

uint8_t tr2_board_flags(const tr2_board *b)
{
    return (uint8_t)((b->duplicate ? TR2_FLAG_DUPLICATE : 0) |
                     (b->target != restored_target(b) ? TR2_FLAG_STATE_UNSTORED : 0) |
                     (b->fw.phase == TR2_PHASE_ROLLED_BACK ? TR2_FLAG_ROLLED_BACK : 0));
}

/* ---- actuator calibration (protocol 2.1) ------------------------------------ */

/* PROTOCOL.md, "Actuator calibration": s = y[i] + floor(dy * dx / den) on the segment i
   the gate is in (the first below the second point, the last above the fourth), at least
   1. With i32 fields |dy|, |dx| and den are below 2^32, so |dy * dx| fits a u64: the
   product is taken as magnitudes and the sign applied after, the quotient rounded away
   from zero when negative (a floor), and one beyond 2^32 can only saturate. */
int32_t tr2_gate_slope_nv_per_us(const tr2_gate_cal *cal, int32_t gate_uv, int charging)
{
    const int32_t *xs = charging ? cal->charge_gate_uv : cal->discharge_gate_uv;
    const int32_t *ys = charging ? cal->charge_nv_per_us : cal->discharge_nv_per_us;
    int i = 0;
    int64_t dy, dx, den;
    int64_t s;
    uint64_t p, q;
    while (i < TR2_GATE_CAL_POINTS - 2 && gate_uv > xs[i + 1]) {
        i++;
    }
    dy = (int64_t)ys[i + 1] - ys[i];
    dx = (int64_t)gate_uv - xs[i];
    den = (int64_t)xs[i + 1] - xs[i];
    s = ys[i];
    if (den > 0) {
        p = (uint64_t)(dy < 0 ? -dy : dy) * (uint64_t)(dx < 0 ? -dx : dx);
        q = p / (uint64_t)den;
        if (q > 0x100000000ull) {
            q = 0x100000000ull; /* |result - y[i]| beyond 2^32: outside i32 either way */
        }
        if ((dy < 0) != (dx < 0) && p != 0u) {
            s -= (int64_t)q + (q * (uint64_t)den != p); /* floored: down when inexact */
        } else {
            s += (int64_t)q;
        }
    }
    return s < 1 ? 1 : (s > 0x7FFFFFFF ? 0x7FFFFFFF : (int32_t)s);
}

uint8_t tr2_board_gate(tr2_board *b, int calibrate, uint8_t out[TR2_GATE_REPLY_LEN])
{
    const tr2_hal *h = b->hal;
    tr2_gate_cal cal;
    int i;
    int failed;
    if (b->cfg->kind != TR_KIND_MOSFET || !h || !h->actuator_calibrate ||
        !h->actuator_calibration) {
        return TR_WRONG_KIND;
    }
    if (calibrate) {
        /* measured, back at the target, stored: the state is read back once more; a table
           that could not be stored is not in use ("storage") */
        failed = h->actuator_calibrate(h->user, &cal);
        tr2_board_set_target(b, b->target);
        if (failed) {
            return TR_STORAGE;
        }
        out[0] = 1u;
    } else {
        out[0] = h->actuator_calibration(h->user, &cal);
    }
    for (i = 0; i < TR2_GATE_CAL_POINTS; i++) {
        tr2_put_u32(out + 1 + 4 * i, (uint32_t)cal.charge_gate_uv[i]);
        tr2_put_u32(out + 21 + 4 * i, (uint32_t)cal.charge_nv_per_us[i]);
        tr2_put_u32(out + 41 + 4 * i, (uint32_t)cal.discharge_gate_uv[i]);
        tr2_put_u32(out + 61 + 4 * i, (uint32_t)cal.discharge_nv_per_us[i]);
    }
    tr2_put_u32(out + 81, (uint32_t)cal.leak_uv_per_s);
    return TR_OK;
}
