"""`buildmatrix installs`: the real glibc floor and installability of every extra, from the live index.

Modules: ``cells`` (the cells the matrix allows, verdicts), ``resolve`` (uv,
nothing built; source-only packages reported and worked around; the wheel an
installer picks), ``http`` and ``remotezip`` (single HTTP range requests; a
whole download where ranges are ignored), ``verneed`` (GLIBC needs from the
front of an ELF member, by ``vna_hash``), ``scan`` (per-wheel scans, cached by
sha256 and validated on read), ``results`` (the committed results: docs page
and verify).
"""
