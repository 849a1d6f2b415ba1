"""Static checks of the deployment files under deploy/.

Uses PyYAML and the standard library only; no cluster and no network. Source
manifests are read straight from deploy/k8s (every YAML document of every
file). When kubectl is on PATH the overlays are also rendered with its built-in
kustomize and the rendered output goes through the same workload checks, so a
patch in an overlay cannot undo what the base guarantees.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
MONITORING = DEPLOY / "monitoring"
RULES_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "grafana-dashboard.json"
DOCKERFILE = DEPLOY / "Dockerfile"

UID = 10001
# docs/conventions.md: ports per service and process kind.
SERVICES = {
    "referrals": {"grpc": 50051, "http": 8081, "worker": 9101},
    "cases": {"grpc": 50052, "http": 8082, "worker": 9102},
    "risk": {"grpc": 50053, "http": 8083, "worker": 9103},
    "scheduling": {"grpc": 50054, "http": 8084, "worker": 9104},
    "notifications": {"grpc": 50055, "http": 8085, "worker": 9105},
}
# Environment variable -> (Secret name, key); never a literal value.
SECRET_ENV = {
    "MEND_DATABASE_URL": ("mend-database", "url"),
    "MEND_AMQP_URI": ("mend-amqp", "uri"),
}
TOKEN_SECRET = "mend-token-signing"
TOKEN_KEY = "public.pem"
WORKLOAD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet", "CronJob"}
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
REQUIRED_ALERT_METRICS = [
    "mend_outbox_pending",
    "mend_outbox_oldest_age_seconds",
    "mend_dead_lettered_total",
    "mend_grpc_requests_total",
    "mend_grpc_request_seconds_bucket",
    "mend_events_failed_total",
]
REQUIRED_DASHBOARD_METRICS = REQUIRED_ALERT_METRICS + [
    "mend_referrals_received_total",
    "mend_cases_opened_total",
]


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------


def _yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))


def _load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


LOAD_ERRORS: dict[str, str] = {}
DOCS: list[tuple[Path, dict]] = []  # every YAML document under deploy/k8s
for _path in _yaml_files(K8S):
    try:
        DOCS.extend((_path, d) for d in _load(_path))
    except yaml.YAMLError as exc:  # reported by test_every_yaml_file_parses
        LOAD_ERRORS[str(_path.relative_to(REPO))] = str(exc)

KUSTOMIZATIONS = {p: d for p, d in DOCS if p.name in KUSTOMIZATION_NAMES}
for _path in _yaml_files(MONITORING):
    if _path.name in KUSTOMIZATION_NAMES:
        try:
            KUSTOMIZATIONS[_path] = _load(_path)[0]
        except (yaml.YAMLError, IndexError) as exc:
            LOAD_ERRORS[str(_path.relative_to(REPO))] = str(exc)


def _entries(kust: dict, key: str) -> list[str]:
    """File or directory paths listed under `key` (resources, components ...)."""
    out = []
    for item in kust.get(key) or []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and item.get("path"):
            out.append(item["path"])
    return out


def _referenced_paths(kpath: Path, kust: dict) -> dict[str, list[Path]]:
    base = kpath.parent
    refs: dict[str, list[Path]] = {"resource": [], "patch": [], "generator": []}
    for key in ("resources", "bases", "components"):
        refs["resource"] += [(base / e) for e in _entries(kust, key)]
    for key in ("patches", "patchesStrategicMerge", "patchesJson6902"):
        refs["patch"] += [(base / e) for e in _entries(kust, key)]
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in kust.get(key) or []:
            for f in list(gen.get("files") or []) + list(gen.get("envs") or []):
                refs["generator"].append(base / str(f).split("=", 1)[-1])
    return refs


# Objects that kustomize builds from: files listed as resources somewhere.
RESOURCE_FILES: set[Path] = set()
PATCH_FILES: set[Path] = set()
for _kp, _k in KUSTOMIZATIONS.items():
    _refs = _referenced_paths(_kp, _k)
    RESOURCE_FILES |= {p.resolve() for p in _refs["resource"] if p.is_file()}
    PATCH_FILES |= {p.resolve() for p in _refs["patch"] if p.is_file()}

OBJECTS = [(p, d) for p, d in DOCS if p.resolve() in RESOURCE_FILES and "kind" in d]


def _name(doc: dict) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def _pod_spec(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _pod_labels(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def _containers(pod: dict) -> list[dict]:
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def _workloads(objects) -> list[tuple[Path, dict]]:
    return [(p, d) for p, d in objects if d.get("kind") in WORKLOAD_KINDS]


def _of_kind(kind: str, objects=None) -> list[dict]:
    return [d for _, d in (OBJECTS if objects is None else objects) if d.get("kind") == kind]


def _selector_matches(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _port_number(port, container: dict):
    """Resolve a named or numeric port against a container's ports."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return port if not str(port).isdigit() else int(port)


