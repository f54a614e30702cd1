/*
 * sizes2.c - the RAM a port gives protocol 2's core, as objects the linker can measure:
 * one board (all its state: receiver, state store's view, the firmware update's block
 * bitmap) and one reply buffer. `arm-none-eabi-nm -S` reports their sizes (make arm2;
 * tests/test_firmware_arm_v2.py checks them against the budget in README.md). Not linked
 * into anything.
 */
#include "twinrig_core2.h"

tr2_board tr2_size_of_board;
tr2_reply tr2_size_of_reply;
