#!/usr/bin/env bash
# End-to-end test of certmint on a throwaway kind cluster (not part of `cargo test` or CI;
# needs docker, kind, kubectl and helm).
#
#   tests/e2e/kind.sh
#
# Builds the image, creates a trust anchor and an issuer with `certmint ca`, installs the
# chart, gets a certificate from a Job that authenticates with a projected service-account
# token (audience identity.l5d.io) over TLS, checks that a mismatched identity is refused,
# rotates the issuer Secret, waits for the IssuerUpdated Event and for every replica to load
# the new issuer, and checks that both new leaves and the serving certificate come from it.
#
# Environment:
#   CERTMINT_E2E_CLUSTER  kind cluster name (default certmint-e2e); must not exist yet
#   CERTMINT_E2E_KEEP=1   keep the cluster afterwards (KUBECONFIG path is printed)
#   CERTMINT_E2E_IMAGE    image tag to build and load (default certmint:e2e)
#   KIND_NODE_IMAGE       node image for `kind create cluster --image` (optional)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=${CERTMINT_E2E_CLUSTER:-certmint-e2e}
IMAGE=${CERTMINT_E2E_IMAGE:-certmint:e2e}
KEEP=${CERTMINT_E2E_KEEP:-0}
NS=certmint                       # where certmint runs
CLIENT_NS=certmint-e2e-client     # where the test workload runs
CLIENT_SA=e2e-workload
RELEASE=certmint
ISSUER_SECRET=certmint-issuer
ANCHORS_CM=certmint-trust-anchors
TRUST_DOMAIN=cluster.local
CONTROL_NS=linkerd
SERVER_NAME="certmint.${NS}.serviceaccount.identity.${CONTROL_NS}.${TRUST_DOMAIN}"
ADDR="https://${RELEASE}.${NS}.svc:8080"
CLIENT_IDENTITY="${CLIENT_SA}.${CLIENT_NS}.serviceaccount.identity.${CONTROL_NS}.${TRUST_DOMAIN}"
ISSUER1_CN="certmint e2e issuer 1"
ISSUER2_CN="certmint e2e issuer 2"

log() { printf '\n==> %s\n' "$*"; }
die() { printf '\nE2E FAILED: %s\n' "$*" >&2; exit 1; }

# ---- prerequisites -------------------------------------------------------------------
missing=()
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/e2e/kind.sh needs docker, kind, kubectl and helm on PATH." >&2
  echo "missing: ${missing[*]}" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "docker is installed but no Docker engine is reachable (docker info failed)." >&2
  exit 2
fi
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "kind cluster '$CLUSTER' already exists; delete it (kind delete cluster --name $CLUSTER)" >&2
  echo "or choose another name with CERTMINT_E2E_CLUSTER." >&2
  exit 2
fi

TMP=$(mktemp -d)
PKI="$TMP/pki"
mkdir -p "$PKI"
export KUBECONFIG="$TMP/kubeconfig"   # never touch the user's kubeconfig
CREATED=0

diagnostics() {
  echo "---- diagnostics ----"
  kubectl get nodes -o wide || true
  kubectl -n "$NS" get all,events -o wide || true
  kubectl -n "$NS" logs -l app.kubernetes.io/name=certmint --all-containers --prefix --tail=200 || true
  kubectl -n "$CLIENT_NS" get jobs,pods,events -o wide || true
  kubectl -n "$CLIENT_NS" logs -l e2e.certmint.io/job --all-containers --prefix --tail=100 || true
}

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ "$CREATED" = 1 ]; then diagnostics; fi
  if [ "$CREATED" = 1 ]; then
    if [ "$KEEP" = 1 ]; then
      echo "keeping cluster $CLUSTER; KUBECONFIG=$KUBECONFIG (delete: kind delete cluster --name $CLUSTER)"
    else
      kind delete cluster --name "$CLUSTER" >/dev/null 2>&1
    fi
  fi
  if [ "$KEEP" != 1 ]; then rm -rf "$TMP"; fi
  if [ "$rc" -eq 0 ]; then echo "E2E PASSED"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The certmint CLI from the image under test. $PKI is mounted at the same path, so file
