"""Realistic demo data (`leakctl demo seed`)."""
