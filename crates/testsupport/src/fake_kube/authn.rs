//! Verifies the tokens the fake minted, in the order kube-apiserver's service-account
//! authenticator does (signature, issuer, audiences, then exp/nbf/iat with leeway), and
//! with its error strings, e.g. `[invalid bearer token, token audiences ["a"] is invalid
//! for the target audiences ["b"]]`.

use std::{collections::BTreeMap, collections::HashSet, time::Duration};

use jsonwebtoken::{Validation, errors::ErrorKind};

use super::signing::SigningKey;
use super::tokens::{Claims, ISSUER, LEGACY_ISSUER, unix_now};

/// A reviewed token's user, as TokenReview's `status.user` and `status.audiences`.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub audiences: Vec<String>,
}

/// Reviews `token` for `requested` audiences (empty: the API server's own audience).
/// `Err` is the `status.error` string.
pub(crate) fn review(
    keys: &[std::sync::Arc<SigningKey>],
    token: &str,
    requested: &[String],
    leeway: Duration,
    revoked_pods: &HashSet<String>,
) -> Result<Authenticated, String> {
    let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
    let key = keys
        .iter()
        .find(|k| kid.is_none() || Some(&k.kid) == kid.as_ref())
        .ok_or_else(|| invalid("go-jose/go-jose: error in cryptographic primitive"))?;
    let claims = verify_signature(key, token).map_err(invalid)?;
    if claims.iss != ISSUER && claims.iss != LEGACY_ISSUER {
        return Err(invalid(format!("unknown token issuer {:?}", claims.iss)));
    }
    let audiences = check_audiences(&claims, requested).map_err(invalid)?;
    check_times(&claims, leeway.as_secs() as i64).map_err(invalid)?;
    if let Some(k) = &claims.kubernetes
        && let Some(pod) = &k.pod
        && revoked_pods.contains(&format!("{}/{}", k.namespace, pod.name))
    {
        return Err(invalid(format!("pod {:?} not found", pod.name)));
    }
    let (ns, name, uid) = identity(&claims).map_err(invalid)?;
    Ok(Authenticated {
        username: format!("system:serviceaccount:{ns}:{name}"),
        uid,
        groups: vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".to_string(),
        ],
        extra: extra(&claims),
        audiences,
    })
}

fn invalid(reason: impl std::fmt::Display) -> String {
    format!("[invalid bearer token, {reason}]")
}

fn verify_signature(key: &SigningKey, token: &str) -> Result<Claims, String> {
    let mut validation = Validation::new(key.algorithm());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    match jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                "go-jose/go-jose: error in cryptographic primitive".to_string()
            }
            ErrorKind::InvalidToken | ErrorKind::Base64(_) => {
                "go-jose/go-jose: compact JWS format must have three parts".to_string()
            }
            _ => format!("token could not be parsed: {e}"),
        }),
    }
}

fn check_audiences(claims: &Claims, requested: &[String]) -> Result<Vec<String>, String> {
    let api = vec![ISSUER.to_string()];
    let mut token_auds = claims.aud.as_ref().map(|a| a.to_vec()).unwrap_or_default();
    if token_auds.is_empty() {
        // Legacy tokens carry no audience: only the API server's own is implied.
        token_auds = api.clone();
    }
    let requested = if requested.is_empty() {
        &api[..]
    } else {
        requested
    };
    let both: Vec<String> = requested
        .iter()
        .filter(|a| token_auds.contains(a))
        .cloned()
        .collect();
    if both.is_empty() {
        return Err(format!(
            "token audiences {} is invalid for the target audiences {}",
            go_quoted(&token_auds),
            go_quoted(requested)
        ));
    }
    Ok(both)
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn check_times(claims: &Claims, leeway: i64) -> Result<(), String> {
    let now = unix_now();
    if claims.exp.is_some_and(|exp| now > exp + leeway) {
        return Err("service account token has expired".to_string());
    }
    if claims.nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err("service account token is not valid yet".to_string());
    }
    if claims.iat.is_some_and(|iat| now + leeway < iat) {
        return Err("service account token is issued in the future".to_string());
    }
    Ok(())
}

/// (namespace, service-account name, service-account uid) from either claim flavour.
fn identity(claims: &Claims) -> Result<(String, String, String), String> {
    if let Some(k) = &claims.kubernetes {
        let sa = &k.serviceaccount;
        return Ok((k.namespace.clone(), sa.name.clone(), sa.uid.clone()));
    }
    match (
        &claims.legacy_namespace,
        &claims.legacy_name,
        &claims.legacy_uid,
    ) {
        (Some(ns), Some(name), Some(uid)) => Ok((ns.clone(), name.clone(), uid.clone())),
        _ => Err("service account token claims are incomplete".to_string()),
    }
}

fn extra(claims: &Claims) -> BTreeMap<String, Vec<String>> {
    let mut extra = BTreeMap::new();
    if let Some(jti) = &claims.jti {
        let key = "authentication.kubernetes.io/credential-id".to_string();
        extra.insert(key, vec![format!("JTI={jti}")]);
    }
    if let Some(pod) = claims.kubernetes.as_ref().and_then(|k| k.pod.as_ref()) {
        let prefix = "authentication.kubernetes.io";
        extra.insert(format!("{prefix}/pod-name"), vec![pod.name.clone()]);
        extra.insert(format!("{prefix}/pod-uid"), vec![pod.uid.clone()]);
    }
    if let Some(node) = claims.kubernetes.as_ref().and_then(|k| k.node.as_ref()) {
        let key = "authentication.kubernetes.io/node-name".to_string();
        extra.insert(key, vec![node.name.clone()]);
    }
    extra
}
