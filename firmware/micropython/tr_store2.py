# twinrig edge board: the persistent store of protocol 2 (files on the board's
# filesystem, as hal.CalibrationFile keeps the calibration).
#
#   Flash(root)       the files: read, erase (truncate: an erased sector), write with
#                     read-back, program at an offset (firmware slots); every failure
#                     is an OSError, which the board answers as `storage`
#   StateStore(flash) the learned target in two "sectors" (state_a.bin, state_b.bin),
#                     one record each: magic, generation u32, target i32, CRC-16.
#                     store_state erases the sector that does not hold the newest
#                     record, then writes it: a power cut in between leaves that
#                     sector invalid, so the previous record is restored
#                     (PROTOCOL.md "Resets and the stored state").
#   AddressStore      the bus address (address.bin: magic, address, CRC-16).

import struct

import tr_protocol as P1

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

STATE_MAGIC = b"TRS2"
ADDR_MAGIC = b"TRA2"
STATE_FILES = ("state_a.bin", "state_b.bin")
ADDR_FILE = "address.bin"


class Flash:
    """The board's non-volatile files under ``root`` (a directory prefix, "" for the
    filesystem's root)."""

    def __init__(self, root="", feed=None):
        self.root = root
        self.feed = feed        # called between the pieces of a long erase or CRC (watchdog)

    def path(self, name):
        return self.root + name

    def read(self, name):
        """The file's bytes, or None when it cannot be read."""
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def erase(self, name):
        """An erased sector: the file emptied (OSError when that fails)."""
        with open(self.path(name), "wb") as f:
            f.write(b"")

    def write(self, name, data):
        """Write the whole file and read it back (OSError when they differ)."""
        with open(self.path(name), "wb") as f:
            f.write(data)
        if self.read(name) != bytes(data):
            raise OSError(5)   # EIO

    def fill(self, name, size, chunk):
        """Erase a firmware slot: ``size`` bytes of 0xFF (``chunk``: a 0xFF buffer)."""
        with open(self.path(name), "wb") as f:
            n = len(chunk)
            left = size
            feed = self.feed
            while left >= n:
                f.write(chunk)
                left -= n
                if feed is not None and not left & 0xFFF:
                    feed()
            if left:
                f.write(chunk[:left])

    def program(self, name, offset, data, check):
        """Program ``data`` at ``offset`` and read it back into ``check`` (a buffer of
        the same length): OSError when they differ."""
        with open(self.path(name), "r+b") as f:
            f.seek(offset)
            f.write(data)
            f.seek(offset)
            n = f.readinto(check)
        if n != len(data) or check != data:
            raise OSError(5)

    def crc32(self, name, size, buf, crc32):
        """CRC-32 of the first ``size`` bytes of a file (``buf`` a work buffer); None
        when it cannot be read."""
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return None
        try:
            crc = 0
            left = size
            mv = memoryview(buf)
            feed = self.feed
            while left > 0:
                if feed is not None:
                    feed()
                n = f.readinto(buf)
                if not n:
                    return None
                if n > left:
                    n = left
                crc = crc32(mv[:n], crc)
                left -= n
            return crc
        finally:
            f.close()

    def remove(self, name):
        try:
            os.remove(self.path(name))
        except OSError:
            pass


def _record(magic, body):
    rec = magic + body
    c = P1.crc16(rec)
    return rec + bytes((c >> 8, c & 0xFF))


def _check(data, magic, size):
    """The body of a valid record, or None."""
    if data is None or len(data) != 4 + size + 2 or data[:4] != magic:
        return None
    if P1.crc16(data[:4 + size]) != ((data[4 + size] << 8) | data[5 + size]):
        return None
    return data[4:4 + size]


class StateStore:
    """Two sectors of (generation, target) records; ``latest`` is what a start-up
    restores."""

    def __init__(self, flash):
        self.flash = flash
        self.gens = [0, 0]
        self.targets = [0, 0]
        self.load()

    def load(self):
        for i in range(2):
            body = _check(self.flash.read(STATE_FILES[i]), STATE_MAGIC, 8)
            if body is None:
                self.gens[i] = 0
                self.targets[i] = 0
            else:
                g, t = struct.unpack("<Ii", body)
                self.gens[i] = g
                self.targets[i] = t

    def _newest(self):
        """Index of the valid record of the highest generation, or -1."""
        g = self.gens
        if not g[0] and not g[1]:
            return -1
        return 0 if g[0] >= g[1] else 1

    @property
    def generation(self):
        i = self._newest()
        return 0 if i < 0 else self.gens[i]

    def latest_target(self):
        """The target a start-up restores, or None when nothing is stored."""
        i = self._newest()
        return None if i < 0 else self.targets[i]

    def write(self, target):
        """Store ``target`` as the next generation and return it; OSError when the
        flash fails (the sector then reads as erased or as it was)."""
        newest = self._newest()
        index = 0 if newest < 0 or newest == 1 else 1
        gen = (self.gens[newest] if newest >= 0 else 0) + 1
        name = STATE_FILES[index]
        self.flash.erase(name)
        self.gens[index] = 0
        self.flash.write(name, _record(STATE_MAGIC, struct.pack("<Ii", gen, target)))
        self.gens[index] = gen
        self.targets[index] = target
        return gen

    def erase(self):
        """Both sectors erased (reset mode factory): generation 0."""
        for i in range(2):
            self.flash.erase(STATE_FILES[i])
            self.gens[i] = 0


class AddressStore:
    """The bus address kept in address.bin; ``load`` gives None when none is stored."""

    def __init__(self, flash):
        self.flash = flash

    def load(self):
        body = _check(self.flash.read(ADDR_FILE), ADDR_MAGIC, 1)
        return None if body is None else body[0]

    def store(self, address):
        self.flash.write(ADDR_FILE, _record(ADDR_MAGIC, bytes((address,))))
