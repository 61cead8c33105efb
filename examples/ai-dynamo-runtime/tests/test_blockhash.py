"""The package's own tests; cibuildwheel runs them against each built wheel."""

import random

import ai_dynamo_runtime
import pytest
from ai_dynamo_runtime import block_hashes, common_prefix_blocks, reference, xxh64

# Published XXH64 vectors (xxHash's sanity checks and the Python `xxhash` package).
VECTORS = [
    (b"", 0, 0xEF46DB3751D8E999),
    (b"a", 0, 0xD24EC4F1A98C6E5B),
    (b"abc", 0, 0x44BC2CF5AD770999),
    (b"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1),
]


@pytest.mark.parametrize(("data", "seed", "expected"), VECTORS)
def test_known_vectors(data: bytes, seed: int, expected: int) -> None:
    assert xxh64(data, seed) == expected
    assert reference.xxh64(data, seed) == expected


def test_c_matches_reference_on_every_length() -> None:
    rng = random.Random(7)  # noqa: S311  (test data, not secrets)
    for length in range(0, 100):
        data = bytes(rng.randrange(256) for _ in range(length))
        seed = rng.randrange(1 << 64)
        assert xxh64(data, seed) == reference.xxh64(data, seed)


def test_block_hashes_chain_prefixes() -> None:
    tokens = list(range(1000, 1100))
    hashes = block_hashes(tokens, 16)
    assert len(hashes) == 6  # only full blocks
    assert hashes == reference.block_hashes(tokens, 16)
    changed = block_hashes([*tokens[:40], 7, *tokens[41:]], 16)
    assert common_prefix_blocks(hashes, changed) == 2


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="block_size"):
        block_hashes([1, 2], 0)
    with pytest.raises(OverflowError):
        block_hashes([1 << 32], 1)
    with pytest.raises(TypeError):
        block_hashes([1, "x"], 1)


def test_version_is_the_release_version() -> None:
    assert ai_dynamo_runtime.__version__ != "0+unknown"
