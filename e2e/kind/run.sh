#!/usr/bin/env bash
# End-to-end on a real cluster: kind + the operator image + real Trivy + real public images.
#
#   e2e/kind/run.sh              run the suite (creates and always deletes its own kind cluster)
#   e2e/kind/run.sh --preflight  exit 0 if the suite can run here; else print the skip line, exit 3
#
# Where Docker or kind is missing (or the Docker daemon does not answer) it prints one line
#   kind e2e: skipped — <reason> (needs Docker and kind; runs in the GitHub workflow)
# and exits 0 — unless CI_REQUIRE_KIND=1, where that is a failure (exit 1): the workflow sets it so
# the suite can never pass by doing nothing where Docker should exist.
#
# Environment (all optional):
#   KIND_E2E=skip                 skip on purpose (the workflow's unit-test job: its kind job runs it)
#   KIND_NODE_IMAGE               node image (default below, pinned to the kind release we install)
#   KIND_CLUSTER_NAME             cluster name (default imagescan-e2e-<pid>)
#   IMAGESCAN_E2E_IMAGE           operator image tag to load (default imagescan-operator:e2e)
#   IMAGESCAN_E2E_SKIP_BUILD=1    use IMAGESCAN_E2E_IMAGE as already present in Docker (CI loads it)
#   KEEP_CLUSTER=1                do not delete the cluster at the end (debugging)
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# kind v0.33.0 defaults to Kubernetes v1.37.0; pin the node image by digest from the kind release
# notes when you bump it (KIND_NODE_IMAGE=kindest/node:v1.37.0@sha256:...).
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.37.0}"
CLUSTER="${KIND_CLUSTER_NAME:-imagescan-e2e-$$}"
IMAGE="${IMAGESCAN_E2E_IMAGE:-imagescan-operator:e2e}"
NS=imagescan-system

# Workloads: old public images with many known CVEs, and one with no OS packages at all.
# (Tags of long-frozen releases; the digest each one runs is read from the pods, never assumed.
# pause:3.9 rather than the node's own sandbox image, which may be preloaded without a registry digest.)
OLD_NGINX=docker.io/library/nginx:1.19.0
OLD_ALPINE=docker.io/library/alpine:3.10.0
CLEAN=registry.k8s.io/pause:3.9

skip() {
  if [ "${CI_REQUIRE_KIND:-}" = 1 ]; then
    echo "kind e2e: FAILED — $1, but CI_REQUIRE_KIND=1 says Docker and kind must be here" >&2
    exit 1
  fi
  echo "kind e2e: skipped — $1 (needs Docker and kind; runs in the GitHub workflow)"
  exit "${SKIP_EXIT:-0}"
}

preflight() {
  if [ "${KIND_E2E:-}" = skip ] && [ "${CI_REQUIRE_KIND:-}" != 1 ]; then
    echo "kind e2e: skipped — KIND_E2E=skip (the workflow's kind-e2e job runs it)"
    exit "${SKIP_EXIT:-0}"
  fi
  command -v docker >/dev/null 2>&1 || skip "docker is not installed"
  command -v kind >/dev/null 2>&1 || skip "kind is not installed"
  timeout 30 docker info >/dev/null 2>&1 || skip "the Docker daemon does not answer (docker info failed)"
  # Docker and kind are here, so the suite must really run: its other tools are required.
  local t
  for t in kubectl jq curl; do
    command -v "$t" >/dev/null 2>&1 || { echo "kind e2e: FAILED — $t is required" >&2; exit 1; }
  done
}

if [ "${1:-}" = --preflight ]; then
  SKIP_EXIT=3 preflight
  exit 0
fi
preflight

log() { printf '[kind-e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { printf '[kind-e2e] FAIL: %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d)"
PF_PID=""
KUBECONFIG="$WORK/kubeconfig"
export KUBECONFIG
CLUSTER_CREATED=0

