"""How many websockets each client address and each signed-in caller holds open.

A socket costs a task, buffers and, per subscription, a place in the event fan-out; a
stranger opening thousands of them would starve everyone else. The counts are this
process's: with several workers each keeps its own, so a caller may hold the cap in each.
"""

from __future__ import annotations

from collections import Counter


class OpenSockets:
    def __init__(self, *, per_address: int, per_identity: int) -> None:
        self.per_address = per_address
        self.per_identity = per_identity
        self._addresses: Counter[str] = Counter()
        self._identities: Counter[str] = Counter()

    def open_for_address(self, address: str) -> bool:
        """Count one more socket of `address`; False (and nothing counted) if it has its cap."""
        return _take(self._addresses, address, self.per_address)

    def close_for_address(self, address: str) -> None:
        _give_back(self._addresses, address)

    def open_for_identity(self, subject: str) -> bool:
        return _take(self._identities, subject, self.per_identity)

    def close_for_identity(self, subject: str) -> None:
        _give_back(self._identities, subject)


def _take(counts: Counter[str], key: str, cap: int) -> bool:
    if counts[key] >= cap:
        return False
    counts[key] += 1
    return True


def _give_back(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
