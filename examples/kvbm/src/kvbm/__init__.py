"""KV Block Manager: hands out and reclaims KV-cache blocks (``BlockPool``, in C).

NIXL, which moves blocks between GPUs and hosts, comes from the ``nixl`` wheel
at run time; it is never bundled into this wheel (matrix.toml lists it under
``external_libs``, so ``auditwheel repair`` excludes it).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from kvbm._pool import BlockPool

__all__ = ["BlockPool", "__version__"]

try:
    __version__ = version("kvbm")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"
