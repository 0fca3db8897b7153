//! What `rotation status` says about a trust report, and its exit code.

use certmint_k8s::trust::TrustReport;
use certmint_k8s::trust::report::{AnchorReport, WorkloadReport};

/// The exit code and what to tell the operator.
pub(super) fn judge(r: &TrustReport) -> (u8, String) {
    if !r.interlock {
        let text = "the interlock is off (certmint has no pod watch: files mode or no Kubernetes client); nothing is known about what workloads trust\n";
        return (0, text.to_owned());
    }
    if !r.synced {
        return (
            1,
            "waiting: certmint has not loaded the pod list yet\n".to_owned(),
        );
    }
    let mut out = format!(
        "phase: {}\n{} running meshed workload(s); active issuer's anchor {}\n",
        phase(r),
        r.workloads.len(),
        short(r.active_anchor.as_deref())
    );
    out += &anchors(r);
    let refusing: Vec<&WorkloadReport> = r.refusing_active().collect();
    let mut unsafe_state = false;
    if !refusing.is_empty() {
        out += &format!(
            "UNSAFE: {} running workload(s) do not trust the active issuer's anchor; their connections fail until they are restarted with a bundle that holds it:\n",
            refusing.len()
        );
        out += &pods(&refusing);
        unsafe_state = true;
    }
    for a in &r.removed_early {
        out += &format!(
            "UNSAFE: anchor {} ({}) was removed from the bundle while leaves under it live; put it back until {}\n",
            a.subject,
            short(Some(&a.fingerprint)),
            a.safe_from
        );
        unsafe_state = true;
    }
    if unsafe_state {
        return (2, out);
    }
    let unknown: Vec<&WorkloadReport> = r.unknown().collect();
    if !unknown.is_empty() {
        out += &format!(
            "note: certmint cannot tell what {} workload(s) trust (a ConfigMap version it did not see, a value that does not parse, or an Istio/trust-bundle workload older than this certmint process, known after one leaf lifetime); they count as not trusting a new anchor:\n",
            unknown.len()
        );
        out += &pods(&unknown);
    }
    if let Some(p) = &r.pending {
        let blocking: Vec<&WorkloadReport> = r.blocking_pending().collect();
        out += &format!(
            "waiting: issuer {} (anchor {}) is held until {} workload(s) trust its anchor; restart them with the overlap bundle:\n",
            p.issuer,
            short(Some(&p.anchor)),
            blocking.len()
        );
        out += &pods(&blocking);
        return (1, out);
    }
    let mut waiting = false;
    for a in r.incoming() {
        let lacking: Vec<&WorkloadReport> = r.lacking(&a.fingerprint).collect();
        if lacking.is_empty() {
            out += &format!(
                "ready: every running workload trusts the anchor {} ({}); an issuer under it will be activated at once\n",
                a.subject,
                short(Some(&a.fingerprint))
            );
            continue;
        }
        out += &format!(
            "waiting: {} workload(s) do not trust the anchor {} ({}) yet; restart them with the overlap bundle before writing an issuer under it (it would be held):\n",
            lacking.len(),
            a.subject,
            short(Some(&a.fingerprint))
        );
        out += &pods(&lacking);
        waiting = true;
    }
    if waiting {
        return (1, out);
    }
    let retiring: Vec<&AnchorReport> = r.retiring().collect();
    if !retiring.is_empty() {
        for a in retiring {
            out += &format!(
                "waiting: leaves under the old anchor {} ({}) live until {}; remove it from the bundle after that\n",
                a.subject,
                short(Some(&a.fingerprint)),
                a.safe_to_remove_at.as_deref().unwrap_or("?")
            );
        }
        return (1, out);
    }
    out +=
        "nothing blocks: no issuer is waiting, every running workload trusts the active anchor\n";
    (0, out)
}

/// Where a rotation stands, in one word.
fn phase(r: &TrustReport) -> &'static str {
    let unused = r.anchors.iter().filter(|a| a.issuer.is_none()).count();
    match (&r.pending, unused) {
        _ if r.refusing_active().next().is_some() || !r.removed_early.is_empty() => "unsafe",
        (Some(_), _) => "new issuer held",
        (None, 0) => "steady (one anchor in use)",
        (None, _) if r.anchors.iter().any(|a| a.retired_at.is_some()) => {
            "new issuer active, old anchor still in the bundle"
        }
        (None, _) => "overlap bundle (an anchor no issuer uses yet, or an old one)",
    }
}

/// Each anchor of the bundle: who uses it, who does not trust it, when it may go.
fn anchors(r: &TrustReport) -> String {
    r.anchors
        .iter()
        .map(|a| {
            let role = match a.issuer.as_deref() {
                Some(which) => format!("the {which} issuer chains to it"),
                None => format!(
                    "no issuer uses it; {} workload(s) do not trust it",
                    a.untrusting
                ),
            };
            let removable = match (&a.safe_to_remove_at, a.safe_to_remove_now) {
                (None, _) => "stays while in use".to_owned(),
                (Some(_), true) => "may be removed now".to_owned(),
                (Some(t), false) => format!("may be removed from {t}"),
            };
            format!(
                "  anchor {} ({}, until {}): {role}; {removable}\n",
                a.subject,
                short(Some(&a.fingerprint)),
                a.not_after
            )
        })
        .collect()
}

