"""Dashboard: organization-wide figures of open leaks and realised savings, aggregated in SQL."""
