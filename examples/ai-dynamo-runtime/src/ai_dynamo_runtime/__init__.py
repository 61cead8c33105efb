"""Dynamo runtime core: chained XXH64 hashes of KV-cache token blocks.

A router sends a request to the worker that already holds the longest prefix
of its tokens in KV cache. Prefixes are compared by block: ``block_hashes``
cuts the token ids into blocks of ``block_size`` and gives each full block a
hash that chains the previous one, so equal hashes mean equal prefixes.
The work is done in C (``_blockhash``); ``reference`` is the same algorithm in
pure Python, for tests and for reading.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ai_dynamo_runtime._blockhash import block_hashes, xxh64

__all__ = ["__version__", "block_hashes", "common_prefix_blocks", "xxh64"]

try:
    __version__ = version("ai-dynamo-runtime")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"


def common_prefix_blocks(a: list[int], b: list[int]) -> int:
    """How many leading blocks two block-hash lists share (the reusable KV cache)."""
    shared = 0
    for left, right in zip(a, b, strict=False):  # the shorter list bounds the prefix
        if left != right:
            break
        shared += 1
    return shared
