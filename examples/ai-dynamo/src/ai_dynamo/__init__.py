"""Dynamo meta package: installs ai-dynamo-runtime and, through an extra, one framework.

``pip install "ai-dynamo[vllm]"`` pulls the runtime at the same version and the
vLLM and NIXL versions the release was built and tested with. The extras are
generated from matrix.toml when the wheel is built.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("ai-dynamo")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"
