"""Leak register against the real stack (PostgreSQL): demo seed through leakctl, audit chain,
list filters and the leak pages through Caddy are exercised on PostgreSQL SQL."""
import json

from kc import new_org


def test_demo_seed_on_postgres_keeps_the_audit_chain(stack):
    slug, _, _ = new_org(stack, prefix="seed")
    out = stack.leakctl("demo", "seed", "--org", slug, "--leaks", "3000", "--sites", "2",
                        "--seed", "5", "--json", timeout=900)
    result = json.loads(out.stdout)
    assert result["leaks"] == 3000 and result["sites"] == 2
    assert result["audit_entries"] == 3000 + result["status_changes"]
    again = json.loads(stack.leakctl("demo", "seed", "--org", slug, "--leaks", "5",
                                     "--sites", "1", "--json").stdout)
    assert again["leaks"] == 5
    report = json.loads(stack.leakctl("audit", "verify", "--org", slug, "--json").stdout)
    reports = report if isinstance(report, list) else [report]
    assert all(r["ok"] for r in reports), reports


def test_demo_seed_errors_are_one_line(stack):
    out = stack.leakctl("demo", "seed", "--org", "does-not-exist", "--leaks", "1", check=False)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not exist" in lines[0], out.stderr
    out = stack.leakctl("demo", "seed", "--org", "x", "--leaks", "-5", check=False)
    assert out.returncode != 0 and "--leaks" in out.stderr
