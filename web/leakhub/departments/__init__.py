"""Departments: groups of users per organization, their members (by hand or from the
directory's groups at sign-in) and their grants (docs/departments.md)."""
