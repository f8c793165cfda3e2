"""The Helm chart (deploy/helm/leakhub), validated without a cluster (issue 17):

- `helm lint` and `helm template` with the values files in the chart's ci/ folder (helm built from
  its Go module at a pinned version by scripts/fetch-helm, cached in ~/.cache/leakhub);
- every rendered Kubernetes object against the API schema of a pinned Kubernetes version
  (kubernetes-validate, offline: it ships the schemas);
- the operators' custom resources against their CRDs vendored in tests/unit/deploy/crds/
  (CloudNativePG, cert-manager: published CRDs; Keycloak: a hand-written minimal schema, see
  crds/README.md);
- policy: the restricted Pod Security fields on every pod, resources everywhere, no untagged or
  `latest` image, every referenced Secret rendered or named as the customer's, each workload
  mounting only the secrets it uses, NetworkPolicies for every pod, and the same headers,
  allow-lists and settings as the compose bundle.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "leakhub"
CRDS = Path(__file__).resolve().parent / "crds"
HELM_VERSION = "v4.3.2"          # = scripts/fetch-helm
KUBERNETES_VERSION = "1.37.0"    # the newest schema kubernetes-validate 1.37.0 ships
VALUES_FILES = ("minimal-values.yaml", "ha-values.yaml", "external-db-values.yaml")
RELEASE, NAMESPACE = "leakhub", "leakhub"

# The cold build of helm (scripts/fetch-helm, normally run by scripts/install) happens in the
# first test's fixture and takes minutes on a busy 2-core machine; later runs reuse the cache.
pytestmark = pytest.mark.timeout(3600)


# --- helm --------------------------------------------------------------------------------------

def _helm_path() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "leakhub"
    return cache / f"helm-{HELM_VERSION}" / "bin" / "helm"


@pytest.fixture(scope="module")
def helm() -> Path:
    path = _helm_path()
    if not path.exists():
        subprocess.run([str(REPO / "scripts" / "fetch-helm")], check=True, timeout=3000)
    assert path.exists(), f"scripts/fetch-helm left no {path}"
    out = subprocess.run([str(path), "version", "--short"], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip().startswith(HELM_VERSION), out
    return path


def _run_helm(helm, *args, ok=True):
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HELM_CACHE_HOME": "/tmp/.leakhub-helm-cache",
                               "HELM_CONFIG_HOME": "/tmp/.leakhub-helm-config",
                               "HELM_DATA_HOME": "/tmp/.leakhub-helm-data"})
    if ok:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _template(helm, values_file, *extra, ok=True):
    return _run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                     "--kube-version", KUBERNETES_VERSION, "-f", str(CHART / "ci" / values_file),
                     *extra, ok=ok)


@pytest.fixture(scope="module")
def rendered(helm) -> dict[str, list[dict]]:
    out = {}
    for name in VALUES_FILES:
        docs = [d for d in yaml.safe_load_all(_template(helm, name).stdout) if d]
        assert docs, name
        out[name] = docs
    return out


def _values(name) -> dict:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    override = yaml.safe_load((CHART / "ci" / name).read_text())

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) \
                else v
        return a
    return merge(defaults, override)


def _all(rendered):
    for name, docs in rendered.items():
        for doc in docs:
            yield name, doc


def _kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def _one(docs, kind, suffix):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (kind, suffix, [d["metadata"]["name"] for d in docs])
    return found[0]


# --- lint, template ----------------------------------------------------------------------------

@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_lint(helm, values_file):
    proc = _run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION,
                     "-f", str(CHART / "ci" / values_file))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("missing, message", [
    ({"hostname": ""}, "hostname is required"),
    ({"organization.adminEmail": ""}, "organization.adminEmail is required"),
    ({"secrets.backupIdentity.existingSecret": ""}, "secrets.backupIdentity.existingSecret"),
    ({"ingress.tls.certManager.enabled": "false"}, "ingress.tls"),
    ({"image.tag": "latest"}, "never `latest`"),
])
def test_missing_required_values_stop_with_a_clear_message(helm, missing, message):
    args = [a for k, v in missing.items() for a in ("--set", f"{k}={v}")]
    proc = _template(helm, "minimal-values.yaml", *args, ok=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


# --- Kubernetes API schema ---------------------------------------------------------------------

CUSTOM = {"postgresql.cnpg.io/v1", "cert-manager.io/v1", "k8s.keycloak.org/v2alpha1"}


def test_every_object_matches_the_kubernetes_api_schema(rendered):
    checked = 0
    for name, doc in _all(rendered):
        if doc["apiVersion"] in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} "
                        f"at {list(exc.path)}")
        checked += 1
    assert checked > 40


def test_kubernetes_validate_works_offline():
    """The schemas are files inside the package (no download at validation time)."""
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (root / f"v{KUBERNETES_VERSION}-local-strict" / "deployment-apps-v1.json").is_file()
    assert (root / f"v{KUBERNETES_VERSION}-local-strict" / "_definitions.json").is_file()


# --- operators' custom resources ---------------------------------------------------------------

CRD_SHA256 = {
    "postgresql.cnpg.io_clusters.yaml":
        "553e669392e45577c48c1e3f67a227836f18318b2beb38b285c545c0e948e60a",
    "postgresql.cnpg.io_databases.yaml":
        "3746d39e5d135457dda39cb6667f1a34a47df6d7809412b8a788f0e02570f778",
    "cert-manager.io_certificates.yaml":
        "7ad91029c00ec959d54215b19d3b1a9b7e0247eaa60f987151c2b70d8661f8af",
}


def _strict(schema):
    """The API server rejects unknown fields (kubectl's default field validation is Strict):
    an object schema with properties and without additionalProperties or
    x-kubernetes-preserve-unknown-fields accepts no other keys."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(schema)
    return schema


def _crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for file, digest in CRD_SHA256.items():
        raw = (CRDS / file).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == digest, f"{file} changed: update crds/README.md"
        crd = yaml.safe_load(raw)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
    hand = yaml.safe_load((CRDS / "keycloak-v2alpha1.HAND-WRITTEN.schema.yaml").read_text())
    schemas[(hand["apiVersion"], hand["kind"])] = hand["schema"]
    return schemas


def test_custom_resources_match_the_operators_schemas(rendered):
    schemas = _crd_schemas()
    seen = set()
    for name, doc in _all(rendered):
        if doc["apiVersion"] not in CUSTOM:
            continue
        key = (doc["apiVersion"], doc["kind"])
        assert key in schemas, f"{name}: no vendored schema for {key}"
        errors = sorted(jsonschema.Draft202012Validator(schemas[key]).iter_errors(doc),
                        key=lambda e: list(e.path))
        assert not errors, f"{name}: {doc['kind']} {doc['metadata']['name']}: " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors[:5])
        seen.add(key)
    assert seen == set(schemas), seen


