"""The Helm chart renders, every resource is valid against its schema, and it says what the design says.

Helm is built once from the Go module proxy and the CRD schemas are fetched once (deploy/k8s/validate.py);
both are cached under .cache, so later runs take seconds.
"""

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from approval.config import ApprovalSettings
from calculation.config import CalculationSettings
from disbursement.config import DisbursementSettings
from eligibility.config import EligibilitySettings
from intake.config import IntakeSettings
from notification.config import NotificationSettings

from deploy.k8s.validate import render, validate
from shared.contracts.topics import TOPIC_EVENTS
from shared.settings import ServiceSettings
from shared.telemetry import TRACING_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "eligibility", "calculation", "approval", "disbursement", "notification")
PEERS = {"disbursement": "203.0.113.0/24", "notification": "198.51.100.0/24"}  # the bank, the SMS gateway
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings, "eligibility": EligibilitySettings, "calculation": CalculationSettings,
    "approval": ApprovalSettings, "disbursement": DisbursementSettings, "notification": NotificationSettings}


@cache
def resources() -> tuple[dict[str, Any], ...]:
    return tuple(render())


def of(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in resources() if d["kind"] == kind}


def consumers_in_the_docs() -> dict[str, set[str]]:
    """service -> topics it consumes, from docs/architecture.md's topic table."""
    table = (ROOT / "docs/architecture.md").read_text().split("## Topics", 1)[1]
    consumed: dict[str, set[str]] = {}
    for topic, who in re.findall(r"^\| ([a-z.]+) \| [^|]+ \| [^|]+ \| ([^|]+) \|$", table, re.M):
        for service in re.findall(r"[a-z]+", who.split("(")[0]):
            consumed.setdefault(service, set()).add(topic)
    return consumed


def consumer_groups_in_the_code(service: str) -> set[str]:
    """The consumer groups a service's bootstrap declares (ConsumerSpec's first argument or group_id)."""
    source = (ROOT / "services" / service / service / "bootstrap.py").read_text()
    return set(re.findall(r'ConsumerSpec\(\s*(?:group_id=)?"([^"]+)"', source))


