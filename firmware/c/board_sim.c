/*
 * board_sim.c - host harness for the C core (not part of the firmware).
 *
 * Reads one command per line on stdin and prints one result line per command
 * on stdout, so tests can drive the core without parsing JSON in C. Numbers
 * are decimal, byte strings are hex ("-" for empty).
 *
 *   crc HEX                          -> crc16 as 4 hex digits
 *   cobs HEX                         -> COBS encoding (no delimiter)
 *   decode HEX                       -> "ok VER DST SRC SEQ CMD PAYLOAD" | "err CODE"
 *   encode VER DST SRC SEQ CMD PAYLOAD -> wire hex (COBS + 00 delimiter)
 *   prng UID N                       -> N draws
 *   rule RULE PROB GAIN DB MIN MAX STATE UID DRAWS_BEFORE C0 C1 C2 C3 N0 N1 N2 N3
 *                                    -> "DVF DVC CONTRAST UPDATED STATE_AFTER"
 *   board ADDR UID KIND MIN MAX INIT FWMAJ FWMIN FWPAT N0 N1 N2 N3 UPTIME
 *                                    -> "ok" (power-on a simulated board)
 *   nodes N0 N1 N2 N3 | uptime MS | nvs_fail 0|1 -> "ok"
 *   send HEX                         -> "none" | "reply HEX DELAY_MS ..." (each reply)
 *   fuzz SEED N                      -> "fuzz ok N ACCEPTED" (or exits non-zero)
 *
 * `send` reads its bytes straight from stdin and feeds them to the board as they
 * arrive, so a stream of any length needs no buffer (the harness then fits the
 * 16 KiB of RAM of the Cortex-M0 machine the ARM tests run it on, firmware/c/arm/).
 * Every other line must fit BOARD_SIM_LINE_MAX bytes; a longer one is an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twinrig_core.h"

#ifndef BOARD_SIM_LINE_MAX
#define BOARD_SIM_LINE_MAX 70000
#endif
#define BYTES_MAX (BOARD_SIM_LINE_MAX / 2)
#define WORD_MAX 16

static char line[BOARD_SIM_LINE_MAX];
static uint8_t bytes[BYTES_MAX];

/* ---- simulated hardware ------------------------------------------------- */

typedef struct {
    int32_t node_uv[4];
    uint32_t uptime_ms;
    int32_t nvs[4];
    int nvs_valid;
    int nvs_fail;
    int32_t actuator;
} sim_hw;

static void sim_read_nodes(void *user, int32_t node_uv[4])
{
    sim_hw *hw = (sim_hw *)user;
    memcpy(node_uv, hw->node_uv, sizeof hw->node_uv);
}

static void sim_set_actuator(void *user, int32_t state)
{
    ((sim_hw *)user)->actuator = state;
}

static int sim_nvs_load(void *user, int32_t offsets_uv[4])
{
    sim_hw *hw = (sim_hw *)user;
    if (!hw->nvs_valid || hw->nvs_fail) {
        return -1;
    }
    memcpy(offsets_uv, hw->nvs, sizeof hw->nvs);
    return 0;
}

static int sim_nvs_store(void *user, const int32_t offsets_uv[4])
{
    sim_hw *hw = (sim_hw *)user;
    if (hw->nvs_fail) {
        return -1;
    }
    memcpy(hw->nvs, offsets_uv, sizeof hw->nvs);
    hw->nvs_valid = 1;
    return 0;
}

static uint32_t sim_millis(void *user)
{
    return ((sim_hw *)user)->uptime_ms;
}

static sim_hw hw;
static tr_hal hal;
static tr_board board;
static int have_board;

/* ---- parsing helpers ---------------------------------------------------- */