def test_the_crd_schemas_catch_a_wrong_field(rendered):
    """The vendored schemas do reject: a misspelt field and a wrong type."""
    schemas = _crd_schemas()
    cluster = copy.deepcopy(_one(rendered["minimal-values.yaml"], "Cluster", "-pg"))
    cluster["spec"]["instance"] = 3
    assert not jsonschema.Draft202012Validator(
        schemas[("postgresql.cnpg.io/v1", "Cluster")]).is_valid(cluster)
    keycloak = copy.deepcopy(_one(rendered["minimal-values.yaml"], "Keycloak", "-keycloak"))
    keycloak["spec"]["instances"] = "two"
    assert not jsonschema.Draft202012Validator(
        schemas[("k8s.keycloak.org/v2alpha1", "Keycloak")]).is_valid(keycloak)


# --- what the chart must contain ---------------------------------------------------------------

def test_parts_and_their_sizes(rendered):
    minimal, ha, ext = (rendered[n] for n in VALUES_FILES)
    for docs in (minimal, ha, ext):
        web = _one(docs, "Deployment", "-web")
        assert web["spec"]["replicas"] >= 2
        probe = web["spec"]["template"]["spec"]["containers"][0]
        assert probe["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert probe["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert _one(docs, "PodDisruptionBudget", "-web")["spec"]["minAvailable"] >= 1
        assert _one(docs, "Deployment", "-worker")["spec"]["replicas"] >= 2
        assert _one(docs, "Keycloak", "-keycloak")["spec"]["instances"] == 2
        setup = _one(docs, "Job", "-setup")["metadata"]["annotations"]["helm.sh/hook"]
        assert set(setup.split(",")) == {"post-install", "post-upgrade"}
        assert _one(docs, "Job", "-migrate")["metadata"]["annotations"]["helm.sh/hook"] == \
            "pre-upgrade"
        ingress = _one(docs, "Ingress", "leakhub")
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
        assert _one(docs, "CronJob", "-backup")["spec"]["concurrencyPolicy"] == "Forbid"
    assert _one(minimal, "Cluster", "-pg")["spec"]["instances"] == 3
    assert _one(ha, "Cluster", "-pg")["spec"]["instances"] == 3
    assert not _kind(ext, "Cluster") and not _kind(ext, "Database")
    env = {e["name"]: e["value"] for e in
           _one(ext, "Deployment", "-web")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"] == "postgresql://leakhub@pg.db.example.com:5432/leakhub"
    # TLS: cert-manager (minimal) or the customer's Secret (ha, no Certificate).
    cert = _one(minimal, "Certificate", "-tls")
    assert _one(minimal, "Ingress", "leakhub")["spec"]["tls"][0]["secretName"] == \
        cert["spec"]["secretName"]
    assert not _kind(ha, "Certificate")
    assert _one(ha, "Ingress", "leakhub")["spec"]["tls"][0]["secretName"] == "leakhub-group-tls"
    # Uploads on a ReadWriteMany claim; the backup CronJob writes into the customer's claim.
    assert _one(minimal, "PersistentVolumeClaim", "-uploads")["spec"]["accessModes"] == \
        ["ReadWriteMany"]
    vols = _one(ha, "CronJob", "-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "volumes"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "leakhub-nas-backups"}} \
        in vols
    assert not [p for p in _kind(ha, "PersistentVolumeClaim")
                if p["metadata"]["name"].endswith("-backups")]


def test_secrets_are_generated_once_and_kept(rendered):
    source = (CHART / "templates" / "secrets.yaml").read_text()
    assert 'lookup "v1" "Secret"' in source
    for name, doc in _all(rendered):
        if doc["kind"] == "Secret" and not doc["metadata"]["name"].endswith("-keycloak-user"):
            assert doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
    for kind, suffix in (("PersistentVolumeClaim", "-uploads"),):
        doc = _one(rendered["minimal-values.yaml"], kind, suffix)
        assert doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # existingSecret: the customer's Secret is used and none is rendered under that name.
    ext = rendered["external-db-values.yaml"]
    assert not [d for d in _kind(ext, "Secret") if d["metadata"]["name"].endswith("-app")]
    assert not [d for d in _kind(ext, "Secret") if "-db-" in d["metadata"]["name"]
                and not d["metadata"]["name"].endswith("-keycloak-user")]


# --- policy ------------------------------------------------------------------------------------

def _pods(docs):
    """(workload name, pod spec) of every pod template the chart renders."""
    for doc in docs:
        kind = doc["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


# Containers allowed a writable root filesystem, each with its reason.
WRITABLE_ROOT = {
    # kc.sh start re-augments into /opt/keycloak/lib/quarkus (as in compose); restricted Pod
    # Security does not require a read-only root, our own rule does.
    "keycloak": "stock Keycloak image builds at start",
}


def _check_container(where, c, *, read_only_required=True):
    sc = c.get("securityContext") or {}
    assert sc.get("allowPrivilegeEscalation") is False, where
    assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
    assert not sc.get("capabilities", {}).get("add"), where
    assert not sc.get("privileged"), where
    assert sc.get("runAsNonRoot") is True, where
    assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    if read_only_required:
        assert sc.get("readOnlyRootFilesystem") is True, where


def _check_resources(where, resources):
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set((resources or {}).get(part, {})), f"{where}: {part}"


def test_restricted_pod_security_and_resources(rendered):
    for name, docs in rendered.items():
        pods = list(_pods(docs))
        assert len(pods) >= 6, name
        for workload, pod in pods:
            where = f"{name}: {workload}"
            psc = pod.get("securityContext") or {}
            assert psc.get("runAsNonRoot") is True, where
            assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert pod.get("automountServiceAccountToken") is False, where
            assert not (pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC")), where
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            assert not [v for v in volumes.values() if "hostPath" in v], where
            for c in pod.get("initContainers", []) + pod["containers"]:
                cwhere = f"{where}/{c['name']}"
                _check_container(cwhere, c)
                _check_resources(cwhere, c.get("resources"))
                tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                if c["name"] != "copy-secrets":
                    assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{cwhere}: /tmp"
        # The operators' pods: what the chart sets for them.
        kc = _one(docs, "Keycloak", "-keycloak")["spec"]
        _check_resources(f"{name}: Keycloak", kc["resources"])
        kpod = kc["unsupported"]["podTemplate"]["spec"]
        assert kpod["securityContext"]["runAsNonRoot"] is True
        assert kpod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert kpod["automountServiceAccountToken"] is False
        kcont = kpod["containers"][0]
        _check_container(f"{name}: keycloak", kcont, read_only_required=False)
        assert kcont["securityContext"]["readOnlyRootFilesystem"] is False and \
            "keycloak" in WRITABLE_ROOT
        for cluster in _kind(docs, "Cluster"):
            _check_resources(f"{name}: Cluster", cluster["spec"]["resources"])


def _images(doc):
    for key, value in _walk(doc):
        if key in ("image", "imageName") and isinstance(value, str):
            yield value


def _walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_images_are_pinned(rendered):
    seen = set()
    for name, doc in _all(rendered):
        for image in _images(doc):
            ref = image.split("@")[0]
            last = ref.rsplit("/", 1)[-1]
            assert ":" in last, f"{name}: {image} has no tag"
            tag = last.split(":", 1)[1]
            assert tag and tag != "latest" and not tag.startswith("latest-"), f"{name}: {image}"
            seen.add(image)
    assert any(i.startswith("quay.io/keycloak/keycloak:26.7.3") for i in seen), seen
    assert any(i.endswith(":2.11.7-alpine") for i in seen), seen


def _customer_secrets(values) -> set[str]:
    names = set()
    for key, value in _walk(values):
        if key == "existingSecret" and value:
            names.add(value)
    names.update(s["name"] for s in values.get("imagePullSecrets") or [])
    return names


def _secret_refs(doc):
    """(secret name, key or None) referenced by an object."""
    if doc["kind"] == "Ingress":
        for tls in doc["spec"].get("tls", []):
            yield tls["secretName"], None
    for _, pod in _pods([doc]):
        for v in pod.get("volumes", []):
            if "secret" in v:
                yield v["secret"]["secretName"], None
            for src in v.get("projected", {}).get("sources", []):
                if "secret" in src:
                    for item in src["secret"].get("items", []) or [{"key": None}]:
                        yield src["secret"]["name"], item["key"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield ref["name"], ref["key"]
        for s in pod.get("imagePullSecrets", []):
            yield s["name"], None
    spec = doc.get("spec", {})
    if doc["kind"] == "Keycloak":
        for field in ("usernameSecret", "passwordSecret"):
            yield spec["db"][field]["name"], spec["db"][field]["key"]
        yield spec["bootstrapAdmin"]["service"]["secret"], "client-secret"
        yield spec["bootstrapAdmin"]["service"]["secret"], "client-id"
    if doc["kind"] == "Cluster":
        yield spec["superuserSecret"]["name"], "password"
        yield spec["bootstrap"]["initdb"]["secret"]["name"], "password"
        for role in spec.get("managed", {}).get("roles", []):
            yield role["passwordSecret"]["name"], "password"


def test_every_referenced_secret_exists_or_is_the_customers(rendered):
    for name, docs in rendered.items():
        values = _values(name)
        customer = _customer_secrets(values)
        generated = {d["metadata"]["name"]: set((d.get("data") or {}) | (d.get("stringData") or {}))
                     for d in _kind(docs, "Secret")}
        from_certificates = {d["spec"]["secretName"] for d in _kind(docs, "Certificate")}
        refs = [r for d in docs for r in _secret_refs(d)]
        assert len(refs) > 10, name
        for secret, key in refs:
            if secret in generated:
                assert key is None or key in generated[secret], f"{name}: {secret}/{key}"
            else:
                assert secret in customer | from_certificates, \
                    f"{name}: Secret {secret!r} is neither rendered nor named in the values"
        assert not set(generated) & customer, name


def _secret_files(pod) -> set[str]:
    files = set()
    for v in pod.get("volumes", []):
        for src in v.get("projected", {}).get("sources", []):
            for item in src.get("secret", {}).get("items", []):
                files.add(item["path"])
    return files


def test_each_workload_mounts_only_the_secrets_it_uses(rendered):
    """The compose split (docker-compose.yml, compose/setup-entrypoint.sh): the web gets no
    superuser password, backup key or Keycloak bootstrap secret; here the worker does not
    either (backups are the CronJob's), and only the CronJob holds the backup key."""
    web_compose = {"session-key", "postgres-leakhub-password", "keycloak-service-client-secret",
                   "smtp-password"}
    for name, docs in rendered.items():
        pods = dict(_pods(docs))
        files = {w.rsplit("-", 1)[-1]: _secret_files(p) for w, p in pods.items()}
        assert files["web"] <= web_compose, (name, files["web"])
        assert files["worker"] <= {"postgres-leakhub-password", "keycloak-service-client-secret",
                                   "smtp-password"}, (name, files["worker"])
        assert files["migrate"] == {"postgres-leakhub-password"}, name
        holders = {w for w, f in files.items() if "backup-identity" in f}
        assert holders == {"backup"}, (name, holders)
        supers = {w for w, f in files.items() if "postgres-superuser-password" in f}
        assert supers == {"backup"}, (name, supers)
        boot = {w for w, f in files.items() if "keycloak-bootstrap-client-secret" in f}
        assert boot == {"setup"}, (name, boot)
        worker_env = {e["name"]: e.get("value") for e in
                      pods[f"{RELEASE}-worker"]["containers"][0]["env"]}
        assert worker_env["LEAKHUB_BACKUP_SCHEDULER"] == "external"


def test_network_policies_cover_every_pod_and_mirror_the_compose_networks(rendered):
    for name, docs in rendered.items():
        policies = _kind(docs, "NetworkPolicy")
        for p in policies:
            assert set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}, p["metadata"]["name"]
            for rule in p["spec"].get("ingress", []):
                assert rule.get("from"), f"{name}: {p['metadata']['name']} admits everyone"

        def selected(labels, policies=policies):
            return [p for p in policies if all(labels.get(k) == v for k, v in
                                               p["spec"]["podSelector"]["matchLabels"].items())]
        for doc in docs:
            for workload, _pod in _pods([doc]):
                tmpl = (doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob"
                        else doc["spec"]["template"])
                assert selected(tmpl["metadata"]["labels"]), f"{name}: {workload} unselected"
        kc_name = _one(docs, "Keycloak", "-keycloak")["metadata"]["name"]
        assert selected({"app": "keycloak", "app.kubernetes.io/instance": kc_name})
        for cluster in _kind(docs, "Cluster"):
            assert selected({"cnpg.io/cluster": cluster["metadata"]["name"]})
        # egress to SMTP: the worker and Keycloak only (ha-values sets a relay).
        values = _values(name)
        if values["smtp"]["host"]:
            port = values["smtp"]["port"]
            with_smtp = {p["metadata"]["name"].rsplit("-", 1)[-1] for p in policies
                         if any(port_rule.get("port") == port
                                for rule in p["spec"].get("egress", [])
                                for port_rule in rule.get("ports", []))}
            assert with_smtp == {"worker", "keycloak"}, (name, with_smtp)
        # Only Caddy is reachable from outside the installation (the Ingress controller).
        outside = {p["metadata"]["name"].rsplit("-", 1)[-1] for p in policies
                   for rule in p["spec"].get("ingress", []) for peer in rule["from"]
                   if "namespaceSelector" in peer}
        assert outside <= {"caddy", "postgres", "worker"}, outside   # CNPG operator, metrics


# --- the same edge and settings as the compose bundle ------------------------------------------

def _block(text, start):
    i = text.index(start)
    depth, j = 0, text.index("{", i)
    for k in range(j, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return "\n".join(line.strip() for line in text[j:k + 1].splitlines())
    raise AssertionError(start)


def test_caddyfile_carries_the_same_headers_and_allow_lists():
    compose = (REPO / "caddy" / "Caddyfile").read_text()
    chart = (CHART / "files" / "Caddyfile").read_text()
    assert _block(chart, "(security_headers_app)") == _block(compose, "(security_headers_app)")
    csp = re.compile(r'header \?Content-Security-Policy "[^"]+"')
    assert csp.search(chart).group(0) == csp.search(compose).group(0)
    for matcher in ("@keycloak path /auth /auth/*", "@metrics path /metrics /metrics/*",
                    "path /auth/admin /auth/admin/* /auth/realms/master /auth/realms/master/*",
                    'respond @outside_app_allow "Forbidden" 403',
                    'respond @keycloak_admin "Forbidden" 403',
                    'respond @metrics "Not Found" 404',
                    "request_header X-Request-ID {http.request.uuid}",
                    'request>uri regexp "\\?.*$" "?REDACTED"'):
        assert matcher in compose and matcher in chart, matcher
    # Same allow-list variables, checked against the client address the Ingress reports.
    assert "not client_ip {$LEAKHUB_APP_ALLOW:0.0.0.0/0 ::/0}" in chart
    assert "not client_ip {$LEAKHUB_ADMIN_ALLOW:" in chart
    assert "remote_ip" not in chart.split("{", 1)[1]
    blocklist = "leakhub-common-passwords.txt"
    assert (CHART / "files" / blocklist).read_bytes() == \
        (REPO / "compose" / "keycloak" / "password-blacklists" / blocklist).read_bytes()


# Variables of compose's x-app-environment with another value here, and why.
K8S_VALUES = {
    "LEAKHUB_DATA_KEY_FILE": ("off", "the key ring would be written into the read-only "
                                     "Secret projection (docs/scale-out.md)"),
}


def test_app_settings_match_the_compose_bundle(rendered):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    fixed = set(compose["x-app-environment"]) - {
        "LEAKHUB_COMPOSE_PROJECT",     # compose's env-file guard
        "LEAKHUB_WEB_METRICS_DIR",     # web counters shared through a compose volume
    }
    for name, docs in rendered.items():
        values = _values(name)
        for workload, pod in _pods(docs):
            for c in pod["containers"]:
                if workload.endswith("-caddy"):
                    continue   # Caddy's own variables (caddy.yaml)
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                assert fixed <= set(env), (name, workload, fixed - set(env))
                for key, (value, _why) in K8S_VALUES.items():
                    if key in fixed:
                        assert env[key] == value, (name, workload, key)
                assert len(env) == len(c["env"]), f"{name}: {workload}: duplicate variables"
                assert env["LEAKHUB_PUBLIC_URL"] == f"https://{values['hostname']}"
                assert env["LEAKHUB_ADMIN_EMAIL"] == values["organization"]["adminEmail"]
                for key, value in values["settings"].items():
                    if workload.endswith(("-web", "-worker", "-setup", "-backup")):
                        assert env[key] == str(value), (name, workload, key)