def test_every_resource_is_valid_against_its_schema() -> None:
    kinds = validate(list(resources()))
    print("\nrendered:", dict(sorted(kinds.items())))
    assert kinds == {"Deployment": 6, "Service": 6, "PodDisruptionBudget": 6, "Job": 6, "NetworkPolicy": 7,
                     "ScaledObject": 6, "Cluster": 6, "Kafka": 1, "KafkaNodePool": 1,
                     "KafkaTopic": 2 * len(TOPIC_EVENTS)}


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda d: of_kind(d, "Kafka")["spec"]["kafka"].update(replicaz=3), id="unknown Strimzi field"),
    pytest.param(lambda d: of_kind(d, "KafkaTopic")["spec"].update(partitions="12"), id="Strimzi type"),
    pytest.param(lambda d: of_kind(d, "Cluster")["spec"].update(instances=0), id="CloudNativePG minimum"),
    pytest.param(lambda d: of_kind(d, "ScaledObject")["spec"].update(maxReplicas=3), id="unknown KEDA field"),
    pytest.param(lambda d: of_kind(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]
                 .update(readinessprobe={}), id="unknown core field"),
])
def test_an_invalid_resource_is_refused(mutate: Any) -> None:
    docs = copy.deepcopy(list(resources()))
    mutate(docs)
    with pytest.raises(SystemExit):
        validate(docs)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def test_services_probe_health_and_readiness_and_keep_one_instance_through_drains() -> None:
    deployments, pdbs = of("Deployment"), of("PodDisruptionBudget")
    assert set(deployments) == set(pdbs) == set(SERVICES)
    for name, d in deployments.items():
        [container] = d["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["command"] == ["python", "-m", name, "serve"]
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert pdbs[name]["spec"]["minAvailable"] == 1


def settings_from(container: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    """The service's settings from a container's env, each secret reference standing for a value of its own."""
    env = {e["name"]: e.get("value") or "from-secret:{name}/{key}".format(**e["valueFrom"]["secretKeyRef"])
           for e in container["env"] if "fieldRef" not in e.get("valueFrom", {})}
    settings_class = SETTINGS[service]
    known = {f.upper() for f in settings_class.model_fields} | set(TRACING_SETTINGS)
    assert set(env) <= known, f"{service}: {set(env) - known} are no settings the service reads"
    if "HOSPITAL_SECRETS" in env:
        env["HOSPITAL_SECRETS"] = '{"H001": ["from-secret"]}'  # a JSON object in the Secret
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return settings_class()


def test_each_service_would_start_in_production_with_what_the_chart_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENVIRONMENT=production refuses every development secret: the chart must set each one (from a Secret)."""
    for kind in ("Deployment", "Job"):
        for d in of(kind).values():
            [container] = d["spec"]["template"]["spec"]["containers"]
            service = container["command"][2]
            settings = settings_from(container, service, monkeypatch)
            assert settings.environment.value == "production" and settings.database == service


def test_secrets_come_from_secret_objects_and_only_the_migration_job_holds_the_owner_password() -> None:
    secret_names = {"PG_APP_PASSWORD", "PG_PASSWORD", "PERSON_REF_PEPPER", "FIELD_KEYS", "PAYEE_KEYS",
                    "CASE_VIEW_KEYS"}
    for name, d in of("Deployment").items():
        env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        for key in secret_names:
            assert "secretKeyRef" in env[key]["valueFrom"], f"{name}: {key}"
        assert env["PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{name}-db-app"  # not the owner's
        assert env["PG_USER"]["value"] == f"{name}_app"
    jobs = of("Job")
    assert {j["spec"]["template"]["spec"]["containers"][0]["command"][2] for j in jobs.values()} == set(SERVICES)
    for job in jobs.values():
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["command"][-1] == "migrate"
        env = {e["name"]: e for e in container["env"]}
        assert env["PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"].endswith("-db-owner")


def test_kafka_has_three_brokers_and_every_topic_replication_3_min_isr_2() -> None:
    [kafka], [pool] = of("Kafka").values(), of("KafkaNodePool").values()
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"broker", "controller"}
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    topics = {t["spec"]["topicName"]: t["spec"] for t in of("KafkaTopic").values()}
    assert set(topics) == {n for t in TOPIC_EVENTS for n in (t, f"{t}.dlq")}
    assert all(s["replicas"] == 3 and s["config"]["min.insync.replicas"] == 2 for s in topics.values())


def test_keda_scales_each_service_on_its_group_lag_up_to_the_partitions() -> None:
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of("KafkaTopic").values()}
    consumed = consumers_in_the_docs()
    for name, scaled in of("ScaledObject").items():
        triggers = scaled["spec"]["triggers"]
        assert {t["metadata"]["topic"] for t in triggers} == consumed[name], name
        groups = {t["metadata"]["consumerGroup"] for t in triggers}
        assert groups == consumer_groups_in_the_code(name), f"{name}: KEDA watches {groups}"
        assert scaled["spec"]["maxReplicaCount"] == max(partitions[t] for t in consumed[name])
        assert scaled["spec"]["scaleTargetRef"]["name"] == name


def test_a_service_reaches_only_kafka_its_own_database_and_its_declared_peers() -> None:
    policies = of("NetworkPolicy")
    assert policies["medassist-default-deny"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert set(of("Cluster")) == {f"{s}-db" for s in SERVICES}
    for name in SERVICES:
        egress = policies[name]["spec"]["egress"]
        peers = [peer for rule in egress for peer in rule["to"]]
        databases = [p["podSelector"]["matchLabels"]["cnpg.io/cluster"] for p in peers
                     if "cnpg.io/cluster" in p.get("podSelector", {}).get("matchLabels", {})]
        assert databases == [f"{name}-db"]
        outside = [p["ipBlock"]["cidr"] for p in peers if "ipBlock" in p]
        assert outside == ([PEERS[name]] if name in PEERS else [])
        assert len(egress) == (5 if name in PEERS else 4)  # Kafka, database, DNS, traces (+ bank or SMS gateway)
