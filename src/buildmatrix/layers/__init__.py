"""Read files out of a container image without running it and without extracting it.

``buildmatrix.layers.image`` opens an image (layout, archive, local storage or
registry) as one ``ImageView`` per platform; ``buildmatrix.layers.scan`` reads its
layers; ``buildmatrix.layers.digest`` checks every blob against its digest.
"""

from __future__ import annotations

from buildmatrix.layers.digest import BlobDigestError
from buildmatrix.layers.image import ImageView, open_image
from buildmatrix.layers.scan import (
    ImageError,
    InstalledDistribution,
    Layer,
    ScanRequest,
    ScanResult,
)

__all__ = [
    "BlobDigestError",
    "ImageError",
    "ImageView",
    "InstalledDistribution",
    "Layer",
    "ScanRequest",
    "ScanResult",
    "open_image",
]
