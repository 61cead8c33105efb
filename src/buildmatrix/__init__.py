"""buildmatrix: one matrix.toml in, every release artifact out, and proof that they agree."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
