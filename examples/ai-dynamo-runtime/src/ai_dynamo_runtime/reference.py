"""The C extension's algorithms in pure Python: the executable specification."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["block_hashes", "xxh64"]

_MASK = (1 << 64) - 1
P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _round(acc: int, value: int) -> int:
    acc = (acc + value * P2) & _MASK
    return (_rotl(acc, 31) * P1) & _MASK


def _merge(acc: int, value: int) -> int:
    acc ^= _round(0, value)
    return (acc * P1 + P4) & _MASK


def xxh64(data: bytes, seed: int = 0) -> int:
    n = len(data)
    i = 0
    if n >= 32:
        v = [(seed + P1 + P2) & _MASK, (seed + P2) & _MASK, seed, (seed - P1) & _MASK]
        while i + 32 <= n:
            for lane in range(4):
                v[lane] = _round(v[lane], int.from_bytes(data[i + 8 * lane : i + 8 * lane + 8], "little"))
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _MASK
        for lane in v:
            h = _merge(h, lane)
    else:
        h = (seed + P5) & _MASK
    h = (h + n) & _MASK
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i : i + 8], "little"))
        h = (_rotl(h, 27) * P1 + P4) & _MASK
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i : i + 4], "little") * P1) & _MASK
        h = (_rotl(h, 23) * P2 + P3) & _MASK
        i += 4
    while i < n:
        h ^= (data[i] * P5) & _MASK
        h = (_rotl(h, 11) * P1) & _MASK
        i += 1
    h ^= h >> 33
    h = (h * P2) & _MASK
    h ^= h >> 29
    h = (h * P3) & _MASK
    h ^= h >> 32
    return h


def block_hashes(tokens: Iterable[int], block_size: int, seed: int = 0) -> list[int]:
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    hashes: list[int] = []
    parent = seed
    block: list[int] = []
    for token in tokens:
        block.append(token)
        if len(block) == block_size:
            data = parent.to_bytes(8, "little") + b"".join(t.to_bytes(4, "little") for t in block)
            parent = xxh64(data, seed)
            hashes.append(parent)
            block = []
    return hashes
