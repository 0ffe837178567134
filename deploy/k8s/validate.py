"""Render the Helm chart and validate every resource, without a cluster: `make k8s` (and `make test`).

python -m deploy.k8s.validate [--set key=value ...]

Core kinds are checked with kubernetes-validate (PyPI: the Kubernetes OpenAPI schemas, strict: unknown
fields are errors). Strimzi, CloudNativePG and KEDA kinds are checked against the openAPIV3Schema of their
CRDs at pinned versions, taken from registries this machine reaches: Strimzi's CRDs from its `api` test jar
on Maven Central, CloudNativePG's and KEDA's from their Go module zips (config/crd/bases). Fetched once into
.cache/k8s; Helm is built once (deploy/local/helm.sh). Unknown fields are errors there too, except where a CRD
preserves unknown fields. Prints the resources per kind; exits non-zero on the first invalid chart.
"""

import argparse
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "medassist"
CACHE = Path(os.environ.get("MEDASSIST_CACHE_DIR", ROOT / ".cache")) / "k8s"
KUBERNETES_VERSION = os.environ.get("KUBERNETES_VERSION", "1.33.0")
STRIMZI = os.environ.get("STRIMZI_VERSION", "0.49.0")
CNPG = os.environ.get("CNPG_VERSION", "v1.29.0")
KEDA = os.environ.get("KEDA_VERSION", "v2.21.0")
# (group, kind) -> where its CRD comes from: (source, version, file in the source)
CRDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("kafka.strimzi.io", "Kafka"): ("strimzi", STRIMZI, "crds/v1beta2/040-Crd-kafka.yaml"),
    ("kafka.strimzi.io", "KafkaTopic"): ("strimzi", STRIMZI, "crds/v1beta2/043-Crd-kafkatopic.yaml"),
    ("kafka.strimzi.io", "KafkaNodePool"): ("strimzi", STRIMZI, "crds/v1beta2/045-Crd-kafkanodepool.yaml"),
    ("postgresql.cnpg.io", "Cluster"): ("cnpg", CNPG, "config/crd/bases/postgresql.cnpg.io_clusters.yaml"),
    ("keda.sh", "ScaledObject"): ("keda", KEDA, "config/crd/bases/keda.sh_scaledobjects.yaml"),
}
GO_MODULES = {"cnpg": "github.com/cloudnative-pg/cloudnative-pg", "keda": "github.com/kedacore/keda/v2"}


def run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} ... failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def _fetch_strimzi(version: str, wanted: list[str], into: Path) -> None:
    jars = CACHE / "m2-out"
    run("mvn", "-q", "-B", f"-Dmaven.repo.local={ROOT / '.cache' / 'm2'}", "dependency:copy",
        f"-Dartifact=io.strimzi:api:{version}:jar:tests", f"-DoutputDirectory={jars}")
    with zipfile.ZipFile(jars / f"api-{version}-tests.jar") as jar:
        for name in wanted:
            (into / Path(name).name).write_bytes(jar.read(name))


def _fetch_go_module(module: str, version: str, wanted: list[str], into: Path) -> None:
    gomod = CACHE / "gomod"
    env = {"GOMODCACHE": str(gomod), "GOPATH": str(CACHE / "gopath"), "GOFLAGS": "-modcacherw",
           "GO111MODULE": "on"}
    info = json.loads(run(os.environ.get("GO", "go"), "mod", "download", "-json", f"{module}@{version}", env=env))
    with zipfile.ZipFile(info["Zip"]) as archive:  # the module zip, verified against the checksum database
        for name in wanted:
            (into / Path(name).name).write_bytes(archive.read(f"{module}@{version}/{name}"))
    run(os.environ.get("GO", "go"), "clean", "-modcache", env=env)


def crd_file(group: str, kind: str) -> Path:
    """The CRD of a kind at its pinned version, fetched into .cache/k8s once."""
    source, version, name = CRDS[(group, kind)]
    folder = CACHE / f"{source}-{version}"
    path = folder / Path(name).name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        wanted = [n for (s, v, n) in CRDS.values() if (s, v) == (source, version)]
        print(f"fetching the {source} {version} CRDs ({len(wanted)} files)", file=sys.stderr)
        if source == "strimzi":
            _fetch_strimzi(version, wanted, folder)
        else:
            _fetch_go_module(GO_MODULES[source], version, wanted, folder)
    return path


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused where the CRD does not preserve them (as the API server prunes)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    """The validator of one custom kind (its CRD schemas are large: built once per process)."""
    return jsonschema.Draft7Validator(crd_schema(api_version, kind))


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.rpartition("/")
    crd = yaml.safe_load(crd_file(group, kind).read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served.get("served", True), f"{api_version} {kind} is not served by the pinned CRD"
    schema = _strict(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked by the API server, not the CRD
    return schema  # type: ignore[no-any-return]


def render(sets: list[str] | None = None) -> list[dict[str, Any]]:
    """`helm template` of the chart: the resources a cluster would receive."""
    helm = run("bash", str(ROOT / "deploy/local/helm.sh"), "path").strip()
    args = [helm, "template", "medassist", str(CHART), "--kube-version", KUBERNETES_VERSION]
    for s in sets or []:
        args += ["--set", s]
    run(helm, "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION)
    return [d for d in yaml.safe_load_all(run(*args)) if d]


def validate(resources: list[dict[str, Any]]) -> Counter[str]:
    """Every resource against its schema; returns the resources per kind."""
    kinds: Counter[str] = Counter()
    for doc in resources:
        where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        group = doc["apiVersion"].rpartition("/")[0]
        if (group, doc["kind"]) in CRDS:
            errors = sorted(crd_validator(doc["apiVersion"], doc["kind"]).iter_errors(doc),
                            key=lambda e: list(e.absolute_path))
            if errors:
                raise SystemExit(f"{where}: " + "; ".join(
                    f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]))
        else:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise SystemExit(f"{where}: {exc.path}: {exc.message}") from None
        kinds[doc["kind"]] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], help="a chart value, as helm --set takes it")
    resources = render(parser.parse_args().set)
    kinds = validate(resources)
    print(f"deploy/k8s/medassist: {sum(kinds.values())} resources valid (Kubernetes {KUBERNETES_VERSION}, "
          f"Strimzi {STRIMZI}, CloudNativePG {CNPG}, KEDA {KEDA})")
    for kind, n in sorted(kinds.items()):
        print(f"  {kind:<22} {n}")


if __name__ == "__main__":
    main()
