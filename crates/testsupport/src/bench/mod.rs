//! The benchmark parts that both benchmarks (`certmint` and `soak`) use: the CSR and PKI
//! fixtures, the load client, process probes, and the fake API server on its own thread.

pub mod fixtures;
pub mod load;
pub mod machine;
pub mod server;
