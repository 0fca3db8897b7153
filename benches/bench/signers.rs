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

/// A sign/verify pair on one library; ring and aws-lc-rs share this API but for how a
/// key pair is read from PKCS#8 (`$from`).
macro_rules! p256_bench {
    ($name:ident, $lib:ident, $from:expr) => {
        struct $name {
            rng: $lib::rand::SystemRandom,
            key: $lib::signature::EcdsaKeyPair,
            msg: Vec<u8>,
            sig: Vec<u8>,
            public: $lib::signature::UnparsedPublicKey<Vec<u8>>,
        }

        impl $name {
            fn new() -> Self {
                use $lib::signature::{self as s, KeyPair};
                let rng = $lib::rand::SystemRandom::new();
                let alg = &s::ECDSA_P256_SHA256_ASN1_SIGNING;
                let pkcs8 = s::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
                let key = $from(alg, pkcs8.as_ref(), &rng).expect("key");
                let msg = message();
                let sig = key.sign(&rng, &msg).expect("sign").as_ref().to_vec();
                let public = s::UnparsedPublicKey::new(
                    &s::ECDSA_P256_SHA256_ASN1,
                    key.public_key().as_ref().to_vec(),
                );
                $name {
                    rng,
                    key,
                    msg,
                    sig,
                    public,
                }
            }
        }

        impl Signer for $name {
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
    };
}

p256_bench!(RingBench, ring, ring::signature::EcdsaKeyPair::from_pkcs8);
p256_bench!(AwsLcBench, aws_lc_rs, |alg, pkcs8, _rng| {
    aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8)
});