fn pods(list: &[&WorkloadReport]) -> String {
    list.iter()
        .map(|w| {
            let knows = match &w.anchors {
                Some(a) => format!(
                    "trusts {}",
                    a.iter()
                        .map(|f| short(Some(f)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "trust unknown".to_owned(),
            };
            let owner = w.owner.as_deref().unwrap_or("no controller");
            format!(
                "  {}/{} ({owner}, {}, {knows})\n    fix: {}\n",
                w.namespace,
                w.name,
                w.source,
                restart(w)
            )
        })
        .collect()
}

/// The command that replaces the pod: its controller restarted, else the pod deleted.
fn restart(w: &WorkloadReport) -> String {
    let ns = &w.namespace;
    match w.owner.as_deref().and_then(|o| o.split_once('/')) {
        // A ReplicaSet's Deployment is its name without the pod-template hash.
        Some(("replicaset", rs)) => match rs.rsplit_once('-') {
            Some((deploy, _)) => format!("kubectl -n {ns} rollout restart deployment/{deploy}"),
            None => format!("kubectl -n {ns} delete pod {}", w.name),
        },
        Some((kind @ ("statefulset" | "daemonset" | "deployment"), name)) => {
            format!("kubectl -n {ns} rollout restart {kind}/{name}")
        }
        _ => format!("kubectl -n {ns} delete pod {}", w.name),
    }
}

fn short(fingerprint: Option<&str>) -> String {
    match fingerprint {
        Some(f) if f.len() > 16 => format!("sha256:{}…", &f[..16]),
        Some(f) => format!("sha256:{f}"),
        None => "(none)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certmint_k8s::trust::report::PendingReport;

    fn w(name: &str, owner: Option<&str>, active: bool, pending: Option<bool>) -> WorkloadReport {
        WorkloadReport {
            namespace: "shop".into(),
            name: name.into(),
            owner: owner.map(str::to_owned),
            source: "linkerd-env".into(),
            anchors: Some(vec!["ab".repeat(32)]),
            trusts_active: active,
            trusts_pending: pending,
        }
    }

    fn report(workloads: Vec<WorkloadReport>, pending: bool) -> TrustReport {
        TrustReport {
            interlock: true,
            synced: true,
            active_anchor: Some("ab".repeat(32)),
            pending: pending.then(|| PendingReport {
                issuer: "CN=b".into(),
                anchor: "cd".repeat(32),
            }),
            workloads,
            ..TrustReport::default()
        }
    }

    fn anchor(issuer: Option<&str>, retired: bool, safe_now: bool) -> AnchorReport {
        AnchorReport {
            fingerprint: "ef".repeat(32),
            subject: "CN=old root".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            issuer: issuer.map(str::to_owned),
            retired_at: retired.then(|| "2026-12-06T10:00:00Z".to_owned()),
            safe_to_remove_at: issuer.is_none().then(|| "2026-12-07T10:00:00Z".to_owned()),
            safe_to_remove_now: safe_now,
            untrusting: 0,
        }
    }

    #[test]
    fn exit_codes_say_nothing_blocks_waiting_or_unsafe() {
        let (code, _) = judge(&report(vec![w("a", None, true, None)], false));
        assert_eq!(code, 0);
        let (code, text) = judge(&report(
            vec![w(
                "web-5d9c-x1",
                Some("replicaset/web-5d9c"),
                true,
                Some(false),
            )],
            true,
        ));
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("shop/web-5d9c-x1 (replicaset/web-5d9c, linkerd-env")
                && text.contains("kubectl -n shop rollout restart deployment/web"),
            "{text}"
        );
        let (code, text) = judge(&report(vec![w("old", None, false, None)], false));
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("kubectl -n shop delete pod old"), "{text}");
        let off = TrustReport::default();
        assert_eq!(judge(&off).0, 0);
        // Unknown is not refusing: said, but not unsafe.
        let mut unknown = w("istio-1", None, false, None);
        unknown.anchors = None;
        let (code, text) = judge(&report(vec![unknown], false));
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("cannot tell what 1 workload(s) trust"),
            "{text}"
        );
    }

    #[test]
    fn the_old_anchor_waits_for_its_leaves_and_removing_it_early_is_unsafe() {
        let mut r = report(vec![w("a", None, true, None)], false);
        r.anchors = vec![
            anchor(Some("active"), false, false),
            anchor(None, true, false),
        ];
        let (code, text) = judge(&r);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("live until 2026-12-07T10:00:00Z") && text.contains("old anchor"),
            "{text}"
        );
        r.anchors[1].safe_to_remove_now = true;
        let (code, text) = judge(&r);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("may be removed now"), "{text}");
        // An incoming anchor that a workload does not trust yet: restart it first.
        let mut incoming = anchor(None, false, false);
        incoming.fingerprint = "12".repeat(32);
        r.anchors.push(incoming);
        let (code, text) = judge(&r);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("1 workload(s) do not trust the anchor")
                && text.contains("kubectl -n shop delete pod a"),
            "{text}"
        );
        r.workloads[0].anchors = Some(vec!["ab".repeat(32), "12".repeat(32)]);
        let (code, text) = judge(&r);
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("ready: every running workload trusts"),
            "{text}"
        );
        r.anchors.pop();
        r.anchors.pop();
        r.removed_early = vec![certmint_k8s::trust::report::RemovedAnchor {
            fingerprint: "ef".repeat(32),
            subject: "CN=old root".into(),
            safe_from: "2026-12-07T10:00:00Z".into(),
        }];
        let (code, text) = judge(&r);
        assert_eq!(code, 2, "{text}");
        assert!(
            text.contains("put it back until 2026-12-07T10:00:00Z"),
            "{text}"
        );
    }
}
