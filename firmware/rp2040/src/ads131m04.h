#ifndef TR_ADS131M04_H
#define TR_ADS131M04_H

#include <stdint.h>

/* SPI0 at 15.625 MHz, mode 1; the ADC set to OSR 128 (32 kSPS). 0 when it answered as an
   ADS131M04 (ID and write acknowledgement checked), else nonzero. */
int adc_init(void);
/* The four node voltages of the next conversion (uV), from the main loop. 0 = ok. */
int adc_read_next(int32_t node_uv[4]);
/* Restart the digital filter with a SYNC/RESET pulse; the next DRDY (three conversion
   periods later) carries the first conversion made wholly after the pulse. */
void adc_sync(void);
/* From the DRDY interrupt: read the frame now. 0 = ok (CRC matched). */
int adc_read_frame_now(int32_t node_uv[4]);
/* Frames refused for a bad CRC or a bad response since power-on. */
uint32_t adc_errors(void);

#endif
