//! The same ECDSA P-256 sign/verify pair with ring and with aws-lc-rs, for the floor: the
//! two operations a Certify cannot avoid (the leaf signature; the CSR self-signature).
//! certmint itself uses aws-lc-rs only; ring is here to show what the switch gained.

use std::hint::black_box;

/// Roughly a leaf's TBSCertificate: names, SANs, key, extensions.
const TBS_BYTES: usize = 400;

/// The crypto libraries the floor compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    Ring,
    AwsLc,
}

impl Lib {
    pub const ALL: [Lib; 2] = [Lib::Ring, Lib::AwsLc];

    pub fn name(self) -> &'static str {
        match self {
            Lib::Ring => "ring",
            Lib::AwsLc => "aws-lc-rs",
        }
    }
}

/// One sign or one verify of a TBS-sized message, repeated by the timing loop.
pub trait Signer {
    fn sign(&mut self);
    fn verify(&mut self);
}

pub fn new(lib: Lib) -> Box<dyn Signer> {
    match lib {
        Lib::Ring => Box::new(RingBench::new()),
        Lib::AwsLc => Box::new(AwsLcBench::new()),
    }
}

fn message() -> Vec<u8> {
    (0..TBS_BYTES).map(|i| i as u8).collect()
}

struct RingBench {
    rng: ring::rand::SystemRandom,
    key: ring::signature::EcdsaKeyPair,
    msg: Vec<u8>,
    sig: Vec<u8>,
    public: ring::signature::UnparsedPublicKey<Vec<u8>>,
}

impl RingBench {
    fn new() -> Self {
        use ring::signature::{self as s, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let alg = &s::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = s::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
        let key = s::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key");
        let msg = message();
        let sig = key.sign(&rng, &msg).expect("sign").as_ref().to_vec();
        let public = s::UnparsedPublicKey::new(
            &s::ECDSA_P256_SHA256_ASN1,
            key.public_key().as_ref().to_vec(),
        );
        RingBench {
            rng,
            key,
            msg,
            sig,
            public,
        }
    }
}

impl Signer for RingBench {
    fn sign(&mut self) {
        black_box(
            self.key
                .sign(&self.rng, black_box(&self.msg))
                .expect("sign"),
        );
    }

    fn verify(&mut self) {
        let sig = black_box(&self.sig);
        self.public
            .verify(black_box(&self.msg), sig)
            .expect("verify");
    }
}

struct AwsLcBench {
    rng: aws_lc_rs::rand::SystemRandom,
    key: aws_lc_rs::signature::EcdsaKeyPair,
    msg: Vec<u8>,
    sig: Vec<u8>,
    public: aws_lc_rs::signature::UnparsedPublicKey<Vec<u8>>,
}

impl AwsLcBench {
    fn new() -> Self {
        use aws_lc_rs::signature::{self as s, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &s::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = s::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
        let key = s::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("key");
        let msg = message();
        let sig = key.sign(&rng, &msg).expect("sign").as_ref().to_vec();
        let public = s::UnparsedPublicKey::new(
            &s::ECDSA_P256_SHA256_ASN1,
            key.public_key().as_ref().to_vec(),
        );
        AwsLcBench {
            rng,
            key,
            msg,
            sig,
            public,
        }
    }
}

impl Signer for AwsLcBench {
    fn sign(&mut self) {
        black_box(
            self.key
                .sign(&self.rng, black_box(&self.msg))
                .expect("sign"),
        );
    }

    fn verify(&mut self) {
        let sig = black_box(&self.sig);
        self.public
            .verify(black_box(&self.msg), sig)
            .expect("verify");
    }
}
