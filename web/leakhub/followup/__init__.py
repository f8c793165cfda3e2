"""Repair follow-up (issue 18 item 7): the daily e-mail to assignees with their due and
overdue leaks. The fields (assignee, due date, order number, re-measurement) are the leak's;
the overdue rule and counts are in leaks/service.py."""
