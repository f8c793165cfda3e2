"""Departments (issue 15 part 2): placeholder, grown by the departments work."""


def up(db):
    pass