/* A line the harness cannot parse: one message, exit status 2. */
static void die(const char *why)
{
    fprintf(stderr, "%s\n", why);
    exit(2);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parse a hex token into buf; returns length or -1. */
static long parse_hex(const char *s, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    while (s[0] && s[1]) {
        int hi = hexval((unsigned char)s[0]), lo = hexval((unsigned char)s[1]);
        if (hi < 0 || lo < 0 || n >= cap) {
            return -1;
        }
        buf[n++] = (uint8_t)(hi * 16 + lo);
        s += 2;
    }
    return s[0] ? -1 : (long)n;
}

static void print_hex(const uint8_t *p, size_t n)
{
    size_t i;
    if (n == 0) {
        fputc('-', stdout);
    }
    for (i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
}

static char *tok(void)
{
    return strtok(NULL, " \t\r\n");
}

static long long num(void)
{
    char *t = tok();
    if (!t) {
        die("missing number");
    }
    return strtoll(t, NULL, 10);
}

static long hex_arg(uint8_t *buf, size_t cap)
{
    char *t = tok();
    long n;
    if (!t || (n = parse_hex(t, buf, cap)) < 0) {
        die("bad hex");
    }
    return n;
}

static void uid_arg(uint8_t uid[8])
{
    uint8_t tmp[64];
    long n = hex_arg(tmp, sizeof tmp);
    if (n != 8) {
        die("uid must be 8 bytes");
    }
    memcpy(uid, tmp, 8);
}

/* Decode a chunk two ways (one-shot and byte-by-byte as a receiver would)
   and insist they agree. */
static tr_status decode_both(const uint8_t *chunk, size_t len, tr_frame *f)
{
    tr_frame g;
    tr_cobs_decoder d;
    tr_status a = tr_frame_decode(chunk, len, f), b;
    size_t i;
    tr_cobs_decoder_reset(&d);
    for (i = 0; i < len; i++) {
        tr_cobs_decoder_push(&d, chunk[i]);
    }
    b = len ? tr_frame_finish(&d, &g) : TR_TOO_SHORT;
    if (a != b || (a == TR_OK && (f->len != g.len || memcmp(f->payload, g.payload, f->len) != 0 ||
                                  f->cmd != g.cmd || f->dst != g.dst))) {
        fprintf(stderr, "one-shot and incremental decoders disagree: %d vs %d\n", a, b);
        exit(3);
    }
    return a;
}

/* ---- fuzz (inside C, with independent checks) --------------------------- */

static uint32_t fz;
static uint32_t rnd(void)
{
    return tr_prng_next(&fz);
}

/* table-driven CRC, independent of tr_crc16's bitwise loop */
static uint16_t crc_table[256];
static void crc_table_init(void)
{
    unsigned i, j;
    for (i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (j = 0; j < 8; j++) {
            c = (uint16_t)((c & 0x8000u) ? (((unsigned)c << 1) ^ 0x1021u) : ((unsigned)c << 1));
        }
        crc_table[i] = c;
    }
}
static uint16_t crc_ref(const uint8_t *p, size_t n)
{
    uint16_t c = 0xFFFFu;
    size_t i;
    for (i = 0; i < n; i++) {
        c = (uint16_t)((c << 8) ^ crc_table[((c >> 8) ^ p[i]) & 0xFFu]);
    }
    return c;
}

/* reference COBS decode (plain, whole-buffer); returns length or -1 */
static long cobs_ref(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i++];
        size_t k;
        if (code == 0 || i + (size_t)code - 1u > n) {
            return -1;
        }
        for (k = 1; k < code; k++) {
            if (in[i] == 0) return -1;
            out[o++] = in[i++];
        }
        if (code != 0xFFu && i < n) {
            out[o++] = 0;
        }
    }
    return (long)o;
}

