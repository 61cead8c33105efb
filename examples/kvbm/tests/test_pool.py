"""The package's own tests; cibuildwheel runs them against each built wheel."""

import pytest
from kvbm import BlockPool


def test_allocate_and_release_round_trip() -> None:
    pool = BlockPool(4)
    assert (pool.capacity, pool.free) == (4, 4)
    first = pool.allocate(3)
    assert first == [0, 1, 2]
    assert pool.free == 1
    pool.release([1])
    assert pool.allocate(2) == [1, 3]
    assert pool.free == 0


def test_exhaustion_and_bad_frees_leave_the_pool_unchanged() -> None:
    pool = BlockPool(2)
    ids = pool.allocate(2)
    with pytest.raises(MemoryError):
        pool.allocate(1)
    with pytest.raises(ValueError, match="not in this pool"):
        pool.release([ids[0], 9])
    with pytest.raises(ValueError, match="double free"):
        pool.release([ids[0], ids[0]])
    assert pool.free == 0
    pool.release(ids)
    assert pool.free == 2
    with pytest.raises(ValueError, match="double free"):
        pool.release([ids[0]])