cleanup() {
  local rc=$?
  if [ -n "$PF_PID" ]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [ "$rc" -ne 0 ] && [ "$CLUSTER_CREATED" = 1 ]; then
    log "diagnostics after failure (exit $rc)"
    kubectl get pods -A -o wide || true
    kubectl -n "$NS" describe pods || true
    kubectl -n "$NS" logs -l app.kubernetes.io/component=controller --all-containers --tail=200 --prefix || true
    kubectl get imagescanreports -A -o wide || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -50 || true
  fi
  if [ "$CLUSTER_CREATED" = 1 ] && [ "${KEEP_CLUSTER:-}" != 1 ]; then
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for <seconds> <description> <command...>: retry every 5 s until the command succeeds.
wait_for() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then fail "timed out after ${limit}s waiting for: $what"; fi
    sleep 5
  done
  log "ok: $what ($((SECONDS - start))s)"
}

reports_json() { kubectl get imagescanreports.imagescan.dev -A -o json; }

# ---- cluster, image, install -------------------------------------------------------------------

log "creating kind cluster $CLUSTER ($NODE_IMAGE)"
CLUSTER_CREATED=1
kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --kubeconfig "$KUBECONFIG" --wait 180s

if [ "${IMAGESCAN_E2E_SKIP_BUILD:-}" = 1 ]; then
  docker image inspect "$IMAGE" >/dev/null 2>&1 || fail "IMAGESCAN_E2E_SKIP_BUILD=1 but $IMAGE is not in Docker"
else
  log "building $IMAGE"
  docker build -t "$IMAGE" "$ROOT"
fi
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing the CRD and manifests/base"
kubectl apply -f "$ROOT/crds/imagescan.dev_imagescanreports.yaml"
kubectl wait --for condition=established --timeout=60s crd/imagescanreports.imagescan.dev
# An overlay that only swaps the image for the one just loaded into kind.
mkdir -p "$WORK/overlay"
cat >"$WORK/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$WORK/overlay" "$ROOT/manifests/base")
images:
  - name: ghcr.io/imagescan-operator/imagescan-operator
    newName: ${IMAGE%:*}
    newTag: ${IMAGE##*:}
EOF
kubectl apply -k "$WORK/overlay"
# Short schedule and grace period so rescans and report removal happen within the suite; the
# cluster's own namespaces (and the operator's locally loaded image) are left out to keep it short.
kubectl -n "$NS" set env deployment/imagescan-operator \
  IMAGESCAN_RESCAN_SCHEDULE='*/2 * * * *' IMAGESCAN_RESCAN_JITTER=0s IMAGESCAN_REPORT_GRACE_PERIOD=30s \
  IMAGESCAN_EXCLUDE_NAMESPACES=kube-system,local-path-storage,imagescan-system IMAGESCAN_LOG_LEVEL=debug
# The first start downloads the Trivy DB (through the NetworkPolicy's 443 egress): allow minutes.
kubectl -n "$NS" rollout status deployment/imagescan-operator --timeout=600s

# ---- workloads ---------------------------------------------------------------------------------

log "starting workloads in team-a (payments) and team-b (search)"
kubectl create namespace team-a
kubectl label namespace team-a team=payments
kubectl create namespace team-b
kubectl label namespace team-b team=search
kubectl -n team-a create deployment old-nginx --image="$OLD_NGINX" --replicas=2
kubectl -n team-a create deployment old-alpine --image="$OLD_ALPINE" -- sleep 1000000
kubectl -n team-b create deployment old-nginx --image="$OLD_NGINX"
kubectl -n team-b create deployment clean --image="$CLEAN"
for ns in team-a team-b; do
  kubectl -n "$ns" wait --for=condition=Available deployment --all --timeout=300s
done

# (namespace, digest) pairs that run, read from the pods' imageIDs as the operator reads them.
expected_pairs() {
  kubectl get pods -n team-a -o json >"$WORK/a.json"
  kubectl get pods -n team-b -o json >"$WORK/b.json"
  jq -r -s '[.[].items[] | .metadata.namespace as $ns | .status.containerStatuses[]
             | {ns: $ns, digest: (.imageID | capture("(?<d>sha256:[0-9a-f]{64})").d)}]
            | unique | .[] | "\(.ns) \(.digest)"' "$WORK/a.json" "$WORK/b.json" | sort
}
digest_of() { # digest_of <namespace> <deployment>
  kubectl -n "$1" get pods -l "app=$2" -o json |
    jq -r '[.items[].status.containerStatuses[].imageID | capture("(?<d>sha256:[0-9a-f]{64})").d] | unique | .[0]'
}
EXPECTED="$(expected_pairs)"
[ "$(wc -l <<<"$EXPECTED")" -eq 4 ] || fail "expected 4 (namespace, digest) pairs, got: $EXPECTED"

