"""A real OpenLDAP server (Debian's `slapd`) for the company-directory tests.

`Slapd.start()` writes a slapd.conf into a temporary directory (mdb backend, the ppolicy
overlay with a default policy that honours locks), loads the seed entries with `slapadd`
while the server is still down, and starts slapd as this (unprivileged) process's child on a
free 127.0.0.1 port. `stop()` ends that one process (by its pid) and removes the directory.
Both are bounded in time. The directory:

    dc=example,dc=test
      cn=admin                 the bind account (password: ADMIN_PASSWORD)
      ou=people                uid=anna, uid=bert (inetOrgPerson, passwords in PEOPLE)
      ou=groups                cn=maintenance (groupOfNames, member anna)
      ou=policies              cn=default (pwdPolicy: pwdLockout TRUE)

Disabling a user the OpenLDAP way: `lock(uid)` sets ppolicy's pwdAccountLockedTime to
000001010000Z ("locked until an administrator unlocks"), so slapd refuses the user's bind;
the federation's user filter `(!(pwdAccountLockedTime=*))` hides the entry from Keycloak too.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "ldap-admin-Secret-1"
PEOPLE_DN = f"ou=people,{SUFFIX}"
GROUPS_DN = f"ou=groups,{SUFFIX}"
PEOPLE = {
    "anna": {"password": "Anna-Dir-Pass-1", "givenName": "Anna", "sn": "Adler",
             "mail": "anna@example.test"},
    "bert": {"password": "Bert-Dir-Pass-1", "givenName": "Bert", "sn": "Berg",
             "mail": "bert@example.test"},
}
GROUP = "maintenance"
LOCK_FILTER = "(!(pwdAccountLockedTime=*))"
START_TIMEOUT = 20.0


def available() -> bool:
    return Path(SLAPD).exists() and Path(SLAPADD).exists() and shutil.which("ldapmodify")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf(base: Path) -> str:
    schema = "/etc/ldap/schema"
    return f"""\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {base}/slapd.pid
argsfile {base}/slapd.args

database mdb
maxsize 33554432
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {base}/data
index objectClass eq
index uid eq
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{SUFFIX}"
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
"""


def _seed() -> str:
    entries = [f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example Test
""", f"""dn: {ADMIN_DN}
objectClass: organizationalRole
cn: admin
""", f"""dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people
""", f"""dn: {GROUPS_DN}
objectClass: organizationalUnit
ou: groups
""", f"""dn: ou=policies,{SUFFIX}
objectClass: organizationalUnit
ou: policies
""", f"""dn: cn=default,ou=policies,{SUFFIX}
objectClass: person
objectClass: pwdPolicy
cn: default
sn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
"""]
    for uid, p in PEOPLE.items():
        entries.append(f"""dn: uid={uid},{PEOPLE_DN}
objectClass: inetOrgPerson
objectClass: organizationalPerson
objectClass: person
uid: {uid}
cn: {p['givenName']} {p['sn']}
givenName: {p['givenName']}
sn: {p['sn']}
mail: {p['mail']}
userPassword: {p['password']}
""")
    entries.append(f"""dn: cn={GROUP},{GROUPS_DN}
objectClass: groupOfNames
cn: {GROUP}
member: uid=anna,{PEOPLE_DN}
""")
    return "\n".join(entries)


class Slapd:
    def __init__(self, base: Path, port: int, proc: subprocess.Popen):
        self.base, self.port, self.proc = base, port, proc
        self.url = f"ldap://127.0.0.1:{port}"

    @classmethod
    def start(cls) -> Slapd:
        base = Path(tempfile.mkdtemp(prefix="leakhub-slapd-"))
        (base / "data").mkdir()
        (base / "slapd.conf").write_text(_conf(base))
        (base / "seed.ldif").write_text(_seed())
        run = subprocess.run([SLAPADD, "-f", str(base / "slapd.conf"), "-l",
                              str(base / "seed.ldif")], capture_output=True, text=True,
                             timeout=60)
        if run.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"slapadd failed: {run.stderr[-2000:]}")
        port = _free_port()
        log = open(base / "slapd.log", "wb")
        # -d 0: stay in the foreground (our child, ended by pid), log nothing but errors
        proc = subprocess.Popen([SLAPD, "-f", str(base / "slapd.conf"), "-h",
                                 f"ldap://127.0.0.1:{port}/", "-d", "0"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        server = cls(base, port, proc)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                text = (base / "slapd.log").read_text(errors="replace")[-2000:]
                shutil.rmtree(base, ignore_errors=True)
                raise RuntimeError(f"slapd exited with {proc.returncode}: {text}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return server
            except OSError:
                time.sleep(0.2)
        server.stop()
        raise RuntimeError(f"slapd did not listen on 127.0.0.1:{port} within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)

    def modify(self, ldif: str) -> None:
        run = subprocess.run(["ldapmodify", "-x", "-H", self.url, "-D", ADMIN_DN, "-w",
                              ADMIN_PASSWORD], input=ldif, capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 0, run.stderr

    def lock(self, uid: str) -> None:
        """Disable a directory user: ppolicy's permanent lock."""
        self.modify(f"dn: uid={uid},{PEOPLE_DN}\nchangetype: modify\n"
                    "replace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")

    def can_bind(self, uid: str, password: str) -> bool:
        run = subprocess.run(["ldapwhoami", "-x", "-H", self.url, "-D",
                              f"uid={uid},{PEOPLE_DN}", "-w", password],
                             capture_output=True, text=True, timeout=30)
        return run.returncode == 0
