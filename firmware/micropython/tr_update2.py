# twinrig edge board: firmware update over the bus (protocol 2), A/B image slots.
#
# PROTOCOL.md "Firmware update". The two slots are files (fw_slot0.bin,
# fw_slot1.bin); the boot record (fw_boot.json) names the active slot, each slot's
# version, size and CRC-32, a trial boot pending, and the outcome of the last update
# (confirmed or rolled back, with its version and size) that fw_status reports until
# the next fw_begin. fw_begin erases the inactive slot (0xFF), fw_block programs a
# block and reads it back, fw_verify takes the CRC-32 of the slot, fw_swap writes the
# boot record for a trial boot; boot() (every start-up) confirms the new slot when its
# self-test passes (its own CRC-32 and the board's check) or goes back to the old one.
# The block bitmap is in RAM: a restart while receiving or verified drops the update.
#
#   fw = FirmwareUpdate(flash, fw_version, self_test)   # self_test(): True/False
#   cause = fw.boot()        # RC_FIRMWARE_SWAP, RC_ROLLBACK or None

import json

import tr_protocol2 as P

PH_IDLE = 0
PH_RECEIVING = 1
PH_VERIFIED = 2
PH_CONFIRMED = 3
PH_ROLLED_BACK = 4

RC_FIRMWARE_SWAP = 4
RC_ROLLBACK = 5

BOOT_FILE = "fw_boot.json"
SLOT_FILES = ("fw_slot0.bin", "fw_slot1.bin")
MISSING_LISTED = 8
NO_BLOCK = 0xFFFF


