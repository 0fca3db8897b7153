//! The YAML config file: parse, then every validation and derived value.

#![no_main]

use certmint::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_yaml(text, "fuzz.yaml") else {
        return;
    };
    let _ = config.validate();
    let _ = config.naming();
    let _ = config.server_name();
});
