"""Exports of the leak list (CSV, XLSX) with the list's own filter."""
