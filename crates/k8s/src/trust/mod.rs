//! Who trusts what (issue 21): reading a pod's trusted anchors ([`pod`]) and keeping them
//! for every running meshed pod ([`index`]).

pub mod index;
pub mod pod;
pub mod report;
pub mod settings;
pub mod watch;

pub use index::TrustIndex;
pub use pod::{PodTrust, fingerprints, pod_trust};
pub use report::TrustReport;
pub use settings::RotationConfig;