static int fuzz(uint32_t seed, long iterations)
{
    static uint8_t raw[600], chunk[700], dec[700], again[TR_MAX_WIRE];
    long it, accepted = 0;
    sim_hw fhw;
    tr_hal fhal;
    tr_board fb;
    tr_board_config cfg;
    tr_reply rep;

    crc_table_init();
    fz = seed ? seed : 1u;
    memset(&fhw, 0, sizeof fhw);
    fhal.user = &fhw;
    fhal.read_nodes_uv = sim_read_nodes;
    fhal.set_actuator = sim_set_actuator;
    fhal.nvs_load = sim_nvs_load;
    fhal.nvs_store = sim_nvs_store;
    fhal.millis = sim_millis;
    memset(&cfg, 0, sizeof cfg);
    cfg.address = 5;
    cfg.kind = TR_KIND_DIGIPOT;
    cfg.state_max = 99;
    cfg.initial_state = 50;
    tr_board_init(&fb, &cfg, &fhal);

    for (it = 0; it < iterations; it++) {
        size_t n, len, i;
        long expect;
        tr_frame f;
        tr_status st;
        uint32_t mode = rnd() % 4u;

        /* a frame: random header (biased to valid), payload, CRC */
        n = TR_MIN_FRAME + rnd() % (TR_MAX_PAYLOAD + 3u);
        for (i = 0; i < n; i++) {
            raw[i] = (uint8_t)rnd();
        }
        if (rnd() % 4u) raw[0] = 1;
        if (rnd() % 2u) raw[1] = (rnd() % 2u) ? 5 : 255;
        if (rnd() % 2u) raw[4] = (uint8_t)(rnd() % 12u);
        if (rnd() % 2u) memset(raw + 5, 0, (n - 7) / 2);
        {
            uint16_t c = crc_ref(raw, n - 2);
            raw[n - 2] = (uint8_t)(c >> 8);
            raw[n - 1] = (uint8_t)c;
        }
        len = tr_cobs_encode(raw, n, chunk, sizeof chunk);
        if (mode == 0) {
            /* pure random chunk */
            len = rnd() % 300u;
            for (i = 0; i < len; i++) {
                chunk[i] = (uint8_t)(rnd() % 8u ? (rnd() | 1u) : rnd());
            }
        } else if (mode == 1) {
            uint32_t k, flips = 1 + rnd() % 3u;
            for (k = 0; k < flips && len; k++) {
                chunk[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8u));
            }
        } else if (mode == 2) {
            uint32_t what = rnd() % 3u;
            if (what == 0 && len > 1) {
                len = 1 + rnd() % (len - 1); /* truncate */
            } else if (what == 1 && len + 1 < sizeof chunk) {
                size_t at = rnd() % (len + 1);
                memmove(chunk + at + 1, chunk + at, len - at);
                chunk[at] = (uint8_t)rnd();
                len++;
            } else if (len > 1) {
                size_t at = rnd() % len;
                memmove(chunk + at, chunk + at + 1, len - at - 1);
                len--;
            }
        }
        /* mode 3: left valid */

        st = decode_both(chunk, len, &f);
        expect = cobs_ref(chunk, len, dec);
        {
            tr_status want;
            if (len == 0) want = TR_TOO_SHORT;
            else if (expect < 0) want = TR_BAD_COBS;
            else if (expect < (long)TR_MIN_FRAME) want = TR_TOO_SHORT;
            else if (expect > (long)TR_MAX_FRAME) want = TR_TOO_LONG;
            else if (crc_ref(dec, (size_t)expect) != 0) want = TR_BAD_CRC;
            else if (dec[0] != 1) want = TR_BAD_VERSION;
            else want = TR_OK;
            if (st != want) {
                fprintf(stderr, "fuzz %ld: got %d want %d\n", it, st, want);
                return 1;
            }
        }
        if (st == TR_OK) {
            size_t w;
            accepted++;
            w = tr_frame_encode(&f, again, sizeof again);
            if (w != len + 1 || memcmp(again, chunk, len) != 0 || again[len] != 0) {
                fprintf(stderr, "fuzz %ld: re-encoding differs\n", it);
                return 1;
            }
        }
        /* and through a board, as one stream chunk (a chunk with a zero inside
           is several chunks to a receiver: only fed, for robustness) */
        {
            int has_zero = memchr(chunk, 0, len) != NULL;
            for (i = 0; i < len; i++) {
                if (tr_board_receive(&fb, chunk[i], &rep) && !has_zero) {
                    fprintf(stderr, "fuzz %ld: reply before delimiter\n", it);
                    return 1;
                }
            }
            if (tr_board_receive(&fb, 0, &rep) && !has_zero) {
                tr_frame back;
                if (st != TR_OK || rep.len < 9 || rep.wire[rep.len - 1] != 0 ||
                    tr_frame_decode(rep.wire, rep.len - 1u, &back) != TR_OK || back.len < 1 ||
                    back.cmd != (uint8_t)(f.cmd | 0x80u) || back.seq != f.seq || back.dst != 0 ||
                    back.src != 5) {
                    fprintf(stderr, "fuzz %ld: bad reply st=%d len=%u\n", it, st, rep.len);
                    return 1;
                }
            }
        }
    }
    printf("fuzz ok %ld %ld\n", iterations, accepted);
    return 0;
}

