"""The parts of the matrix reader (``buildmatrix.loader``): line numbers for errors,
the ``Section`` every table is read through, one reader per table, and the checks
across tables run on the built ``Matrix``."""
