//! A bearer token as a client sends it: the token-file trimming rules (DESIGN.md §5),
//! then local JWT verification (header, algorithm, signature, claims, service account).

#![no_main]

use std::sync::OnceLock;

use certmint_k8s::authn::jwt::JwtAuthenticator;
use certmint_core::authn::{Authenticator, Token};
use certmint_fuzz::{JWT_AUDIENCE, JWT_ISSUER, jwt_keys_path};
use libfuzzer_sys::fuzz_target;

/// The seed generator's public keys, so its signed tokens verify; without them a key
/// made here (signed seeds then fail on the signature, the parsers still run).
fn authenticator() -> &'static JwtAuthenticator {
    static AUTHN: OnceLock<JwtAuthenticator> = OnceLock::new();
    AUTHN.get_or_init(|| {
        let mut path = jwt_keys_path();
        if !path.exists() {
            let key = rcgen::KeyPair::generate().expect("key");
            path = std::env::temp_dir().join(format!("certmint-fuzz-{}.pem", std::process::id()));
            std::fs::write(&path, key.public_key_pem()).expect("write key");
        }
        JwtAuthenticator::from_files(
            &[path],
            vec![JWT_ISSUER.to_owned()],
            vec![JWT_AUDIENCE.to_owned()],
        )
        .expect("JWT keys")
    })
}

fuzz_target!(|data: &[u8]| {
    let authn = authenticator();
    let Ok(token) = Token::from_bytes(data) else {
        return;
    };
    assert!(!token.as_str().is_empty());
    assert_eq!(token.as_str(), token.as_str().trim_ascii());
    let _ = futures::executor::block_on(authn.authenticate(&token));
});
