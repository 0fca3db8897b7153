//! Section 1, the crypto floor: ECDSA P-256 sign and verify with ring on one core — the
//! two operations a Certify cannot avoid (the leaf signature; the CSR self-signature).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};

use super::args::Options;
use super::report::Row;

/// Roughly a leaf's TBSCertificate: names, SANs, key, extensions.
const TBS_BYTES: usize = 400;

/// Operations per second on one core.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    pub sign: f64,
    pub verify: f64,
}

impl Floor {
    /// certs/s/core = 1 / (1/sign + 1/verify).
    pub fn certs_per_core(&self) -> f64 {
        1.0 / (1.0 / self.sign + 1.0 / self.verify)
    }
}

pub fn run(opts: &Options) -> Vec<Row> {
    let window = if opts.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(1)
    };
    let mut bench = Bench::new();
    let sign = median_rate(window, || bench.sign());
    let verify = median_rate(window, || bench.verify());
    let floor = Floor { sign, verify };
    vec![
        Row::new("floor", "ECDSA P-256 sign, 400 B (ring)")
            .metric("rate", sign, "/s")
            .metric("each", 1e6 / sign, "µs"),
        Row::new("floor", "ECDSA P-256 verify, 400 B (ring)")
            .metric("rate", verify, "/s")
            .metric("each", 1e6 / verify, "µs"),
        Row::new("floor", "floor = 1/(1/sign + 1/verify), one core")
            .metric("certs", floor.certs_per_core(), "/s")
            .metric("each", 1e6 / floor.certs_per_core(), "µs"),
    ]
}

/// The floor measured once more, in one short window per operation: sections that compare
/// against the floor take it next to their own measurements, because this VM's speed
/// drifts by 10–20 % within minutes.
pub fn measure(window: Duration) -> Floor {
    let mut bench = Bench::new();
    let sign = rate(window, &mut || bench.sign());
    let verify = rate(window, &mut || bench.verify());
    Floor { sign, verify }
}

/// A P-256 key, a TBS-sized message and its signature.
struct Bench {
    rng: SystemRandom,
    key: EcdsaKeyPair,
    msg: Vec<u8>,
    sig: Vec<u8>,
    public: UnparsedPublicKey<Vec<u8>>,
}

impl Bench {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
        let msg: Vec<u8> = (0..TBS_BYTES).map(|i| i as u8).collect();
        let sig = key.sign(&rng, &msg).expect("sign").as_ref().to_vec();
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
        Bench {
            rng,
            key,
            msg,
            sig,
            public,
        }
    }

    fn sign(&mut self) {
        black_box(
            self.key
                .sign(&self.rng, black_box(&self.msg))
                .expect("sign"),
        );
    }

    fn verify(&mut self) {
        self.public
            .verify(black_box(&self.msg), black_box(&self.sig))
            .expect("verify");
    }
}

/// The median of three timing windows of `f`, in calls per second (after a warm-up).
pub fn median_rate(window: Duration, mut f: impl FnMut()) -> f64 {
    rate(window / 4, &mut f);
    let mut rates = [0.0; 3];
    for r in &mut rates {
        *r = rate(window, &mut f);
    }
    rates.sort_by(f64::total_cmp);
    rates[1]
}

pub fn rate(window: Duration, f: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..16 {
            f();
        }
        n += 16;
        let elapsed = start.elapsed();
        if elapsed >= window {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}
