#ifndef TR_LEARN_H
#define TR_LEARN_H

#include <stdint.h>

/* The learn trigger on PIN_LEARN: both edges interrupt (2.19.3). */
void learn_init(void);
/* 1 when a learn pulse has ended and its snapshot is taken: the update is due. */
int learn_due(void);
/* The snapshot of the due learn (uV: a_F, b_F, a_C, b_C); 0 = ok, else the ADC failed. */
int learn_snapshot(int32_t node_uv[4]);
/* The update is done; the trigger takes the next pulse. */
void learn_done(void);

#endif