/* ---- main loop ---------------------------------------------------------- */

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read the next command word, skipping blank lines, into word[WORD_MAX]. Returns the
   character after it, or EOF at the end of input (word empty). */
static int read_word(char *word)
{
    size_t n = 0;
    int c;
    do {
        c = getchar();
    } while (is_space(c));
    while (c != EOF && !is_space(c)) {
        if (n + 1 >= WORD_MAX) {
            die("command word too long");
        }
        word[n++] = (char)c;
        c = getchar();
    }
    word[n] = '\0';
    return c;
}

/* The rest of a command's line after its word, into line[] as "WORD REST". */
static void read_rest(const char *word, int after)
{
    size_t n = strlen(word);
    memcpy(line, word, n);
    line[n++] = ' ';
    line[n] = '\0';
    if (after == '\n' || after == EOF || !fgets(line + n, (int)(sizeof line - n), stdin)) {
        return;
    }
    if (!strchr(line + n, '\n') && !feof(stdin)) {
        fprintf(stderr, "line longer than %d bytes\n", BOARD_SIM_LINE_MAX - 1);
        exit(2);
    }
}

/* `send HEX`: feed the bytes to the board as they are read, printing each reply. */
static void send_stream(int c)
{
    int any = 0, digits = 0, hi = 0, empty;
    tr_reply rep;
    while (c == ' ' || c == '\t') {
        c = getchar();
    }
    empty = c == '-';
    for (c = empty ? getchar() : c; c != EOF && !is_space(c); c = getchar(), digits++) {
        int v = hexval(c);
        if (v < 0 || empty) {
            die("bad hex");
        }
        if (digits % 2 == 0) {
            hi = v;
        } else if (tr_board_receive(&board, (uint8_t)(hi * 16 + v), &rep)) {
            printf("%sreply ", any ? " " : "");
            print_hex(rep.wire, rep.len);
            printf(" %u", (unsigned)rep.delay_ms);
            any = 1;
        }
    }
    if (!empty && (digits == 0 || digits % 2 != 0)) {
        die("bad hex");
    }
    while (c != EOF && c != '\n') {
        c = getchar();
    }
    printf("%s\n", any ? "" : "none");
}

