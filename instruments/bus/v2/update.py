"""Firmware update over the bus: the board's A/B image slots and the update's state machine.

``firmware/protocol/PROTOCOL.md``, "Firmware update". A board holds two image slots; it runs
the *active* one. ``fw_begin`` (size, CRC-32, version) erases the other slot and starts
*receiving*; ``fw_block`` writes one 128-byte block (checked against its own CRC-32 and read
back); ``fw_status`` says which blocks are still missing; ``fw_verify`` checks the CRC-32 of
the whole image once none is missing (*verified*); ``fw_swap`` marks the new slot for a trial
boot and restarts. At start-up the new image tests itself and confirms (*confirmed*: it is
the active slot from then on); if it fails its self-test, or hangs until the watchdog
resets the board, the boot loader starts the old image again (*rolled_back*). Any other
restart during *receiving* or *verified* forgets the update (*idle*): the block bitmap is in
RAM.

CRC-32 is CRC-32/ISO-HDLC (zlib's, ``binascii.crc32`` in MicroPython). Units: sizes bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

from .constants import BLOCK_SIZE, IMAGE_MAX_BYTES, MISSING_LISTED, NO_BLOCK, Error, Phase, ResetCause

__all__ = ["Image", "FirmwareUpdate", "crc32", "image_blocks"]


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF)."""
    return zlib.crc32(bytes(data)) & 0xFFFFFFFF


def image_blocks(image: bytes) -> list[bytes]:
    """An image cut into 128-byte blocks, the last padded with 0xFF."""
    image = bytes(image)
    n = -(-len(image) // BLOCK_SIZE)
    return [image[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE].ljust(BLOCK_SIZE, b"\xff") for i in range(n)]


@dataclass(frozen=True)
class Image:
    """An image in a slot: its firmware version (major, minor, patch) and bytes."""

    version: tuple[int, int, int]
    data: bytes


class FirmwareUpdate:
    """The two slots and the update in progress.

    Args:
        image: the image in the active slot at manufacture.
        self_test: whether an image passes its self-test at its trial boot (default: all do).
        storage_fails: every flash program fails (``storage``).
    """

    def __init__(self, image: Image, self_test: Callable[[Image], bool] = lambda image: True,
                 storage_fails: bool = False) -> None:
        self.slots: list[Image | None] = [image, None]
        self.active = 0
        self.self_test = self_test
        self.storage_fails = bool(storage_fails)
        self.phase = Phase.IDLE
        self.trial = False
        self._forget()

    def _forget(self) -> None:
        self.size = 0
        self.image_crc32 = 0
        self.version = (0, 0, 0)
        self.blocks = 0
        self._data = bytearray()
        self._have: set[int] = set()

    @property
    def running(self) -> Image:
        return self.slots[self.active]

    @property
    def missing(self) -> list[int]:
        """Block numbers not yet written, in order."""
        return [b for b in range(self.blocks) if b not in self._have] if self.phase == Phase.RECEIVING else []

    def begin(self, size: int, image_crc32: int, version: tuple[int, int, int]) -> tuple[Error, int]:
        """``fw_begin``: returns (status, blocks)."""
        if not 1 <= size <= IMAGE_MAX_BYTES:
            return Error.OUT_OF_RANGE, 0
        if self.storage_fails:
            return Error.STORAGE, 0
        self._forget()
        self.phase = Phase.RECEIVING
        self.size, self.image_crc32, self.version = int(size), int(image_crc32), tuple(version)
        self.blocks = -(-self.size // BLOCK_SIZE)
        self._data = bytearray(b"\xff" * (self.blocks * BLOCK_SIZE))
        self.slots[1 - self.active] = None  # erased
        return Error.OK, self.blocks

    def write_block(self, image_crc32: int, block: int, block_crc32: int, data: bytes) -> Error:
        """``fw_block``: checks in the spec's order, then programs and reads back."""
        if self.phase != Phase.RECEIVING or image_crc32 != self.image_crc32:
            return Error.FW_SEQUENCE
        if block >= self.blocks:
            return Error.OUT_OF_RANGE
        if crc32(data) != block_crc32:
            return Error.BAD_BLOCK_CRC
        if self.storage_fails:
            return Error.STORAGE
        self._data[block * BLOCK_SIZE:(block + 1) * BLOCK_SIZE] = data
        self._have.add(block)
        return Error.OK

    def status(self) -> dict:
        """``fw_status``'s fields."""
        missing = self.missing
        listed = (missing[:MISSING_LISTED] + [NO_BLOCK] * MISSING_LISTED)[:MISSING_LISTED]
        major, minor, patch = self.version
        return {"phase": int(self.phase), "fw_major": major, "fw_minor": minor, "fw_patch": patch,
                "blocks": self.blocks, "missing": len(missing), "first_missing": listed}

    def verify(self) -> Error:
        """``fw_verify``: verified when no block is missing and the image's CRC-32 matches;
        a CRC mismatch forgets the update (``fw_image_crc``, idle)."""
        if self.phase == Phase.VERIFIED:
            return Error.OK
        if self.phase != Phase.RECEIVING:
            return Error.FW_SEQUENCE
        if self.missing:
            return Error.FW_INCOMPLETE
        if crc32(self._data[:self.size]) != self.image_crc32:
            self._forget()
            self.phase = Phase.IDLE
            return Error.FW_IMAGE_CRC
        self.slots[1 - self.active] = Image(self.version, bytes(self._data[:self.size]))
        self.phase = Phase.VERIFIED
        return Error.OK

    def swap(self) -> Error:
        """``fw_swap``: allowed when verified; the restart that follows is :meth:`boot`'s."""
        if self.phase != Phase.VERIFIED:
            return Error.FW_SEQUENCE
        self.trial = True
        return Error.OK

    def boot(self) -> ResetCause | None:
        """Start-up: a trial boot confirms the new image or rolls back (returns the reset
        cause, ``firmware_swap`` or ``rollback``); any other start-up forgets an update in
        progress and returns None."""
        if not self.trial:
            if self.phase in (Phase.RECEIVING, Phase.VERIFIED):
                self._forget()
                self.phase = Phase.IDLE
            return None
        self.trial = False
        new = 1 - self.active
        if self.self_test(self.slots[new]):
            self.active = new
            self.phase = Phase.CONFIRMED
            return ResetCause.FIRMWARE_SWAP
        self.phase = Phase.ROLLED_BACK
        return ResetCause.ROLLBACK
