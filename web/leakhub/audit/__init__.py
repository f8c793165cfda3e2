"""Audit trail: every change of organization data, written with the change (DESIGN §3.6)."""
