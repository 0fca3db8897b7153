//! A CSR from a client: parse, self-signature, key policy (steps 3-4), then the name
//! checks (step 5) against the identity every seed asks for and against its own names.

#![no_main]

use certmint_core::csr;
use certmint_core::identity::ServiceAccount;
use certmint_fuzz::naming;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(verified) = csr::verify(data) else {
        return;
    };
    let n = naming();
    let sa = ServiceAccount::new("shop", "web").expect("service account");
    let identity = n.linkerd_name(&sa);
    let spiffe = n.spiffe_id(&sa);
    let _ = verified.check_names(&identity, Some(&spiffe));
    let _ = verified.check_names(&identity, None);
    let _ = verified.check_names("", None);
    assert!(!verified.spki_der().is_empty());
});
