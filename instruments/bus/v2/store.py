"""The board's state store: the learned target kept across resets, with a generation counter.

``firmware/protocol/PROTOCOL.md``, "Resets and the stored state". ``store_state`` writes one
record (generation, target) into whichever of two flash sectors does not hold the newest
record, erasing it first; at start-up the board restores the valid record of the highest
generation. A write cut short by a power loss leaves that sector invalid (erased, or
programmed with a record whose CRC fails), so the previous record is restored: a store never
loses the state it replaces. ``reset`` in mode ``factory`` erases both sectors: generation 0,
nothing stored, the board starts from its power-on state.

The generation counts the records written since the store was last erased: 1 for the first,
0 when nothing is stored. At 100,000 erase cycles per sector (W25Q16JV datasheet) it cannot
reach 2^32 within the flash's life.

Units: the target in state units (taps, or gate uV).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Record", "StateStore", "StorageError"]


class StorageError(Exception):
    """The flash reported a failed erase or program (the ``storage`` status)."""


@dataclass(frozen=True)
class Record:
    """One stored record: its generation (1, 2, ...) and the target state."""

    generation: int
    target: int


class StateStore:
    """Two sectors of records; :meth:`latest` is what a start-up restores.

    ``fails``: every write raises :class:`StorageError` and leaves the sectors as they were.
    """

    def __init__(self, fails: bool = False) -> None:
        self.fails = bool(fails)
        self.sectors: list[Record | None] = [None, None]
        self.writes = 0

    def latest(self) -> Record | None:
        """The valid record of the highest generation, or None."""
        valid = [r for r in self.sectors if r is not None]
        return max(valid, key=lambda r: r.generation) if valid else None

    @property
    def generation(self) -> int:
        """The newest record's generation, 0 when nothing is stored."""
        r = self.latest()
        return r.generation if r else 0

    def write(self, target: int, *, power_cut: bool = False) -> int:
        """Store ``target`` as the next generation; returns it. With ``power_cut`` the write
        stops after the erase (the sector left invalid) and returns 0."""
        if self.fails:
            raise StorageError("flash erase or program failed")
        newest = self.latest()
        index = 0 if newest is None or self.sectors[1] is newest else 1
        self.sectors[index] = None  # the erase
        self.writes += 1
        if power_cut:
            return 0
        record = Record((newest.generation if newest else 0) + 1, int(target))
        self.sectors[index] = record
        return record.generation

    def erase(self) -> None:
        """Erase both sectors (``reset`` in mode ``factory``)."""
        if self.fails:
            raise StorageError("flash erase failed")
        self.sectors = [None, None]