all_scanned() {
  reports_json >"$WORK/r.json"
  local got
  got="$(jq -r '.items[] | select(.metadata.namespace == "team-a" or .metadata.namespace == "team-b")
               | select(.status.phase == "Scanned") | "\(.metadata.namespace) \(.spec.digest)"' "$WORK/r.json" | sort)"
  [ "$got" = "$EXPECTED" ]
}
wait_for 900 "every (namespace, digest) has a Scanned report" all_scanned

# ---- assertions on the reports -----------------------------------------------------------------

reports_json >"$WORK/r.json"
kubectl get imagescanreports -A -o wide
dupes="$(jq -r '[.items[] | "\(.metadata.namespace) \(.spec.digest)"] | group_by(.) | map(select(length > 1)) | length' "$WORK/r.json")"
[ "$dupes" = 0 ] || fail "more than one report for a (namespace, digest)"

report_field() { # report_field <namespace> <digest> <jq path>
  jq -r --arg ns "$1" --arg d "$2" ".items[] | select(.metadata.namespace == \$ns and .spec.digest == \$d) | $3" "$WORK/r.json"
}
NGINX_A="$(digest_of team-a old-nginx)"
ALPINE_A="$(digest_of team-a old-alpine)"
NGINX_B="$(digest_of team-b old-nginx)"
CLEAN_B="$(digest_of team-b clean)"
[ "$NGINX_A" = "$NGINX_B" ] || fail "the same tag resolved to two digests in two namespaces"
for pair in "team-a $NGINX_A" "team-a $ALPINE_A" "team-b $NGINX_B"; do
  read -r ns digest <<<"$pair"
  crit="$(report_field "$ns" "$digest" .status.summary.critical)"
  [[ "$crit" =~ ^[0-9]+$ && "$crit" -gt 0 ]] || fail "$ns $digest: expected CRITICAL > 0 for an old image, got '$crit'"
  log "ok: $ns $digest has $crit CRITICAL"
done
crit="$(report_field team-b "$CLEAN_B" .status.summary.critical)"
[ "$crit" = 0 ] || fail "clean image: expected 0 CRITICAL, got '$crit'"
[ "$(report_field team-a "$NGINX_A" .status.team)" = payments ] || fail "team-a report: team is not payments"
[ "$(report_field team-b "$NGINX_B" .status.team)" = search ] || fail "team-b report: team is not search"
[ "$(report_field team-a "$NGINX_A" '.status.workloads | map("\(.kind)/\(.name)") | join(",")')" = Deployment/old-nginx ] ||
  fail "team-a nginx report: workloads should be exactly Deployment/old-nginx"
log "ok: one report per (namespace, digest), CVEs found in old images, none critical in the clean one, teams set"

# ---- the operator runs as it claims --------------------------------------------------------------

LEADER="$(kubectl -n "$NS" get lease imagescan-operator -o jsonpath='{.spec.holderIdentity}')"
kubectl -n "$NS" get pod "$LEADER" >/dev/null || fail "lease holder '$LEADER' is not an operator pod"
kubectl -n "$NS" get pod "$LEADER" -o json >"$WORK/pod.json"
jq -e '.spec.securityContext.runAsNonRoot == true
       and (.spec.containers[0].securityContext.readOnlyRootFilesystem == true)
       and (.spec.containers[0].securityContext.allowPrivilegeEscalation == false)' "$WORK/pod.json" >/dev/null ||
  fail "operator pod is not non-root with a read-only root filesystem"