# arguments are identical inside and outside the container; the container joins kind's
# Docker network and uses the cluster-internal kubeconfig for --kubernetes checks.
certmint() {
  docker run --rm -u "$(id -u):$(id -g)" --network kind \
    -v "$PKI:$PKI" -e KUBECONFIG="$TMP/kubeconfig.internal" -v "$TMP/kubeconfig.internal:$TMP/kubeconfig.internal:ro" \
    "$IMAGE" "$@"
}

# ---- cluster and image ---------------------------------------------------------------
log "creating kind cluster $CLUSTER"
kind_args=(--name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s)
if [ -n "${KIND_NODE_IMAGE:-}" ]; then kind_args+=(--image "$KIND_NODE_IMAGE"); fi
CREATED=1
kind create cluster "${kind_args[@]}"
kind get kubeconfig --internal --name "$CLUSTER" >"$TMP/kubeconfig.internal"

COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
log "building $IMAGE (commit $COMMIT)"
docker build --build-arg GIT_COMMIT="$COMMIT" -t "$IMAGE" "$ROOT"
version=$(docker run --rm "$IMAGE" --version)
echo "$version"
if [ "$COMMIT" != unknown ] && ! grep -q "${COMMIT:0:7}" <<<"$version"; then
  die "certmint --version does not show the git commit ${COMMIT:0:7}"
fi
kind load docker-image "$IMAGE" --name "$CLUSTER"

# ---- credentials -----------------------------------------------------------------------
log "creating the trust anchor and issuer 1 with certmint ca"
mkdir -p "$PKI/issuer-1" "$PKI/issuer-2"
certmint ca root --cert "$PKI/root.crt" --key "$PKI/root.key" --name "certmint e2e root"
certmint ca issuer --ca-cert "$PKI/root.crt" --ca-key "$PKI/root.key" \
  --cert "$PKI/issuer-1/tls.crt" --key "$PKI/issuer-1/tls.key" --name "$ISSUER1_CN"
certmint check --trust-anchors "$PKI/root.crt" --issuer-dir "$PKI/issuer-1" \
  || die "certmint check rejected the freshly created issuer (exit $?)"

# ---- install -----------------------------------------------------------------------------
log "installing the chart into namespace $NS"
kubectl create namespace "$NS"
kubectl -n "$NS" create secret tls "$ISSUER_SECRET" \
  --cert="$PKI/issuer-1/tls.crt" --key="$PKI/issuer-1/tls.key"
helm install "$RELEASE" "$ROOT/helm/certmint" --namespace "$NS" \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set issuer.external=true --set issuer.secretName="$ISSUER_SECRET" \
  --set trustAnchors.configMapName="$ANCHORS_CM" --set-file trustAnchorsPEM="$PKI/root.crt" \
  --set trustDomain="$TRUST_DOMAIN" --set controlNamespace="$CONTROL_NS"
kubectl -n "$NS" rollout status "deployment/$RELEASE" --timeout=240s

log "certmint check against the live Secret and ConfigMap"
certmint check --kubernetes --namespace "$NS" --secret "$ISSUER_SECRET" --configmap "$ANCHORS_CM" \
  || die "certmint check --kubernetes failed (exit $?)"

# ---- the test workload ---------------------------------------------------------------
kubectl create namespace "$CLIENT_NS"
kubectl -n "$CLIENT_NS" create serviceaccount "$CLIENT_SA"
kubectl -n "$CLIENT_NS" create configmap trust-anchors --from-file=ca-bundle.crt="$PKI/root.crt"

pod_spec_common() {
  cat <<EOF
      serviceAccountName: ${CLIENT_SA}
      automountServiceAccountToken: false
      restartPolicy: Never
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      volumes:
        - name: token
          projected:
            sources:
              - serviceAccountToken:
                  audience: identity.l5d.io
                  expirationSeconds: 3600
                  path: identity-token
        - name: anchors
          configMap: {name: trust-anchors}
        - name: out
          emptyDir: {}
EOF
}

