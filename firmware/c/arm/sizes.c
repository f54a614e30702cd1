/*
 * sizes.c - the RAM a port gives the core, as objects the linker can measure: one board
 * (all its state, receiver buffer included) and one reply buffer. `arm-none-eabi-nm -S`
 * reports their sizes (make arm; tests/test_firmware_arm.py checks them against the
 * budget in README.md). Not linked into anything.
 */
#include "twinrig_core.h"

tr_board tr_size_of_board;
tr_reply tr_size_of_reply;
