"""PDF reports per survey and per location (reportlab platypus)."""