container_common() {
  cat <<EOF
          image: ${IMAGE}
          imagePullPolicy: Never
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: token, mountPath: /var/run/secrets/tokens, readOnly: true}
            - {name: anchors, mountPath: /anchors, readOnly: true}
            - {name: out, mountPath: /out}
EOF
}

job_header() {
  cat <<EOF
apiVersion: batch/v1
kind: Job
metadata:
  name: $1
  namespace: ${CLIENT_NS}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 180
  template:
    metadata:
      labels: {e2e.certmint.io/job: "$1"}
    spec:
EOF
}

# Job NAME [SERVICE_ACCOUNT]: certify as SERVICE_ACCOUNT (default the pod's own), then
# print the written chain with `certmint inspect` (verified against the anchors).
certify_job() {
  local name=$1 sa=${2:-$CLIENT_SA}
  {
    job_header "$name"
    pod_spec_common
    cat <<EOF
      initContainers:
        - name: certify
          args: [certify, --addr, "${ADDR}", --server-name, "${SERVER_NAME}",
                 --token-file, /var/run/secrets/tokens/identity-token,
                 --namespace, "${CLIENT_NS}", --service-account, "${sa}",
                 --trust-anchors, /anchors/ca-bundle.crt, --out-dir, /out]
EOF
    container_common
    cat <<EOF
      containers:
        - name: inspect
          args: [inspect, /out/tls.crt, --trust-anchors, /anchors/ca-bundle.crt]
EOF
    container_common
  } | kubectl apply -f -
}

# Job NAME: show the chain the Service presents on the gRPC port.
serving_job() {
  local name=$1
  {
    job_header "$name"
    pod_spec_common
    cat <<EOF
      containers:
        - name: inspect
          args: [inspect, --connect, "${RELEASE}.${NS}.svc:8080", --server-name, "${SERVER_NAME}",
                 --trust-anchors, /anchors/ca-bundle.crt]
EOF
    container_common
  } | kubectl apply -f -
}

# Waits for a Job to finish; returns 0 if it succeeded, 1 if it failed.
wait_job() {
  local name=$1 deadline=$((SECONDS + 200)) ok failed
  while [ $SECONDS -lt $deadline ]; do
    ok=$(kubectl -n "$CLIENT_NS" get job "$name" -o jsonpath='{.status.succeeded}')
    failed=$(kubectl -n "$CLIENT_NS" get job "$name" -o jsonpath='{.status.failed}')
    if [ "${ok:-0}" -ge 1 ]; then return 0; fi
    if [ "${failed:-0}" -ge 1 ]; then return 1; fi
    sleep 2
  done
  die "job $name did not finish in time"
}

job_logs() { kubectl -n "$CLIENT_NS" logs "job/$1" -c "${2:-inspect}"; }

# Checks that the inspected chain of job $1 names the client identity and issuer $2, not $3.
expect_issued_by() {
  local out
  out=$(job_logs "$1")
  echo "$out"
  grep -qF "$CLIENT_IDENTITY" <<<"$out" || die "$1: leaf does not name $CLIENT_IDENTITY"
  grep -qF "$2" <<<"$out" || die "$1: chain is not from '$2'"
  if grep -qF "$3" <<<"$out"; then die "$1: chain still mentions '$3'"; fi
}

# ---- first certificate -----------------------------------------------------------------
log "Job certify-1: projected token -> Certify over TLS -> verified certificate"
certify_job certify-1
wait_job certify-1 || { job_logs certify-1 certify || true; die "certify-1 failed"; }
expect_issued_by certify-1 "$ISSUER1_CN" "$ISSUER2_CN"

log "Job certify-denied: the same token asking for another service account must be refused"
certify_job certify-denied not-my-service-account
if wait_job certify-denied; then die "certify-denied succeeded: identity check is not enforced"; fi
job_logs certify-denied certify || true

