//! Section 2, the pipeline in process on one core: `csr::verify` → `check_names` →
//! `Issuer::sign_leaf` → DER; and the whole `Certifier::certify` with an authenticator that
//! answers at once (so the difference is the pipeline's own overhead around the crypto).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certmint_core::authn::{Authenticated, Authenticator, AuthnError, Method, Token};
use certmint_core::ca::{LeafNames, LeafPolicy};
use certmint_core::certify::{Certifier, CertifyRequest};
use certmint_core::clock::SystemClock;
use certmint_core::identity::{Naming, ServiceAccount};
use futures::future::BoxFuture;

use super::args::Options;
use super::fixtures::{self, Pki};
use super::floor::{self, rate};
use super::report::{Row, Target};

pub fn run(opts: &Options, pki: &Pki, csrs: &[Vec<u8>]) -> (Vec<Row>, Vec<Target>) {
    let (window, rounds) = if opts.quick {
        (Duration::from_millis(300), 1)
    } else {
        (Duration::from_secs(1), 3)
    };
    // Floor and pipeline alternate, round after round; each ratio is taken within a round.
    let (mut core_step, mut full_step) = (core_step(pki, csrs), certifier_step(pki, csrs));
    let (mut core, mut full, mut core_ratio, mut full_ratio) = (vec![], vec![], vec![], vec![]);
    rate(window / 4, &mut core_step);
    rate(window / 4, &mut full_step);
    let mut lib = "";
    for _ in 0..rounds {
        let faster = floor::measure(window / 2);
        lib = faster.lib.name();
        let fc = faster.certs_per_core();
        let c = rate(window, &mut core_step);
        let f = rate(window, &mut full_step);
        core.push(c);
        full.push(f);
        core_ratio.push(c / fc);
        full_ratio.push(f / fc);
    }
    let (core, full) = (median(core), median(full));
    let (core_ratio, full_ratio) = (median(core_ratio), median(full_ratio));
    let note = match rounds {
        1 => format!("against the faster floor ({lib})"),
        n => format!("median of {n} rounds, each against the faster floor ({lib}) next to it"),
    };
    let rows = vec![
        Row::new("pipeline", "verify → check_names → sign_leaf → DER")
            .metric("certs", core, "/s")
            .metric("each", 1e6 / core, "µs")
            .metric("vs floor", core_ratio, "x")
            .note(note),
        Row::new("pipeline", "Certifier::certify (instant authn)")
            .metric("certs", full, "/s")
            .metric("each", 1e6 / full, "µs")
            .metric("vs floor", full_ratio, "x")
            .note("adds naming, token parsing, store load, chain copy"),
    ];
    let targets = vec![Target::at_least(
        "pipeline ≥ 0.8 × floor per core",
        core_ratio,
        0.8,
        "x",
    )];
    (rows, targets)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One Certify of the CA core: what it costs apart from transport and authentication.
pub fn core_step<'a>(pki: &Pki, csrs: &'a [Vec<u8>]) -> impl FnMut() + 'a {
    let (issuer, _anchors) = pki.load_issuer();
    let naming = Naming::new("linkerd", "cluster.local").expect("naming");
    let sa = ServiceAccount::new(fixtures::NS, fixtures::SA).expect("sa");
    let identity = fixtures::identity();
    let policy = LeafPolicy::default();
    let mut i = 0;
    move || {
        let der = &csrs[i % csrs.len()];
        i += 1;
        let csr = certmint_core::csr::verify(der).expect("CSR verifies");
        let spiffe = naming.spiffe_id(&sa);
        csr.check_names(&identity, Some(&spiffe)).expect("names");
        let names = LeafNames {
            dns: vec![naming.linkerd_name(&sa)],
            uri: Some(spiffe),
        };
        let leaf = issuer
            .sign_leaf(
                &names,
                csr.spki_der(),
                csr.key_kind().is_rsa(),
                &policy,
                SystemTime::now(),
            )
            .expect("signs");
        black_box(leaf.der);
    }
}

/// Proves every token to be the bench workload, without any work.
struct InstantAuthn(ServiceAccount);

impl Authenticator for InstantAuthn {
    fn authenticate<'a>(
        &'a self,
        _token: &'a Token,
    ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
        let caller = Authenticated::new(self.0.clone(), Method::Jwt, None);
        Box::pin(async move { Ok(caller) })
    }
}

/// One `Certifier::certify` with instant authentication.
pub fn certifier_step<'a>(pki: &Pki, csrs: &'a [Vec<u8>]) -> impl FnMut() + 'a {
    let sa = ServiceAccount::new(fixtures::NS, fixtures::SA).expect("sa");
    let certifier = Certifier::new(
        pki.store(),
        Arc::new(InstantAuthn(sa)),
        Naming::new("linkerd", "cluster.local").expect("naming"),
        LeafPolicy::default(),
        Arc::new(SystemClock),
    );
    let identity = fixtures::identity();
    let mut i = 0;
    move || {
        let req = CertifyRequest::linkerd(
            identity.clone(),
            b"token".to_vec().into(),
            csrs[i % csrs.len()].clone().into(),
        );
        i += 1;
        let out = futures::executor::block_on(certifier.certify(req)).expect("certified");
        black_box(out);
    }
}
