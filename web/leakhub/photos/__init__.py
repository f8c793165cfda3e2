"""Leak photos: upload (type sniffed from bytes, EXIF/GPS stripped, thumbnails), storage under
content-hash keys, and authorized delivery (never a static route)."""
