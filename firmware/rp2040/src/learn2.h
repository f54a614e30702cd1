#ifndef TR_LEARN2_H
#define TR_LEARN2_H

#include <stdint.h>

/* Protocol 2's learn trigger on PIN_LEARN (learn2.c): every pulse is timed edge to edge in
   the interrupt; each one is handed to the core's tr2_board_trigger with its width, which
   counts a pulse under 20 us as a glitch and learns on any other. */
void learn2_init(void);
/* The next glitch's width (us) when one is waiting: 1, else 0. */
int learn2_next_glitch(uint32_t *width_us);
/* 1 when a pulse of 20 us or more has ended and its snapshot is taken; its width. */
int learn2_due(uint32_t *width_us);
/* The snapshot of the due pulse's rising edge (uV: a_F, b_F, a_C, b_C); 0 = ok. */
int learn2_snapshot(int32_t node_uv[4]);
/* The due pulse is handed over; the trigger takes the next one. */
void learn2_done(void);
/* Work for the main loop: a glitch or a due pulse. */
int learn2_pending(void);

#endif
