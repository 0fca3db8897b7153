//! The claims of a projected service-account token and the checks certmint makes on them
//! locally: issuer, audience, time window with skew, lifetime cap and the `kubernetes.io`
//! claims. Pure code; the signature is checked separately (see `jws`).

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::PodRef;
use certmint_core::identity::ServiceAccount;

/// What local verification needs to know besides the key set.
#[derive(Clone, Debug)]
pub struct Policy {
    pub audiences: Vec<String>,
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    pub skew: Duration,
    /// Longest `exp − iat` judged locally; longer-lived tokens go to TokenReview.
    pub max_lifetime: Duration,
}

/// The claims read from a projected (or legacy) service-account token.
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Audience>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Option<Kubernetes>,
}

/// `aud` is one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct Kubernetes {
    pub namespace: Option<String>,
    pub serviceaccount: Option<ObjectRef>,
    pub pod: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
}

#[derive(Debug, Deserialize)]
pub struct ObjectRef {
    pub name: Option<String>,
    pub uid: Option<String>,
}

/// Decodes the payload without verifying it, to decide whether the token can be judged
/// locally at all. `None` when the token is not a JWT with a JSON claims object.
pub fn peek(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Claims {
    /// Why these claims need a TokenReview (`issuer` is the accepted one), or `None` when
    /// local verification can judge them.
    pub fn not_judgeable(&self, issuer: &str, policy: &Policy) -> Option<&'static str> {
        if self.iss.as_deref() != Some(issuer) {
            return Some("issuer not verified locally");
        }
        let (Some(exp), Some(iat)) = (self.exp, self.iat) else {
            return Some("token lacks exp or iat");
        };
        let max = i64::try_from(policy.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        if exp.saturating_sub(iat) > max {
            return Some("token lifetime exceeds the local verification maximum");
        }
        if self.kubernetes.is_none() {
            return Some("token has no kubernetes.io claims");
        }
        None
    }

    /// The checks made after the signature verified; `now` in Unix seconds.
    pub fn check(&self, policy: &Policy, now: i64) -> Result<ServiceAccount, &'static str> {
        let skew = i64::try_from(policy.skew.as_secs()).unwrap_or(i64::MAX);
        let granted = match &self.aud {
            Some(Audience::One(a)) => std::slice::from_ref(a),
            Some(Audience::Many(list)) => list.as_slice(),
            None => &[],
        };
        if !granted.iter().any(|a| policy.audiences.contains(a)) {
            return Err("token audiences do not match");
        }
        if self.exp.is_none_or(|exp| now > exp.saturating_add(skew)) {
            return Err("token has expired");
        }
        if self.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
            return Err("token is not valid yet");
        }
        if self.iat.is_some_and(|iat| now.saturating_add(skew) < iat) {
            return Err("token is issued in the future");
        }
        self.service_account()
    }

    /// The pod the token is bound to, when it names one.
    pub fn pod(&self) -> Option<PodRef> {
        let pod = self.kubernetes.as_ref()?.pod.as_ref()?;
        PodRef::new(pod.name.as_deref(), pod.uid.as_deref())
    }

    /// The node the token's pod runs on, when the token says.
    pub fn node(&self) -> Option<&str> {
        self.kubernetes.as_ref()?.node.as_ref()?.name.as_deref()
    }

    fn service_account(&self) -> Result<ServiceAccount, &'static str> {
        let k = self
            .kubernetes
            .as_ref()
            .ok_or("token has no kubernetes.io claims")?;
        let ns = k.namespace.as_deref().ok_or("token lacks its namespace")?;
        let sa = k
            .serviceaccount
            .as_ref()
            .ok_or("token lacks its service account")?;
        let name = sa
            .name
            .as_deref()
            .ok_or("token lacks its service account")?;
        if sa.uid.as_deref().is_none_or(str::is_empty) {
            return Err("token lacks its service account uid");
        }
        if let Some(pod) = &k.pod {
            let named = pod.name.as_deref().is_some_and(|n| !n.is_empty());
            if !named || pod.uid.as_deref().is_none_or(str::is_empty) {
                return Err("token names a pod without name or uid");
            }
        }
        let account =
            ServiceAccount::new(ns, name).map_err(|_| "token names an invalid service account")?;
        if self
            .sub
            .as_deref()
            .is_some_and(|s| s != format!("system:serviceaccount:{ns}:{name}"))
        {
            return Err("token subject disagrees with its service-account claims");
        }
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://kubernetes.default.svc";

    fn policy() -> Policy {
        Policy {
            audiences: vec!["identity.l5d.io".into()],
            skew: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(48 * 3600),
        }
    }

    fn claims(edit: impl FnOnce(&mut serde_json::Value)) -> Claims {
        let mut v = json!({
            "iss": ISS, "aud": ["identity.l5d.io"], "iat": 1000, "nbf": 1000, "exp": 4600,
            "sub": "system:serviceaccount:emojivoto:web",
            "kubernetes.io": {
                "namespace": "emojivoto",
                "serviceaccount": {"name": "web", "uid": "u-1"},
                "pod": {"name": "web-0", "uid": "u-2"},
            },
        });
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn accepts_a_well_formed_projected_token() {
        let sa = claims(|_| {}).check(&policy(), 2000).unwrap();
        assert_eq!(sa, ServiceAccount::new("emojivoto", "web").unwrap());
        assert_eq!(
            claims(|_| {}).pod(),
            PodRef::new(Some("web-0"), Some("u-2"))
        );
        assert_eq!(claims(|_| {}).not_judgeable(ISS, &policy()), None);
    }

    #[test]
    fn each_claim_check_refuses_on_its_own() {
        let p = policy();
        type Case = (fn(&mut serde_json::Value), i64, &'static str);
        let cases: Vec<Case> = vec![
            (
                |v| v["aud"] = json!("other"),
                2000,
                "token audiences do not match",
            ),
            (|_| {}, 4600 + 61, "token has expired"),
            (|v| v["nbf"] = json!(3000), 2000, "token is not valid yet"),
            (
                |v| v["iat"] = json!(2100),
                2000,
                "token is issued in the future",
            ),
            (
                |v| v["kubernetes.io"]["serviceaccount"]["uid"] = json!(""),
                2000,
                "token lacks its service account uid",
            ),
            (
                |v| v["kubernetes.io"]["pod"]["uid"] = json!(null),
                2000,
                "token names a pod without name or uid",
            ),
            (
                |v| v["sub"] = json!("system:serviceaccount:x:y"),
                2000,
                "token subject disagrees with its service-account claims",
            ),
            (
                |v| v["kubernetes.io"]["namespace"] = json!("Bad_NS"),
                2000,
                "token names an invalid service account",
            ),
        ];
        for (edit, now, want) in cases {
            assert_eq!(claims(edit).check(&p, now).unwrap_err(), want);
        }
        // Inside the skew on both sides.
        assert!(claims(|_| {}).check(&p, 4600 + 60).is_ok());
        assert!(claims(|v| v["nbf"] = json!(2050)).check(&p, 2000).is_ok());
    }

    #[test]
    fn leaves_legacy_long_lived_and_foreign_tokens_to_token_review() {
        let p = policy();
        let judge = |edit: fn(&mut serde_json::Value)| claims(edit).not_judgeable(ISS, &p);
        assert!(judge(|v| v["iss"] = json!("kubernetes/serviceaccount")).is_some());
        assert!(judge(|v| v["exp"] = json!(1000 + 48 * 3600 + 1)).is_some());
        assert!(judge(|v| v["exp"] = json!(1000 + 48 * 3600)).is_none());
        assert!(judge(|v| v.as_object_mut().unwrap().remove("iat").map(drop).unwrap()).is_some());
        assert!(judge(|v| v.as_object_mut().unwrap().remove("exp").map(drop).unwrap()).is_some());
        assert!(
            judge(|v| v
                .as_object_mut()
                .unwrap()
                .remove("kubernetes.io")
                .map(drop)
                .unwrap())
            .is_some()
        );
    }

    #[test]
    fn peek_reads_only_three_part_tokens_with_json_claims() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let ok = format!("{}.{}.sig", b64("{}"), b64(r#"{"iss":"x","exp":5}"#));
        assert_eq!(peek(&ok).unwrap().exp, Some(5));
        assert!(peek("a.b").is_none());
        assert!(peek(&format!("{ok}.more")).is_none());
        assert!(peek(&format!("h.{}.s", b64("[1]"))).is_none());
    }
}