# ---- issuer rotation -------------------------------------------------------------------
event_state() {
  kubectl -n "$NS" get events \
    --field-selector "involvedObject.name=${ISSUER_SECRET},reason=IssuerUpdated" \
    -o jsonpath='{range .items[*]}{.metadata.name}@{.metadata.resourceVersion} {end}'
}
issuer_expiry_of() {
  kubectl get --raw "/api/v1/namespaces/${NS}/pods/$1:9990/proxy/metrics" \
    | awk '/^certmint_issuer_expiry_timestamp_seconds[ {]/ {print $NF; exit}'
}

pods=$(kubectl -n "$NS" get pods -l app.kubernetes.io/name=certmint \
  --field-selector=status.phase=Running -o jsonpath='{.items[*].metadata.name}')
before=""   # "pod=expiry" words (no associative arrays: bash 3 on macOS)
for p in $pods; do
  v=$(issuer_expiry_of "$p")
  [ -n "$v" ] || die "pod $p exposes no certmint_issuer_expiry_timestamp_seconds"
  before="$before $p=$v"
done
events_before=$(event_state)

log "rotating the issuer Secret to issuer 2 (same trust anchor)"
certmint ca issuer --ca-cert "$PKI/root.crt" --ca-key "$PKI/root.key" \
  --cert "$PKI/issuer-2/tls.crt" --key "$PKI/issuer-2/tls.key" --name "$ISSUER2_CN"
certmint check --trust-anchors "$PKI/root.crt" --issuer-dir "$PKI/issuer-2"
kubectl -n "$NS" create secret tls "$ISSUER_SECRET" \
  --cert="$PKI/issuer-2/tls.crt" --key="$PKI/issuer-2/tls.key" --dry-run=client -o yaml \
  | kubectl apply -f -

log "waiting for the IssuerUpdated Event"
deadline=$((SECONDS + 150))
until [ "$(event_state)" != "$events_before" ] && [ -n "$(event_state)" ]; do
  [ $SECONDS -lt $deadline ] || die "no new IssuerUpdated Event on Secret $ISSUER_SECRET"
  sleep 2
done
kubectl -n "$NS" get events --field-selector "involvedObject.name=${ISSUER_SECRET}"

log "waiting for every replica to load issuer 2 (certmint_issuer_expiry_timestamp_seconds)"
for entry in $before; do
  p=${entry%%=*} old=${entry#*=}
  until now=$(issuer_expiry_of "$p") && [ -n "$now" ] && [ "$now" != "$old" ]; do
    [ $SECONDS -lt $deadline ] || die "pod $p still reports the old issuer expiry $old"
    sleep 2
  done
  echo "$p: issuer expiry $old -> $now"
done

log "Job certify-2: a new certificate must come from issuer 2"
certify_job certify-2
wait_job certify-2 || { job_logs certify-2 certify || true; die "certify-2 failed"; }
expect_issued_by certify-2 "$ISSUER2_CN" "$ISSUER1_CN"

log "Job serving-2: the gRPC serving certificate must have been renewed from issuer 2"
serving_job serving-2
wait_job serving-2 || die "serving-2 failed"
out=$(job_logs serving-2)
echo "$out"
grep -qF "$ISSUER2_CN" <<<"$out" || die "serving certificate is not from issuer 2"

log "certmint check after the rotation"
certmint check --kubernetes --namespace "$NS" --secret "$ISSUER_SECRET" --configmap "$ANCHORS_CM" \
  || die "certmint check --kubernetes failed after the rotation (exit $?)"
log "rotation status: an issuer under the same root is not the interlock's business"
certmint rotation status --kubernetes --certmint-namespace "$NS" \
  || die "certmint rotation status --kubernetes is not 0 after a same-root rotation (exit $?)"
skipped=$(kubectl -n "$NS" get events --field-selector reason=IssuerUpdateSkipped -o name)
[ -z "$skipped" ] || die "unexpected IssuerUpdateSkipped Events: $skipped"
