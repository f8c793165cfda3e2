"""User administration (invite, roles, disable/enable, grants, effective access, organization
settings) and the signed-in user's own sessions. Services take (config, actor, ...) so the
web pages and `leakctl user|grant` share them."""
