//! Seed tokens: projected and legacy service-account JWTs signed by keys made here, with
//! the shapes the token target must refuse (expired, wrong audience, HS256, unsigned).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "certmint";

/// The public keys' PEM (for `fuzz/corpus/_keys`) and (name, token) seeds.
pub fn tokens() -> Result<(String, Vec<(String, String)>)> {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let ec_enc = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes())?;
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)?;
    let (rsa_enc, rsa_pub) = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePublicKey;
        let pem = rsa_key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)?;
        let public = rsa_key
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)?;
        (EncodingKey::from_rsa_pem(pem.as_bytes())?, public)
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let far = now + 365 * 86400;
    let projected = |aud: &str, exp: i64| {
        json!({
            "iss": ISSUER, "aud": [aud], "sub": "system:serviceaccount:shop:web",
            "iat": now - 10, "nbf": now - 10, "exp": exp,
            "kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "web", "uid": "u"}}
        })
    };
    let legacy = json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": far, "sub": "system:serviceaccount:shop:web",
        "kubernetes.io/serviceaccount/namespace": "shop",
        "kubernetes.io/serviceaccount/service-account.name": "web"
    });
    let sign = |alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>| {
        let mut h = Header::new(alg);
        h.kid = kid.map(str::to_owned);
        encode(&h, claims, key)
    };
    let hs = EncodingKey::from_secret(b"not a configured key");
    let mut out = vec![
        (
            "es256",
            sign(Algorithm::ES256, &ec_enc, &projected(AUDIENCE, far), None)?,
        ),
        (
            "es256-kid",
            sign(
                Algorithm::ES256,
                &ec_enc,
                &projected(AUDIENCE, far),
                Some("k1"),
            )?,
        ),
        (
            "rs256",
            sign(Algorithm::RS256, &rsa_enc, &projected(AUDIENCE, far), None)?,
        ),
        (
            "rs512-legacy",
            sign(Algorithm::RS512, &rsa_enc, &legacy, None)?,
        ),
        (
            "expired",
            sign(
                Algorithm::ES256,
                &ec_enc,
                &projected(AUDIENCE, now - 100),
                None,
            )?,
        ),
        (
            "wrong-aud",
            sign(Algorithm::ES256, &ec_enc, &projected("other", far), None)?,
        ),
        (
            "hs256",
            sign(Algorithm::HS256, &hs, &projected(AUDIENCE, far), None)?,
        ),
    ];
    let with_newline = format!("  {}\n", out[0].1);
    out.push(("file-newline", with_newline));
    out.push(("garbage", "not.a.jwt".to_owned()));
    let public = format!("{}{}", ec.public_key_pem(), rsa_pub);
    Ok((
        public,
        out.into_iter().map(|(n, t)| (n.to_owned(), t)).collect(),
    ))
}
