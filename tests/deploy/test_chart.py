"""The Helm chart helm/erp/: lint, render, validate against Kubernetes 1.30, checkov,
the schema's refusals, and what each rendered object must say (issue 20)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from erp.config import Settings
from tests import servers
from tests.deploy import tools
from tests.deploy.conftest import Manifests, env_of, find, pod_spec, run_helm

NAMES = sorted(tools.VALUES)
RUNTIME_SECRETS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEYS")


@pytest.mark.parametrize("name", NAMES)
def test_lint_strict(helm: str, name: str) -> None:
    got = run_helm(helm, "lint", "--strict", str(tools.CHART), "-f", str(tools.VALUES[name]))
    assert got.returncode == 0, got.stdout + got.stderr
    assert "[WARNING]" not in got.stdout, got.stdout
    assert "[ERROR]" not in got.stdout, got.stdout


def test_chart_is_helm3_compatible() -> None:
    chart = yaml.safe_load((tools.CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["type"] == "application"


def _write(manifests: Manifests, into: Path) -> list[Path]:
    paths = []
    for i, m in enumerate(manifests):
        path = into / f"{i:02d}-{m['kind']}-{m['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(m))
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", NAMES)
def test_every_manifest_is_valid_kubernetes_1_30(
    rendered: Callable[[str], Manifests], name: str, tmp_path: Path
) -> None:
    validate = tools.dev_tool("kubernetes-validate", "kubernetes-validate")
    manifests = rendered(name)
    paths = _write(manifests, tmp_path)
    got = subprocess.run(
        [validate, "--strict", "-k", tools.KUBERNETES_VERSION, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    passed = got.stdout.count(" passed for resource ")
    assert passed == len(manifests), got.stdout + got.stderr


def _skips_named_in_chart() -> dict[str, set[str]]:
    """check id -> its reasons, from the checkov.io/skip annotations of the templates."""
    found: dict[str, set[str]] = {}
    for path in (tools.CHART / "templates").rglob("*.yaml"):
        for check, reason in re.findall(r'"(CKV2?_K8S_\d+)=([^"]+)"', path.read_text()):
            found.setdefault(check, set()).add(reason)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_checkov_passes(
    checkov: str, rendered: Callable[[str], Manifests], name: str, tmp_path: Path
) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "home").mkdir()
    _write(rendered(name), tmp_path / "manifests")
    got = subprocess.run(
        [
            checkov,
            "--framework",
            "kubernetes",
            "-d",
            str(tmp_path / "manifests"),
            "--skip-download",
            "--output",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        # --skip-download: no call to the vendor's platform; HOME: its caches stay here
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LOG_LEVEL": "ERROR"},
    )
    report = json.loads(got.stdout)
    results = report["results"]
    failed = [(f["check_id"], f["resource"]) for f in results["failed_checks"]]
    assert not failed, failed
    assert got.returncode == 0, got.stderr[-2000:]
    assert report["summary"]["passed"] > 100
    named = _skips_named_in_chart()
    for skipped in results["skipped_checks"]:
        check = skipped["check_id"]
        assert check in named, f"{check} skipped without a reason in the chart"
        assert skipped["check_result"]["suppress_comment"] in named[check], check


# -- the schema refuses wrong values ---------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("api.replicas=-1",), r"/api/replicas.*minimum"),
        (("worker.replicas=-3",), r"/worker/replicas.*minimum"),
        (("worker.replicas=two",), r"/worker/replicas.*(integer|type)"),
        (("worker.threads=-1",), r"/worker/threads.*minimum"),
        (("foo=1",), r"additional properties 'foo' not allowed"),
        (("api.replica=3",), r"/api.*additional properties 'replica' not allowed"),
        (("config.SECRET_KEY=inline",), r"/config.*additional properties 'SECRET_KEY'"),
        (("secrets.keys.DATABASE_URL=",), r"/secrets/keys/DATABASE_URL"),
        (("config.LOG_LEVEL=LOUD",), r"/config/LOG_LEVEL"),
        (("config.DB_POOL_SIZE=0",), r"/config/DB_POOL_SIZE"),
        (("cronJobs.tenantsPurge.schedule=daily",), r"/cronJobs/tenantsPurge/schedule"),
        (("image.digest=latest",), r"/image/digest"),
        (("pgbouncer.enabled=true",), r"POOLED_DATABASE_URL"),
        (("ingress.hosts[0].paths[0].pathType=Anything",), r"/ingress/hosts/0/paths/0/pathType"),
        # (the validator names the wrong path for a property name; the name is right)
        (("extraEnv.SECRET_KEY=inline",), r"invalid propertyName 'SECRET_KEY'"),
        (("extraEnv.lower=1",), r"'lower' does not match pattern"),
    ],
)
def test_bad_values_fail_with_the_schemas_message(
    template: Callable[..., Any], sets: tuple[str, ...], message: str
) -> None:
    got = template(tools.VALUES["default"], sets=sets)
    assert got.returncode != 0, f"{sets} rendered"
    assert "values don't meet the specifications of the schema" in got.stderr, got.stderr
    assert re.search(message, got.stderr, re.S), got.stderr


def test_missing_secret_reference_fails_with_the_schemas_message(
    template: Callable[..., Any],
) -> None:
    got = template()  # the chart's own values: no existingSecret
    assert got.returncode != 0
    assert "/secrets/existingSecret" in got.stderr, got.stderr
    assert "minLength" in got.stderr, got.stderr


#: Variables the code reads that the chart sets by other means.
SET_OTHERWISE = {
    "HOST": "the API container's env (0.0.0.0)",
    "PORT": "api.port",
    "WEB_CONCURRENCY": "api.webConcurrency",
    "WORKER_THREADS": "worker.threads",
    "ERP_ROOT": "the image (/app)",
    "ERP_TEMPLATES_DIR": "the image's ERP_ROOT/tenants/templates; extraEnv to override",
    "ENVIRONMENT": "unset: production (Secure cookies); `development` is `erp dev`'s",
    "DEV_SIGN_IN": "never in a deployment: refused outside ENVIRONMENT=development",
    "STREAM_PORT": "the stream Deployment, from stream.port",
    "STREAM_WORKERS": "the stream Deployment, from stream.workers",
    "STREAM_THREADS": "the stream Deployment, from stream.threads",
}


def test_every_setting_is_settable() -> None:
    """Each variable platform/erp reads (config.py and the CLI), and each DESIGN.md §6
    names, is a key of `config` or `secrets.keys`, or set otherwise (SET_OTHERWISE):
    the chart keeps in step with the settings."""
    values = yaml.safe_load((tools.CHART / "values.yaml").read_text())
    settable = set(values["config"]) | set(values["secrets"]["keys"]) | set(SET_OTHERWISE)
    source = "\n".join(
        p.read_text()
        for p in (servers.ROOT / "platform" / "erp").rglob("*.py")
        if p.name != "devserver.py"  # `erp dev` only
    )
    config_py = (servers.ROOT / "platform" / "erp" / "config.py").read_text()
    read = set(re.findall(r'\br\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', config_py))
    read |= set(re.findall(r"""environ(?:\.get)?\(\s*["']([A-Z_]+)["']""", source))
    read |= set(re.findall(r"""_env_(?:int|bool)\(\s*["']([A-Z_]+)["']""", source))
    read |= set(re.findall(r"""envvar=["']([A-Z_]+)["']""", source))
    assert {"DATABASE_URL", "RATE_LIMITS", "ERP_APP_PASSWORD", "PORT"} <= read  # patterns work
    named = {
        "LISTEN_DATABASE_URL",
        "ENCRYPTION_KEYS",
        "OIDC_ISSUER",
        "OIDC_CLIENT_ID",
        "OIDC_CLIENT_SECRET",
        "SMTP_URL",
        "RATE_LIMITS",
        "WEBHOOK_ALLOWED_HOSTS",
        "MIGRATION_DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
    }
    assert not (read | named) - settable, sorted((read | named) - settable)
    schema = json.loads((tools.CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["config"]["properties"]) == set(values["config"])
    assert set(schema["properties"]["secrets"]["properties"]["keys"]["properties"]) == set(
        values["secrets"]["keys"]
    )


# -- what the rendered objects say -----------------------------------------------------


def _containers(m: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec(m)["containers"])


def _workloads(manifests: Manifests) -> list[dict[str, Any]]:
    kinds = ("Deployment", "Job", "CronJob", "Pod")
    return [m for m in manifests if m["kind"] in kinds]


@pytest.mark.parametrize("name", NAMES)
def test_every_pod_is_locked_down(rendered: Callable[[str], Manifests], name: str) -> None:
    for m in _workloads(rendered(name)):
        spec = pod_spec(m)
        where = f"{m['kind']}/{m['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for c in _containers(m):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["runAsNonRoot"] is True, where
            assert c["resources"]["requests"], where
            assert c["resources"]["limits"], where
    for sa in (m for m in rendered(name) if m["kind"] == "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_default_release_shape(rendered: Callable[[str], Manifests]) -> None:
    ms = rendered("default")
    api = find(ms, "Deployment", "rel-erp-api")
    (c,) = _containers(api)
    assert c["args"] == ["serve"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = env_of(c)
    for var in RUNTIME_SECRETS:
        assert env[var] == ("erp", var)
    assert "MIGRATION_DATABASE_URL" not in env  # the runtime never holds the owner's login
    assert env["WEB_CONCURRENCY"] == "2"
    assert c["envFrom"] == [{"configMapRef": {"name": "rel-erp"}}]
    spread = pod_spec(api)["topologySpreadConstraints"]
    assert {t["topologyKey"] for t in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert api["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    (w,) = _containers(find(ms, "Deployment", "rel-erp-worker"))
    assert w["args"] == ["worker"]
    assert env_of(w)["WORKER_THREADS"] == "16"  # erp/worker.py's threads, measured
    sched = find(ms, "Deployment", "rel-erp-scheduler")
    assert sched["spec"]["replicas"] == 1
    assert _containers(sched)[0]["args"] == ["scheduler"]
    (lc,) = _containers(find(ms, "Deployment", "rel-erp-webhooks-listener"))
    assert lc["args"] == ["webhooks", "listen"]
    assert env_of(lc)["DATABASE_URL"] == ("erp", "DATABASE_URL")

    stream = find(ms, "Deployment", "rel-erp-stream")
    (sc,) = _containers(stream)
    assert sc["args"] == ["stream"]
    senv = env_of(sc)
    assert (senv["STREAM_PORT"], senv["STREAM_THREADS"]) == ("8001", "256")
    assert sc["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert find(ms, "Service", "rel-erp-stream")["spec"]["ports"][0]["targetPort"] == "http"

    job = find(ms, "Job", "rel-erp-migrate")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    (mc,) = _containers(job)
    assert mc["args"] == ["migrate"]
    menv = env_of(mc)
    assert menv["MIGRATION_DATABASE_URL"] == ("erp", "MIGRATION_DATABASE_URL")
    assert "DATABASE_URL" not in menv
    assert "envFrom" not in mc
    assert "serviceAccountName" not in pod_spec(job)  # nor the release's ServiceAccount

    purge = find(ms, "CronJob", "rel-erp-tenants-purge")
    assert purge["spec"]["schedule"] == "17 3 * * *"
    assert purge["spec"]["concurrencyPolicy"] == "Forbid"
    (pc,) = _containers(purge)
    assert pc["args"] == ["tenants", "purge"]
    assert env_of(pc) == {"MIGRATION_DATABASE_URL": ("erp", "MIGRATION_DATABASE_URL")}
    compact = find(ms, "CronJob", "rel-erp-ledger-compact")
    assert _containers(compact)[0]["args"] == ["ledger", "compact", "--keep-days", "2"]

    svc = find(ms, "Service", "rel-erp")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    test_pod = find(ms, "Pod", "rel-erp-test-readyz")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://rel-erp:80/readyz" in _containers(test_pod)[0]["args"][0]
    assert {p["metadata"]["name"] for p in ms if p["kind"] == "PodDisruptionBudget"} == {
        "rel-erp-api",
        "rel-erp-worker",
    }
    assert not [m for m in ms if m["kind"] in ("Ingress", "HorizontalPodAutoscaler")]


def test_network_policies(rendered: Callable[[str], Manifests]) -> None:
    ms = rendered("default")
    api = find(ms, "NetworkPolicy", "rel-erp-api")["spec"]
    sources = api["ingress"][0]["from"]
    assert sources[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    worker = find(ms, "NetworkPolicy", "rel-erp-worker")["spec"]
    assert worker["ingress"] == []  # nothing reaches a worker
    ports = [p["port"] for rule in worker["egress"] for p in rule["ports"]]
    assert {53, 5432, 6379, 443} <= set(ports)
    outside = [r for r in worker["egress"] if any("ipBlock" in t for t in r.get("to", []))]
    assert outside
    assert "10.0.0.0/8" in outside[0]["to"][0]["ipBlock"]["except"]
    sched = find(ms, "NetworkPolicy", "rel-erp-scheduler")["spec"]
    assert not [r for r in sched["egress"] if any("ipBlock" in t for t in r.get("to", []))]
    # every workload is selected by some policy
    policies = [m["spec"]["podSelector"]["matchLabels"] for m in ms if m["kind"] == "NetworkPolicy"]
    for m in _workloads(ms):
        labels = (
            m["metadata"]["labels"]
            if m["kind"] == "Pod"
            else (
                m["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
                if m["kind"] == "CronJob"
                else m["spec"]["template"]["metadata"]["labels"]
            )
        )
        assert any(p.items() <= labels.items() for p in policies), m["metadata"]["name"]


def test_production_values(rendered: Callable[[str], Manifests]) -> None:
    ms = rendered("production")
    api = find(ms, "Deployment", "erp-api")
    assert "replicas" not in api["spec"]  # the HPA owns it
    (c,) = _containers(api)
    digest = "sha256:" + "0123456789abcdef" * 4
    assert c["image"] == f"registry.example.com/erp/erp@{digest}"
    env = env_of(c)
    assert env["DATABASE_URL"] == ("erp-production", "pooled-database-url")
    assert env["LISTEN_DATABASE_URL"] == ("erp-production", "listen-database-url")
    assert env["OIDC_CLIENT_SECRET"] == ("erp-production", "oidc-client-secret")
    assert env["SMTP_URL"] == ("erp-production", "smtp-url")
    sched_env = env_of(_containers(find(ms, "Deployment", "erp-scheduler"))[0])
    assert sched_env["DATABASE_URL"] == ("erp-production", "database-url")  # direct: locks
    listen_env = env_of(_containers(find(ms, "Deployment", "erp-webhooks-listener"))[0])
    assert listen_env["DATABASE_URL"] == ("erp-production", "pooled-database-url")
    assert listen_env["LISTEN_DATABASE_URL"] == ("erp-production", "listen-database-url")
    job_env = env_of(_containers(find(ms, "Job", "erp-migrate"))[0])
    assert job_env["ERP_APP_PASSWORD"] == ("erp-production", "erp-app-password")
    assert job_env["DB_PREPARE_THRESHOLD"] == "none"
    assert job_env["DB_STATEMENT_TIMEOUT_MS"] == "30000"
    config = find(ms, "ConfigMap", "erp")["data"]
    assert config["DB_PREPARE_THRESHOLD"] == "none"
    assert config["WEBHOOK_ALLOWED_HOSTS"] == "hooks.example.com,partner.example.net"
    assert config["TZ"] == "UTC"

    ini = find(ms, "ConfigMap", "erp-pgbouncer")["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini
    assert "host=postgres.db.svc.cluster.local port=5432" in ini
    assert find(ms, "Service", "erp-pgbouncer")["spec"]["ports"][0]["port"] == 6432
    hpas = {m["metadata"]["name"]: m for m in ms if m["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"erp-api", "erp-worker"}
    assert hpas["erp-api"]["spec"]["minReplicas"] == 3
    ingress = find(ms, "Ingress", "erp")["spec"]
    assert ingress["tls"] == [{"secretName": "erp-tls", "hosts": ["erp.example.com"]}]
    assert ingress["ingressClassName"] == "nginx"
    # the live stream's one path goes to `erp stream`, ahead of the API's catch-all
    first = ingress["rules"][0]["http"]["paths"][0]
    assert (first["path"], first["pathType"]) == ("/api/v1/inventory/events", "Exact")
    assert first["backend"]["service"]["name"] == "erp-stream"
    stream_env = env_of(_containers(find(ms, "Deployment", "erp-stream"))[0])
    assert stream_env["DATABASE_URL"] == ("erp-production", "pooled-database-url")
    assert stream_env["LISTEN_DATABASE_URL"] == ("erp-production", "listen-database-url")
    stream_np = find(ms, "NetworkPolicy", "erp-stream")["spec"]
    assert stream_np["ingress"][0]["ports"] == [{"port": 8001, "protocol": "TCP"}]
    np = find(ms, "NetworkPolicy", "erp-worker")["spec"]
    assert {"ipBlock": {"cidr": "10.20.0.0/24"}} in [
        t for r in np["egress"] for t in r.get("to", [])
    ]
    assert find(ms, "NetworkPolicy", "erp-pgbouncer")


def test_minimal_values(rendered: Callable[[str], Manifests]) -> None:
    kinds = sorted(m["kind"] for m in rendered("minimal"))
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Service"]


def test_a_changed_setting_rolls_the_pods(template: Callable[..., Any]) -> None:
    def checksum(*sets: str) -> str:
        got = template(tools.VALUES["default"], sets=sets, extra=("-s", "templates/api.yaml"))
        assert got.returncode == 0, got.stderr
        annotations = yaml.safe_load(got.stdout)["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("config.LOG_LEVEL=DEBUG")
    assert checksum() != checksum("extraEnv.FOO=bar")


def test_notes(helm: str) -> None:
    got = run_helm(
        helm,
        "install",
        "rel",
        str(tools.CHART),
        "-n",
        "erp",
        "-f",
        str(tools.VALUES["default"]),
        "--dry-run=client",
    )
    assert got.returncode == 0, got.stderr
    notes = got.stdout.split("NOTES:", 1)[1]
    assert "helm test rel -n erp" in notes
    assert "port-forward svc/rel-erp" in notes


@pytest.mark.parametrize("name", NAMES)
def test_the_app_accepts_the_rendered_settings(
    rendered: Callable[[str], Manifests], name: str
) -> None:
    """The ConfigMap and the migrate Job's inline settings read back through
    Settings.from_env without an error (a value the schema let through, the app takes)."""
    ms = rendered(name)
    (config,) = (
        m["data"] for m in ms if m["kind"] == "ConfigMap" and "pgbouncer.ini" not in m["data"]
    )
    checked = Settings.from_env({**config, "DATABASE_URL": "postgresql://erp_app@db/erp"})
    assert checked.log_level == "INFO"
    for m in (m for m in ms if m["kind"] == "Job"):
        inline = {k: v for k, v in env_of(_containers(m)[0]).items() if isinstance(v, str)}
        assert inline == config  # the hook sees the same settings as the pods


def test_numbers_render_as_integers(template: Callable[..., Any]) -> None:
    """YAML numbers reach templates as floats: 10485760 must not become 1.048576e+07."""
    got = template(
        tools.VALUES["default"],
        sets=("config.MAX_CONTENT_LENGTH=10485760", "config.DB_POOL_RECYCLE=-1"),
        extra=("-s", "templates/configmap.yaml"),
    )
    assert got.returncode == 0, got.stderr
    data = yaml.safe_load(got.stdout)["data"]
    assert data["MAX_CONTENT_LENGTH"] == "10485760"
    assert data["DB_POOL_RECYCLE"] == "-1"
    Settings.from_env(data)