_QTY = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _quantity(value) -> float:
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(value))
    assert m, f"unparseable resource quantity {value!r}"
    return float(m.group(1)) * _QTY[m.group(2) or ""]


# --------------------------------------------------------------------------
# workload checks (shared by source and rendered manifests)
# --------------------------------------------------------------------------


def workload_problems(doc: dict) -> list[str]:
    """Everything wrong with one Deployment/Job as a list of messages."""
    problems = []
    pod = _pod_spec(doc)
    psc = pod.get("securityContext") or {}
    if not _containers(pod):
        return [f"{_name(doc)}: no containers"]
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{_name(doc)}: {flag} is set")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{_name(doc)}: automountServiceAccountToken must be false")
    tmp_volumes = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}

    for c in _containers(pod):
        where = f"{_name(doc)} container {c.get('name')}"
        sc = c.get("securityContext") or {}

        def eff(key):
            return sc.get(key, psc.get(key))

        if eff("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if eff("runAsUser") != UID:
            problems.append(f"{where}: runAsUser is {eff('runAsUser')!r}, want {UID}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities.drop lacks ALL")
        if caps.get("add"):
            problems.append(f"{where}: adds capabilities {caps['add']}")
        if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")

        res = c.get("resources") or {}
        for section in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if not (res.get(section) or {}).get(what):
                    problems.append(f"{where}: resources.{section}.{what} missing")
        for what in ("cpu", "memory"):
            req = (res.get("requests") or {}).get(what)
            lim = (res.get("limits") or {}).get(what)
            if req and lim and _quantity(req) > _quantity(lim):
                problems.append(f"{where}: {what} request {req} above limit {lim}")

        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
        if mounts.get("/tmp") not in tmp_volumes:
            problems.append(f"{where}: /tmp is not an emptyDir mount")

        cmd = list(c.get("command") or []) + list(c.get("args") or [])
        if not cmd or not cmd[0].startswith("mend-"):
            problems.append(f"{where}: command {cmd} is not a mend-* console script")
        if any(part in ("sh", "bash", "/bin/sh", "/bin/bash", "-c") for part in cmd):
            problems.append(f"{where}: shell in command {cmd}")

        if doc["kind"] == "Deployment":
            for probe in ("livenessProbe", "readinessProbe"):
                if not c.get(probe):
                    problems.append(f"{where}: no {probe}")
            live = (c.get("livenessProbe") or {}).get("httpGet") or {}
            if live.get("path") != "/healthz":
                problems.append(f"{where}: liveness is not HTTP /healthz")
            ready = (c.get("readinessProbe") or {}).get("httpGet") or {}
            if ready.get("path") != "/readyz":
                problems.append(f"{where}: readiness is not HTTP /readyz")
    return problems


# --------------------------------------------------------------------------
# files and kustomizations
# --------------------------------------------------------------------------


def test_every_yaml_file_parses():
    assert not LOAD_ERRORS, LOAD_ERRORS
    assert DOCS, "no YAML found under deploy/k8s"


def test_base_and_a_region_overlay_exist():
    assert (K8S / "base" / "kustomization.yaml").is_file()
    overlays = [p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file()]
    assert overlays, "no overlay under deploy/k8s/overlays"


@pytest.mark.parametrize(
    "kpath", sorted(KUSTOMIZATIONS), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_kustomization_references_exist(kpath):
    kust = KUSTOMIZATIONS[kpath]
    missing = []
    for kind, paths in _referenced_paths(kpath, kust).items():
        for p in paths:
            if p.is_dir():
                if not any((p / n).is_file() for n in KUSTOMIZATION_NAMES):
                    missing.append(f"{kind} {p} is a directory without a kustomization")
            elif not p.is_file():
                missing.append(f"{kind} {p} does not exist")
    assert not missing, missing
    assert any(_referenced_paths(kpath, kust).values()) or kust.get("kind") == "Component", (
        f"{kpath} lists nothing"
    )


def test_every_manifest_file_is_wired_into_a_kustomization():
    loose = [
        str(p.relative_to(REPO))
        for p in _yaml_files(K8S)
        if p.name not in KUSTOMIZATION_NAMES
        and p.resolve() not in RESOURCE_FILES
        and p.resolve() not in PATCH_FILES
    ]
    assert not loose, f"YAML files no kustomization uses: {loose}"


def test_no_secret_generators():
    for kpath, kust in KUSTOMIZATIONS.items():
        assert not kust.get("secretGenerator"), f"{kpath}: secretGenerator puts secrets in the repo"


# --------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------


def test_there_are_workloads_to_check():
    kinds = {d["kind"] for _, d in _workloads(OBJECTS)}
    assert {"Deployment", "Job"} <= kinds, kinds


@pytest.mark.parametrize(
    "doc",
    [d for _, d in _workloads(OBJECTS)],
    ids=[_name(d) for _, d in _workloads(OBJECTS)],
)
def test_workload_is_locked_down(doc):
    assert workload_problems(doc) == []


def _deployments_running(cmd: list[str]) -> list[dict]:
    return [
        d for d in _of_kind("Deployment")
        if any((c.get("command") or []) + (c.get("args") or []) == cmd
               for c in _pod_spec(d).get("containers") or [])
    ]


def _container(doc: dict, cmd_head: str) -> dict:
    return next(c for c in _pod_spec(doc)["containers"] if (c.get("command") or [""])[0] == cmd_head)


def _env(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env") or []}


def test_only_the_existing_services_are_deployed():
    services = set()
    for _, d in _workloads(OBJECTS):
        for c in _containers(_pod_spec(d)):
            cmd = c.get("command") or []
            if len(cmd) >= 2:
                services.add(cmd[1])
    assert services == set(SERVICES), services


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_has_separate_api_and_worker_deployments(service):
    apis = _deployments_running(["mend-api", service])
    workers = _deployments_running(["mend-worker", service])
    assert len(apis) == 1, f"want one mend-api {service} Deployment, got {len(apis)}"
    assert len(workers) == 1, f"want one mend-worker {service} Deployment, got {len(workers)}"
    api, worker = apis[0], workers[0]
    assert api["metadata"]["name"] != worker["metadata"]["name"]
    assert len(_pod_spec(api)["containers"]) == 1 and len(_pod_spec(worker)["containers"]) == 1
    # Separate selectors, or scaling one would adopt the other's pods.
    assert not _selector_matches(api["spec"]["selector"], _pod_labels(worker))
    assert not _selector_matches(worker["spec"]["selector"], _pod_labels(api))
    assert _selector_matches(api["spec"]["selector"], _pod_labels(api))
    assert _selector_matches(worker["spec"]["selector"], _pod_labels(worker))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_api_ports_and_probes(service):
    ports = SERVICES[service]
    (api,) = _deployments_running(["mend-api", service])
    c = _container(api, "mend-api")
    declared = {p["containerPort"] for p in c.get("ports") or []}
    assert {ports["grpc"], ports["http"]} <= declared, declared
    env = _env(c)
    assert env["MEND_GRPC_PORT"]["value"] == str(ports["grpc"])
    assert env["MEND_HTTP_PORT"]["value"] == str(ports["http"])

    grpc_probes = [
        c[p]["grpc"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
        if c.get(p) and "grpc" in c[p]
    ]
    assert grpc_probes, "api needs a native gRPC probe (grpc.health.v1)"
    assert all(_port_number(g["port"], c) == ports["grpc"] for g in grpc_probes)
    assert _port_number(c["readinessProbe"]["httpGet"]["port"], c) == ports["http"]
    assert _port_number(c["livenessProbe"]["httpGet"]["port"], c) == ports["http"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_worker_ports_probes_and_eventlet_settings(service):
    port = SERVICES[service]["worker"]
    (worker,) = _deployments_running(["mend-worker", service])
    c = _container(worker, "mend-worker")
    env = _env(c)
    assert env.get("PSYCOPG_WAIT_FUNC", {}).get("value") == "wait_select"
    assert env["MEND_WORKER_HTTP_PORT"]["value"] == str(port)
    assert port in {p["containerPort"] for p in c.get("ports") or []}
    for probe in ("livenessProbe", "readinessProbe"):
        assert _port_number(c[probe]["httpGet"]["port"], c) == port, probe


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_api_service_exposes_grpc_and_http(service):
    ports = SERVICES[service]
    (api,) = _deployments_running(["mend-api", service])
    c = _container(api, "mend-api")
    services = [
        s for s in _of_kind("Service")
        if _selector_matches({"matchLabels": s["spec"].get("selector") or {}}, _pod_labels(api))
        and s["spec"].get("selector")
    ]
    exposed = {
        _port_number(p.get("targetPort", p["port"]), c)
        for s in services for p in s["spec"]["ports"]
    }
    assert {ports["grpc"], ports["http"]} <= exposed, f"{service} api Service ports {exposed}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_worker_metrics_are_discoverable(service):
    port = SERVICES[service]["worker"]
    (worker,) = _deployments_running(["mend-worker", service])
    c = _container(worker, "mend-worker")
    by_service = any(
        _port_number(p.get("targetPort", p["port"]), c) == port
        for s in _of_kind("Service")
        if s["spec"].get("selector")
        and _selector_matches({"matchLabels": s["spec"]["selector"]}, _pod_labels(worker))
        for p in s["spec"]["ports"]
    )
    annotations = (worker["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    by_annotation = (
        annotations.get("prometheus.io/scrape") == "true"
        and annotations.get("prometheus.io/port") == str(port)
    )
    assert by_service or by_annotation


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_api_has_pdb_and_hpa(service):
    (api,) = _deployments_running(["mend-api", service])
    labels = _pod_labels(api)
    pdbs = [p for p in _of_kind("PodDisruptionBudget") if _selector_matches(p["spec"]["selector"], labels)]
    assert pdbs, f"no PodDisruptionBudget covers the {service} api"
    hpas = [
        h for h in _of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": api["metadata"]["name"]}
    ]
    assert len(hpas) == 1, f"want one HPA for {api['metadata']['name']}"
    hpa = hpas[0]["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert hpa.get("metrics"), "HPA without metrics"
    # The HPA owns the api replica count; a replicas field would be reset on every apply.
    assert "replicas" not in api["spec"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migration_job_per_service(service):
    jobs = [
        j for j in _of_kind("Job")
        if any(c.get("command") == ["mend-migrate", service] for c in _containers(_pod_spec(j)))
    ]
    # An initContainer in the api Deployment would also do.
    inits = [
        d for d in _of_kind("Deployment")
        if any(c.get("command") == ["mend-migrate", service] for c in _pod_spec(d).get("initContainers") or [])
    ]
    assert jobs or inits, f"nothing runs mend-migrate {service}"
    for j in jobs:
        assert _pod_spec(j).get("restartPolicy") in ("Never", "OnFailure")
        assert j["spec"].get("backoffLimit") is not None


# --------------------------------------------------------------------------
# secrets and configuration
# --------------------------------------------------------------------------


def test_no_secret_values_anywhere_under_deploy():
    for path in _yaml_files(DEPLOY):
        for doc in _load(path):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), (
                    f"{path}: Secret {doc.get('metadata', {}).get('name')} carries values"
                )
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text), f"{path}: private key"
            # credentials inside a URL: scheme://user:password@host
            for m in re.finditer(r"[a-z+]+://[^\s/:@'\"]+:([^\s/@'\"]+)@", text):
                assert m.group(1) in ("…", "...", "guest"), f"{path}: credentials in {m.group(0)}"


def test_secret_env_comes_from_secret_refs():
    for _, doc in _workloads(OBJECTS):
        for c in _containers(_pod_spec(doc)):
            for e in c.get("env") or []:
                name = e["name"]
                if name in SECRET_ENV or re.fullmatch(r"MEND_[A-Z]+_DATABASE_URL", name):
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    assert "value" not in e and ref, f"{_name(doc)}: {name} must use secretKeyRef"
                    if name in SECRET_ENV:
                        assert (ref["name"], ref["key"]) == SECRET_ENV[name], (_name(doc), name, ref)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_processes_get_database_and_broker_secrets(service):
    for cmd in (["mend-api", service], ["mend-worker", service]):
        (dep,) = _deployments_running(cmd)
        env = _env(_container(dep, cmd[0]))
        for name, (secret, key) in SECRET_ENV.items():
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}, (cmd, name)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_token_public_key_is_mounted_from_its_secret(service):
    (api,) = _deployments_running(["mend-api", service])
    pod = _pod_spec(api)
    c = _container(api, "mend-api")
    vols = {
        v["name"]: v["secret"] for v in pod.get("volumes") or []
        if (v.get("secret") or {}).get("secretName") == TOKEN_SECRET
    }
    assert vols, f"{service} api does not mount Secret {TOKEN_SECRET}"
    (vol_name, secret), = vols.items()
    assert TOKEN_KEY in {i["key"] for i in secret.get("items") or [{"key": TOKEN_KEY}]}
    mount = next(m for m in c["volumeMounts"] if m["name"] == vol_name)
    assert mount.get("readOnly") is True
    key_file = f"{mount['mountPath'].rstrip('/')}/{TOKEN_KEY}"
    configured = {
        lit.split("=", 1)[1]
        for kust in KUSTOMIZATIONS.values()
        for gen in kust.get("configMapGenerator") or []
        for lit in gen.get("literals") or []
        if lit.startswith("MEND_TOKEN_PUBLIC_KEY_FILE=")
    }
    configured |= {e["value"] for e in c.get("env") or [] if e["name"] == "MEND_TOKEN_PUBLIC_KEY_FILE"}
    assert configured == {key_file}, f"MEND_TOKEN_PUBLIC_KEY_FILE {configured} != {key_file}"


def _config_literals() -> dict[str, dict[str, str]]:
    """ConfigMap name -> key -> value, from generators (base first, then merges) and objects."""
    out: dict[str, dict[str, str]] = {}
    for kpath in sorted(KUSTOMIZATIONS, key=lambda p: (K8S / "base") not in p.parents):
        for gen in KUSTOMIZATIONS[kpath].get("configMapGenerator") or []:
            target = out.setdefault(gen["name"], {})
            target.update(lit.split("=", 1) for lit in gen.get("literals") or [])
    for cm in _of_kind("ConfigMap"):
        out.setdefault(cm["metadata"]["name"], {}).update(cm.get("data") or {})
    return out


def _effective_env(container: dict, name: str):
    """Value of `name` in a container: its env wins over envFrom ConfigMaps."""
    for e in container.get("env") or []:
        if e["name"] == name:
            return e.get("value")
    configs = _config_literals()
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        if ref and name in configs.get(ref, {}):
            return configs[ref][name]
    return None


def test_processes_listen_on_the_pod_address():
    # mend binds 127.0.0.1 by default: probes and Services would find nothing.
    deployments = _of_kind("Deployment")
    assert deployments
    for dep in deployments:
        for c in _pod_spec(dep)["containers"]:
            assert _effective_env(c, "MEND_BIND_HOST") in ("0.0.0.0", "::"), (
                f"{_name(dep)}: MEND_BIND_HOST must be 0.0.0.0 (or ::)"
            )


def test_configmaps_hold_no_secrets():
    secretish = re.compile(r"(DATABASE_URL|AMQP_URI|PASSWORD|SECRET|PRIVATE_KEY|API_KEY)$")
    keys = []
    for kust in KUSTOMIZATIONS.values():
        for gen in kust.get("configMapGenerator") or []:
            keys += [lit.split("=", 1)[0] for lit in gen.get("literals") or []]
    for cm in _of_kind("ConfigMap"):
        keys += list((cm.get("data") or {}).keys())
    bad = [k for k in keys if secretish.search(k)]
    assert not bad, f"secret-looking keys in a ConfigMap: {bad}"


# --------------------------------------------------------------------------
# network policies
# --------------------------------------------------------------------------


def _policies() -> list[dict]:
    return _of_kind("NetworkPolicy")


def _allowed_ports(policy: dict, container: dict, from_filter=lambda peers: True) -> set:
    ports = set()
    for rule in policy["spec"].get("ingress") or []:
        if not from_filter(rule.get("from")):
            continue
        for p in rule.get("ports") or []:
            ports.add(_port_number(p.get("port"), container))
    return ports


def test_default_deny_ingress():
    deny = [
        p for p in _policies()
        if p["spec"].get("podSelector") == {}
        and "Ingress" in (p["spec"].get("policyTypes") or [])
        and not p["spec"].get("ingress")
    ]
    assert deny, "no default-deny ingress NetworkPolicy"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_network_policies_open_api_ports_and_metrics_only(service):
    ports = SERVICES[service]
    (api,) = _deployments_running(["mend-api", service])
    (worker,) = _deployments_running(["mend-worker", service])
    api_c, worker_c = _container(api, "mend-api"), _container(worker, "mend-worker")

    def from_monitoring(peers):
        return bool(peers) and any(
            (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == "monitoring"
            for peer in peers
        )

    api_open, api_scrape, worker_open, worker_scrape = set(), set(), set(), set()
    for pol in _policies():
        if _selector_matches(pol["spec"]["podSelector"], _pod_labels(api)):
            api_open |= _allowed_ports(pol, api_c)
            api_scrape |= _allowed_ports(pol, api_c, from_monitoring)
        if _selector_matches(pol["spec"]["podSelector"], _pod_labels(worker)):
            worker_open |= _allowed_ports(pol, worker_c, lambda peers: not from_monitoring(peers))
            worker_scrape |= _allowed_ports(pol, worker_c, from_monitoring)
    assert {ports["grpc"], ports["http"]} <= api_open
    assert ports["http"] in api_scrape, "monitoring cannot scrape the api metrics port"
    assert ports["worker"] in worker_scrape, "monitoring cannot scrape the worker metrics port"
    assert not worker_open, f"worker ports open beyond monitoring: {worker_open}"


# --------------------------------------------------------------------------
# overlays, rendered with kubectl's kustomize when it is available
# --------------------------------------------------------------------------

OVERLAY_DIRS = sorted(
    kp.parent for kp in KUSTOMIZATIONS
    if (K8S / "overlays") in kp.parents and kp.name in KUSTOMIZATION_NAMES
    and KUSTOMIZATIONS[kp].get("kind") != "Component"
)
KUBECTL = shutil.which("kubectl")


def _render(directory: Path) -> list[tuple[Path, dict]]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [(directory, d) for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (built-in kustomize) not installed")
@pytest.mark.parametrize("directory", OVERLAY_DIRS, ids=lambda p: str(p.relative_to(K8S)))
def test_rendered_overlay_is_locked_down(directory):
    objects = _render(directory)
    assert objects
    problems = [msg for _, d in _workloads(objects) for msg in workload_problems(d)]
    assert problems == []
    for _, d in objects:
        if d["kind"] not in ("Namespace",):
            assert (d.get("metadata") or {}).get("namespace"), f"{_name(d)} has no namespace"
        assert d["kind"] != "Secret", f"{_name(d)}: overlays must not create Secrets"
    for _, d in _workloads(objects):
        for c in _containers(_pod_spec(d)):
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[\w.-]+$", image.rsplit("/", 1)[-1]), (
                f"{_name(d)}: image {image} has no tag"
            )
            assert not image.endswith(":latest"), f"{_name(d)}: image {image} uses latest"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (built-in kustomize) not installed")
def test_region_overlay_renders_app_and_migrations_with_one_image():
    for region in sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir()):
        app = _render(region)
        images = {c["image"] for _, d in _workloads(app) for c in _containers(_pod_spec(d))}
        assert len(images) == 1, f"{region.name}: several images {images}"
        migrate_dir = region / "migrate"
        if migrate_dir.is_dir():
            migrate = _render(migrate_dir)
            kinds = {d["kind"] for _, d in migrate}
            assert kinds == {"Job"}, kinds
            m_images = {c["image"] for _, d in migrate for c in _containers(_pod_spec(d))}
            assert m_images == images, f"{region.name}: migrations use {m_images}, app {images}"
            namespaces = {d["metadata"]["namespace"] for _, d in app + migrate if d["kind"] != "Namespace"}
            assert len(namespaces) == 1, namespaces


# --------------------------------------------------------------------------
# monitoring
# --------------------------------------------------------------------------


def _rules() -> list[dict]:
    docs = _load(RULES_FILE)
    assert len(docs) == 1
    doc = docs[0]
    groups = doc["spec"]["groups"] if doc.get("kind") == "PrometheusRule" else doc["groups"]
    assert groups
    return [r for g in groups for r in g["rules"]]


def _balanced(expr: str) -> bool:
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    in_str = None
    for ch in expr:
        if in_str:
            if ch == in_str:
                in_str = None
            continue
        if ch in "\"'`":
            in_str = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and in_str is None


def test_alert_rules_are_complete():
    rules = _rules()
    assert rules
    names = [r.get("alert") for r in rules]
    assert all(names) and len(names) == len(set(names)), names
    for r in rules:
        assert isinstance(r.get("expr"), str) and r["expr"].strip(), r
        assert _balanced(r["expr"]), f"{r['alert']}: unbalanced expression"
        assert re.fullmatch(r"\d+[smhdwy]", str(r.get("for", ""))), f"{r['alert']}: no valid `for`"
        assert (r.get("labels") or {}).get("severity") in ("critical", "warning", "info"), r["alert"]
        assert (r.get("annotations") or {}).get("summary"), f"{r['alert']}: no summary"


def test_alert_rules_cover_the_required_signals():
    rules = _rules()
    exprs = " ".join(r["expr"] for r in rules)
    for metric in REQUIRED_ALERT_METRICS:
        assert metric in exprs, f"no alert on {metric}"

    def find(pattern):
        return [r for r in rules if re.search(pattern, " ".join(r["expr"].split()))]

    backlog = find(r"mend_outbox_pending\)?\s*>\s*1000\b")
    assert any(r["for"] == "5m" for r in backlog), "outbox pending > 1000 for 5m"
    assert find(r"mend_outbox_oldest_age_seconds\)?\s*>\s*60\b"), "outbox oldest age > 60"
    assert find(r"(increase|rate)\(mend_dead_lettered_total"), "dead-letter growth"
    assert find(r'mend_grpc_requests_total\{code!="OK"\}.*/.*mend_grpc_requests_total'), "gRPC error ratio"
    assert find(r"histogram_quantile\(0\.99,.*mend_grpc_request_seconds_bucket"), "p99 latency"
    assert find(r"(increase|rate)\(mend_events_failed_total"), "consumer failures"


def test_grafana_dashboard():
    dash = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    panels = [p for p in dash["panels"] if p.get("type") != "row"]
    assert dash.get("uid") and dash.get("title")
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets") or [])
    for metric in REQUIRED_DASHBOARD_METRICS:
        assert metric in exprs, f"no panel shows {metric}"
    for p in panels:
        assert p.get("title") and p.get("gridPos") and p.get("targets"), p.get("title")
        for t in p["targets"]:
            assert _balanced(t["expr"]), f"{p['title']}: unbalanced expression"


# --------------------------------------------------------------------------
# image
# --------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile():
    ins = _dockerfile_instructions()
    args = dict(
        rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest
    )
    froms = [re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest)
             for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    assert all(f.split()[0] == "python:3.11-slim" or f.split()[0].startswith("python:3.11-slim@")
               for f in froms), froms
    runs = " ".join(" ".join(rest.split()) for word, rest in ins if word == "RUN")
    assert re.search(r"pip install --no-deps -r requirements\.lock", runs)
    assert re.search(r"pip install --no-deps services/common services/referrals services/cases", runs)
    assert ("grpc_tools.protoc -I proto --python_out=build/gen --grpc_python_out=build/gen "
            "$(find proto -name '*.proto')") in runs
    assert ".pth" in runs
    assert "image-selfcheck.py" in runs and (DEPLOY / "image-selfcheck.py").is_file()
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1] in (str(UID), f"{UID}:{UID}"), users
    for word, rest in ins:
        if word in ("ENTRYPOINT", "CMD"):
            assert rest.startswith("["), f"{word} must be exec form: {rest}"
            assert not re.search(r'"(/bin/)?(ba)?sh"', rest), f"{word} runs a shell"


def test_dockerignore_lets_every_copied_path_through():
    ignore = DEPLOY / "Dockerfile.dockerignore"
    lines = [l.strip() for l in ignore.read_text(encoding="utf-8").splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    assert lines[0] == "*", "the context should start from nothing and re-include what the build copies"
    allowed = [l[1:].rstrip("/") for l in lines if l.startswith("!")]
    for pattern in ("**/*.pem", "**/var/"):
        assert pattern in lines, f"{pattern} must stay out of the build context"
    for word, rest in _dockerfile_instructions():
        if word != "COPY" or "--from=" in rest:
            continue
        sources = [a for a in rest.split() if not a.startswith("--")][:-1]
        for src in sources:
            src = src.rstrip("/")
            assert any(src == a or src.startswith(a + "/") for a in allowed), (
                f"COPY {src} is excluded by {ignore.name}"
            )