int main(void)
{
    char word[WORD_MAX];
    int after;
    while ((after = read_word(word)) != EOF || word[0]) {
        char *cmd;
        if (strcmp(word, "send") == 0) {
            if (!have_board) {
                fprintf(stderr, "no board\n");
                return 2;
            }
            send_stream(after);
            fflush(stdout);
            continue;
        }
        read_rest(word, after);
        cmd = strtok(line, " \t\r\n");
        if (strcmp(cmd, "crc") == 0) {
            long n = hex_arg(bytes, sizeof bytes);
            printf("%04x\n", (unsigned)tr_crc16(bytes, (size_t)n));
        } else if (strcmp(cmd, "cobs") == 0) {
            static uint8_t enc[BYTES_MAX + BYTES_MAX / 254 + 1];
            long n = hex_arg(bytes, sizeof bytes);
            size_t w = tr_cobs_encode(bytes, (size_t)n, enc, sizeof enc);
            print_hex(enc, w);
            printf("\n");
        } else if (strcmp(cmd, "decode") == 0) {
            long n = hex_arg(bytes, sizeof bytes);
            tr_frame f;
            tr_status st = decode_both(bytes, (size_t)n, &f);
            if (st == TR_OK) {
                printf("ok %u %u %u %u %u ", f.version, f.dst, f.src, f.seq, f.cmd);
                print_hex(f.payload, f.len);
                printf("\n");
            } else {
                printf("err %d\n", (int)st);
            }
        } else if (strcmp(cmd, "encode") == 0) {
            tr_frame f;
            uint8_t wire[TR_MAX_WIRE];
            size_t w;
            long n;
            f.version = (uint8_t)num();
            f.dst = (uint8_t)num();
            f.src = (uint8_t)num();
            f.seq = (uint8_t)num();
            f.cmd = (uint8_t)num();
            n = hex_arg(bytes, sizeof bytes);
            if (n > (long)TR_MAX_PAYLOAD) {
                printf("err too_long\n");
                continue;
            }
            f.len = (uint8_t)n;
            memcpy(f.payload, bytes, (size_t)n);
            w = tr_frame_encode(&f, wire, sizeof wire);
            print_hex(wire, w);
            printf("\n");
        } else if (strcmp(cmd, "prng") == 0) {
            uint8_t uid[8];
            uint32_t x;
            long long i, n;
            uid_arg(uid);
            n = num();
            x = tr_prng_seed(uid);
            printf("%lu", (unsigned long)x);
            for (i = 0; i < n; i++) {
                printf(" %lu", (unsigned long)tr_prng_next(&x));
            }
            printf("\n");
        } else if (strcmp(cmd, "rule") == 0) {
            uint8_t rule, uid[8];
            uint32_t prob, x, r;
            int64_t gain, db;
            int32_t lo, hi, state, cal[4], node[4], after;
            long long i, draws;
            tr_drops d;
            int updated;
            rule = (uint8_t)num();
            prob = (uint32_t)num();
            gain = (int64_t)num();
            db = (int64_t)num();
            lo = (int32_t)num();
            hi = (int32_t)num();
            state = (int32_t)num();
            uid_arg(uid);
            draws = num();
            for (i = 0; i < 4; i++) cal[i] = (int32_t)num();
            for (i = 0; i < 4; i++) node[i] = (int32_t)num();
            x = tr_prng_seed(uid);
            for (i = 0; i < draws; i++) {
                (void)tr_prng_next(&x);
            }
            r = tr_prng_next(&x);
            tr_compute_drops(node, cal, &d);
            updated = tr_rule_apply(rule, r, prob, gain, db, d.contrast_uv2, state, lo, hi, &after);
            printf("%lld %lld %lld %d %ld\n", (long long)d.dv_free_uv, (long long)d.dv_clamped_uv,
                   (long long)d.contrast_uv2, updated, (long)after);
        } else if (strcmp(cmd, "board") == 0) {
            tr_board_config cfg;
            int i;
            memset(&cfg, 0, sizeof cfg);
            memset(&hw, 0, sizeof hw);
            cfg.address = (uint8_t)num();
            uid_arg(cfg.uid);
            cfg.kind = (uint8_t)num();
            cfg.state_min = (int32_t)num();
            cfg.state_max = (int32_t)num();
            cfg.initial_state = (int32_t)num();
            cfg.fw_major = (uint8_t)num();
            cfg.fw_minor = (uint8_t)num();
            cfg.fw_patch = (uint8_t)num();
            for (i = 0; i < 4; i++) hw.node_uv[i] = (int32_t)num();
            hw.uptime_ms = (uint32_t)num();
            hal.user = &hw;
            hal.read_nodes_uv = sim_read_nodes;
            hal.set_actuator = sim_set_actuator;
            hal.nvs_load = sim_nvs_load;
            hal.nvs_store = sim_nvs_store;
            hal.millis = sim_millis;
            tr_board_init(&board, &cfg, &hal);
            have_board = 1;
            printf("ok\n");
        } else if (strcmp(cmd, "nodes") == 0) {
            int i;
            for (i = 0; i < 4; i++) hw.node_uv[i] = (int32_t)num();
            printf("ok\n");
        } else if (strcmp(cmd, "uptime") == 0) {
            hw.uptime_ms = (uint32_t)num();
            printf("ok\n");
        } else if (strcmp(cmd, "nvs_fail") == 0) {
            hw.nvs_fail = (int)num();
            printf("ok\n");
        } else if (strcmp(cmd, "fuzz") == 0) {
            uint32_t seed = (uint32_t)num();
            long n = (long)num();
            if (fuzz(seed, n) != 0) {
                return 1;
            }
        } else {
            fprintf(stderr, "unknown command %s\n", cmd);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
