"""Test helpers shared by tests/unit, tests/integration and bench/ (on pytest's pythonpath as
the package `support`; bench/ puts tests/ on sys.path itself). Test modules import helpers from
here, never from each other:

- stackctl: the native stack as the integration tests see it (start/attach/stop through
  scripts/stack.py, leakctl, SQL, a second Caddy, requests from another source address)
- kc: signing in through the real Keycloak login page with a plain HTTP client
- tokens: API access tokens through the authorization-code flow (Person, api, invite)
- forms: a browser without JavaScript (Browser, Form) and data made through the forms
- browser: Debian's Chromium driven by Playwright, trusting the stack's CA
- reporting_data: locations, leaks, photos and PDF text for unit and integration tests
- session: signing a Flask test client in without Keycloak (unit tests)
- ldap: Debian's OpenLDAP server (slapd) started unprivileged on a free port, seeded with
  two users and a group (the company-directory tests)
"""
