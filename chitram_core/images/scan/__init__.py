"""The container walkers behind :class:`chitram_core.images.metadata.MetadataScanner`.

One module per format (``jpeg``, ``png``, ``webp``, ``gif``), each a ``parse`` generator over a
:class:`~chitram_core.images.scan.base.ScanState` and a ``wrap_exif`` that packs a minimal EXIF
block the way that format stores it; :mod:`~chitram_core.images.scan.base` holds what they share.
"""