class FirmwareUpdate:
    def __init__(self, flash, fw_version, self_test=None):
        self.flash = flash
        self.fw_version = tuple(fw_version)
        self.self_test = self_test
        self._ff = bytearray(b"\xff" * P.BLOCK_SIZE)
        self._check = bytearray(P.BLOCK_SIZE)
        self._buf = bytearray(512)
        self._load()

    # ------------------------------------------------------------ the boot record

    def _load(self):
        rec = None
        data = self.flash.read(BOOT_FILE)
        if data:
            try:
                rec = json.loads(data.decode())
            except (ValueError, UnicodeError):
                rec = None
        if not isinstance(rec, dict):
            rec = {}
        self.active = rec.get("active", 0)
        self.trial = rec.get("trial", False)
        self.versions = rec.get("versions", [list(self.fw_version), None])
        self.slot_crc = rec.get("crcs", [0, 0])
        self.slot_size = rec.get("sizes", [0, 0])
        self.phase = rec.get("phase", PH_IDLE)
        self.size = rec.get("size", 0)
        self.image_crc32 = rec.get("crc", 0)
        self.version = tuple(rec.get("version", (0, 0, 0)))
        self.blocks = rec.get("blocks", 0)
        self._have = bytearray(0)
        self.missing_n = 0

    def _save(self):
        rec = {"active": self.active, "trial": self.trial, "versions": self.versions,
               "crcs": self.slot_crc, "sizes": self.slot_size, "phase": self.phase,
               "size": self.size, "crc": self.image_crc32, "version": list(self.version),
               "blocks": self.blocks}
        self.flash.write(BOOT_FILE, json.dumps(rec).encode())

    def _forget(self):
        self.size = 0
        self.image_crc32 = 0
        self.version = (0, 0, 0)
        self.blocks = 0
        self._have = bytearray(0)
        self.missing_n = 0

    @property
    def running_version(self):
        v = self.versions[self.active]
        return tuple(v) if v else self.fw_version

    def boot(self):
        """A start-up: the boot record read again; a trial boot confirms the new slot
        or rolls back (returns the reset cause), any other start-up drops an update in
        progress (returns None)."""
        self._load()
        if not self.trial:
            if self.phase in (PH_RECEIVING, PH_VERIFIED):
                self._forget()
                self.phase = PH_IDLE
            return None
        self.trial = False
        new = 1 - self.active
        ok = (self.versions[new] is not None
              and self.flash.crc32(SLOT_FILES[new], self.slot_size[new], self._buf, P.crc32)
              == self.slot_crc[new])
        if ok and self.self_test is not None:
            ok = bool(self.self_test())
        if ok:
            self.active = new
            self.phase = PH_CONFIRMED
            cause = RC_FIRMWARE_SWAP
        else:
            self.phase = PH_ROLLED_BACK
            cause = RC_ROLLBACK
        try:
            self._save()
        except OSError:
            pass
        return cause

    # ------------------------------------------------------------ the commands

    def begin(self, size, image_crc32, version):
        """fw_begin: (status, blocks)."""
        if not 1 <= size <= P.IMAGE_MAX_BYTES:
            return P.OUT_OF_RANGE, 0
        inactive = 1 - self.active
        blocks = -(-size // P.BLOCK_SIZE)
        try:
            self.flash.fill(SLOT_FILES[inactive], blocks * P.BLOCK_SIZE, self._ff)
        except OSError:
            return P.STORAGE, 0
        self._forget()
        self.versions[inactive] = None
        self.slot_crc[inactive] = 0
        self.slot_size[inactive] = 0
        self.phase = PH_RECEIVING
        try:
            self._save()
        except OSError:
            return P.STORAGE, 0
        self.size = size
        self.image_crc32 = image_crc32
        self.version = tuple(version)
        self.blocks = blocks
        self._have = bytearray((blocks + 7) >> 3)
        self.missing_n = blocks
        return P.OK, blocks

    def _written(self, block):
        return self._have[block >> 3] & (1 << (block & 7))

    def write_block(self, image_crc32, block, block_crc32, data):
        """fw_block: the checks in the spec's order, then program and read back."""
        if self.phase != PH_RECEIVING or image_crc32 != self.image_crc32:
            return P.FW_SEQUENCE
        if block >= self.blocks:
            return P.OUT_OF_RANGE
        if P.crc32(data) != block_crc32:
            return P.BAD_BLOCK_CRC
        try:
            self.flash.program(SLOT_FILES[1 - self.active], block * P.BLOCK_SIZE, data,
                               self._check)
        except OSError:
            return P.STORAGE
        if not self._written(block):
            self._have[block >> 3] |= 1 << (block & 7)
            self.missing_n -= 1
        return P.OK

    def status(self):
        """fw_status's fields after the status byte."""
        listed = [NO_BLOCK] * MISSING_LISTED
        missing = 0
        if self.phase == PH_RECEIVING:
            missing = self.missing_n
            n = 0
            b = 0
            while n < MISSING_LISTED and b < self.blocks:
                if not self._written(b):
                    listed[n] = b
                    n += 1
                b += 1
        v = self.version
        return [self.phase, v[0], v[1], v[2], self.blocks, missing] + listed

    def verify(self):
        if self.phase == PH_VERIFIED:
            return P.OK
        if self.phase != PH_RECEIVING:
            return P.FW_SEQUENCE
        if self.missing_n:
            return P.FW_INCOMPLETE
        new = 1 - self.active
        crc = self.flash.crc32(SLOT_FILES[new], self.size, self._buf, P.crc32)
        if crc is None:
            return P.STORAGE
        if crc != self.image_crc32:
            self._forget()
            self.phase = PH_IDLE
            return P.FW_IMAGE_CRC
        self.versions[new] = list(self.version)
        self.slot_crc[new] = crc
        self.slot_size[new] = self.size
        self.phase = PH_VERIFIED
        return P.OK

    def swap(self):
        """fw_swap: a verified image gets a trial boot (the restart is the caller's)."""
        if self.phase != PH_VERIFIED:
            return P.FW_SEQUENCE
        self.trial = True
        try:
            self._save()
        except OSError:
            self.trial = False
            return P.STORAGE
        return P.OK
