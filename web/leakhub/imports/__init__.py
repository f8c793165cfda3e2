"""Imports of leaks from CSV/XLSX: pluggable formats, column mapping, preview, all-or-nothing."""
