# Settings of the local stack. Every value can be overridden from the environment.
# Sourced by deploy/local/*.sh and the Makefile; services read the same names (shared/settings.py).
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MEDASSIST_RUN_DIR="${MEDASSIST_RUN_DIR:-$ROOT_DIR/.run}"
export MEDASSIST_CACHE_DIR="${MEDASSIST_CACHE_DIR:-$ROOT_DIR/.cache}"
export PG_PORT="${PG_PORT:-55432}"
export PG_USER="${PG_USER:-medassist}"
export PG_PASSWORD="${PG_PASSWORD:-medassist-dev}"
export KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
export KAFKA_PORT="${KAFKA_PORT:-19092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
export KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-6}"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
export SERVICES="intake eligibility calculation approval disbursement notification"
# Services run from their folders; only the shared library is installed in the virtualenv.
export PYTHONPATH="$ROOT_DIR:$ROOT_DIR/services/intake:$ROOT_DIR/services/eligibility:$ROOT_DIR/services/calculation:$ROOT_DIR/services/approval:$ROOT_DIR/services/disbursement:$ROOT_DIR/services/notification:$ROOT_DIR/services/simulators:$ROOT_DIR/services/console"
# Trace viewer (make traces, deploy/local/zipkin.sh): the Zipkin server jar from Maven Central, in memory.
export ZIPKIN_VERSION="${ZIPKIN_VERSION:-3.5.1}"
export ZIPKIN_PORT="${ZIPKIN_PORT:-9411}"
export ZIPKIN_MAX_SPANS="${ZIPKIN_MAX_SPANS:-500000}"
export ZIPKIN_JAVA_OPTS="${ZIPKIN_JAVA_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC}"
# Metrics (make metrics, deploy/local/prometheus.sh): Debian's Prometheus with deploy/prometheus/rules.yml.
export PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
export PROMTOOL="${PROMTOOL:-/usr/bin/promtool}"
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
# Browser tests (tests/browser): Playwright drives Debian's Chromium and never downloads a browser of its own.
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Kubernetes chart (make k8s, deploy/k8s): Helm built once from the Go module proxy; CRD schemas it is checked against.
export HELM_VERSION="${HELM_VERSION:-v3.22.0}"
export KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33.0}"
export STRIMZI_VERSION="${STRIMZI_VERSION:-0.49.0}"
export CNPG_VERSION="${CNPG_VERSION:-v1.29.0}"
export KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
# SMS quiet hours (21:00-08:00 China time by default): the local demo runs at any hour, so they are off here.
export SMS_QUIET_HOURS="${SMS_QUIET_HOURS:-off}"