# Proven from inside, not just declared: the process UID, and a write to / that must fail.
uid="$(kubectl -n "$NS" exec "$LEADER" -- /nodejs/bin/node -e 'process.stdout.write(String(process.getuid()))')"
[ "$uid" = 65532 ] || fail "operator runs as uid $uid"
if kubectl -n "$NS" exec "$LEADER" -- /nodejs/bin/node -e 'require("fs").writeFileSync("/probe", "x")' 2>/dev/null; then
  fail "the root filesystem is writable"
fi
log "ok: operator runs as uid 65532 with a read-only root filesystem"

# ---- metrics -----------------------------------------------------------------------------------

# port-forward enters the pod's network namespace directly, so the NetworkPolicy (monitoring only)
# does not get in the way of the check. Secure metrics (the default): HTTPS with a self-signed
# certificate (-k), and a token the real API server reviews: a ServiceAccount bound to
# imagescan-operator-metrics-reader may read, another may not, no token is refused.
kubectl -n "$NS" create serviceaccount metrics-scraper
kubectl -n "$NS" create serviceaccount not-a-scraper
kubectl create clusterrolebinding imagescan-e2e-metrics-scraper --clusterrole imagescan-operator-metrics-reader --serviceaccount "$NS:metrics-scraper"
SCRAPER_TOKEN="$(kubectl -n "$NS" create token metrics-scraper)"
OTHER_TOKEN="$(kubectl -n "$NS" create token not-a-scraper)"
kubectl -n "$NS" port-forward "pod/$LEADER" 18080:8080 >"$WORK/pf.log" 2>&1 &
PF_PID=$!
metrics_status() { # [token] -> HTTP status of GET /metrics, body in $WORK/metrics.txt
  curl -sk -o "$WORK/metrics.txt" -w '%{http_code}' ${1:+-H "Authorization: Bearer $1"} https://127.0.0.1:18080/metrics
}
metrics_ok() {
  [ "$(metrics_status "$SCRAPER_TOKEN")" = 200 ] &&
    grep -E '^imagescan_image_vulnerabilities\{[^}]*namespace="team-a"[^}]*severity="CRITICAL"' "$WORK/metrics.txt" |
    grep -q 'team="payments"'
}
wait_for 60 "/metrics has imagescan_image_vulnerabilities for team-a with team=payments" metrics_ok
[ "$(metrics_status)" = 401 ] || fail "/metrics without a token answered $(metrics_status), not 401"
[ "$(metrics_status "$OTHER_TOKEN")" = 403 ] || fail "/metrics for an unbound ServiceAccount answered $(metrics_status "$OTHER_TOKEN"), not 403"
[ "$(curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:18080/healthz)" = 200 ] || fail "/healthz needs no token"
log "ok: /metrics over HTTPS: 401 without a token, 403 unbound, 200 for metrics-reader; /healthz open"
kill "$PF_PID" 2>/dev/null || true
PF_PID=""

# ---- rescans on the schedule -------------------------------------------------------------------

first_scan="$(report_field team-a "$NGINX_A" .status.lastScanTime)"
rescanned() {
  reports_json >"$WORK/r.json"
  local now
  now="$(report_field team-a "$NGINX_A" .status.lastScanTime)"
  [ -n "$now" ] && [ "$now" != "$first_scan" ]
}
wait_for 300 "the */2 rescan schedule scans nginx again" rescanned

# ---- report removal after the grace period -----------------------------------------------------

kubectl -n team-a delete deployment old-alpine --wait=true
kubectl -n team-a wait --for=delete pod -l app=old-alpine --timeout=120s || true
alpine_gone() {
  reports_json >"$WORK/r.json"
  [ -z "$(report_field team-a "$ALPINE_A" .metadata.name)" ]
}
wait_for 240 "the alpine report is removed after the 30s grace period" alpine_gone
reports_json >"$WORK/r.json"
[ -n "$(report_field team-a "$NGINX_A" .metadata.name)" ] || fail "the nginx report of team-a went away too"

log "PASS"
