//! `rotation plan`: the steps of a trust-anchor rotation for this cluster, with the
//! commands.

use std::process::ExitCode;

use anyhow::Context;

use super::PlanArgs;

pub(super) fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let bytes = certmint_core::fsutil::read_bounded(&a.new_anchor, 1 << 20)
        .with_context(|| format!("cannot read --new-anchor {}", a.new_anchor.display()))?;
    let anchor = certmint_core::ca::TrustAnchors::from_pem(&bytes, std::time::SystemTime::now())
        .map_err(|e| {
            anyhow::anyhow!(
                "--new-anchor {}: {e}; pass the root made by `certmint ca root`",
                a.new_anchor.display()
            )
        })?;
    let first = &anchor.certs()[0];
    let mut text = format!(
        "# New trust anchor {} (sha256 {}), valid until {}.\n",
        first.subject,
        first.fingerprint_sha256,
        certmint_core::ca::fmt_time(first.not_after)
    );
    let new = a.new_anchor.display();
    let (ns, secret, cm, l5d) = (&a.namespace, &a.secret, &a.configmap, &a.linkerd_namespace);
    let current = match &a.trust_anchors {
        Some(p) => p.display().to_string(),
        None => "current.pem".to_owned(),
    };
    let fetch = match &a.trust_anchors {
        Some(_) => String::new(),
        None => format!(
            "kubectl -n {ns} get configmap {cm} -o jsonpath='{{.data.ca-bundle\\.crt}}' > current.pem\n"
        ),
    };
    text += &format!(
        "# Trust-anchor rotation for namespace {ns} (issuer Secret {secret}, anchors ConfigMap {cm}).
# certmint holds a new issuer until every running meshed pod trusts its anchor. Between the
# steps, `certmint rotation status --kubernetes` (every replica through the API server; or
# --admin http://127.0.0.1:9990 after a port-forward) says what blocks the next one:
# exit 0 nothing blocks, 1 waiting (on what, until when), 2 unsafe.

# 1. The overlap bundle: the anchors in use and the new one.
{fetch}certmint ca bundle {current} {new} > overlap.pem
kubectl -n {ns} create configmap {cm} --from-file=ca-bundle.crt=overlap.pem --dry-run=client -o yaml | kubectl apply -f -
#    (anchors from the chart: helm upgrade certmint helm/certmint -n {ns} --reuse-values --set-file trustAnchorsPEM=overlap.pem)
#    certmint serves it at once; with pod certificates it rewrites its ClusterTrustBundle.

# 2. Give every workload the overlap bundle.
#    Linkerd: the injector writes identityTrustAnchorsPEM into each pod; proxies read it at start.
linkerd upgrade --identity-trust-anchors-file=overlap.pem | kubectl apply -f -
kubectl -n {l5d} create configmap linkerd-identity-trust-roots --from-file=ca-bundle.crt=overlap.pem --dry-run=client -o yaml | kubectl apply -f -
kubectl -n {l5d} rollout restart deploy
#    then restart the meshed workloads; each namespace with one:
#    kubectl -n NAMESPACE rollout restart deploy,statefulset,daemonset
certmint rotation status --kubernetes   # lists every pod that does not trust the new anchor yet, with its restart command
#    Istio (sidecars, ztunnel): nothing to restart. They take the roots of every
#    CreateCertificate answer and hold the overlap after their next renewal (within one
#    leaf lifetime); istio-ca-root-cert follows the chart's anchors.
#    Pod certificates: the kubelet re-projects the ClusterTrustBundle within about a minute.

# 3. The new issuer, under the new root (its key offline or in an HSM, docs/operations.md §12).
certmint ca issuer --ca-cert {new} --ca-key new-root.key --cert issuer-new/tls.crt --key issuer-new/tls.key
certmint check --trust-anchors overlap.pem --issuer-dir issuer-new
kubectl -n {ns} create secret tls {secret} --cert=issuer-new/tls.crt --key=issuer-new/tls.key --dry-run=client -o yaml | kubectl apply -f -
#    certmint activates it by itself once no running pod refuses it (an IssuerUpdated
#    Event); until then the old issuer keeps signing and:
certmint rotation status --kubernetes   # exit 1: held, with the pods and the command that fixes each

# 4. Wait until no leaf from the old issuer is alive: one leaf lifetime (plus clock skew)
#    after the new issuer became active. status gives the time:
certmint rotation status --kubernetes   # exit 1 'leaves under the old anchor ... live until T', then exit 0 'may be removed now'

# 5. Drop the old anchor (earlier is refused by status: exit 2 until it is put back).
kubectl -n {ns} create configmap {cm} --from-file=ca-bundle.crt={new} --dry-run=client -o yaml | kubectl apply -f -
linkerd upgrade --identity-trust-anchors-file={new} | kubectl apply -f -
kubectl -n {l5d} create configmap linkerd-identity-trust-roots --from-file=ca-bundle.crt={new} --dry-run=client -o yaml | kubectl apply -f -
#    Workloads that still trust the old anchor too are harmless; restart them at leisure so
#    that nothing trusts it any more.
certmint rotation status --kubernetes   # exit 0, phase steady\n"
    );
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(ExitCode::SUCCESS)
}
