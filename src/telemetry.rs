//! Logging set-up: plain or JSON, filtered by `RUST_LOG`.
//!
//! A bare level in `RUST_LOG` (`debug`) applies to certmint only; dependency crates stay
//! at `warn` unless the operator names them (`RUST_LOG=debug,h2=debug`). The Kubernetes
//! client's per-request error line is off by default: certmint logs its own line for
//! the same failure (summarised under load).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Dependency crates log at this level unless named.
const DEPENDENCIES: &str = "warn";
/// Targets silenced by default because certmint reports the same failures itself.
const QUIET: &[&str] = &["kube_client::client::builder"];

/// Installs the global subscriber; later calls are ignored (tests start many servers).
pub fn init(format: LogFormat) {
    let spec = filter_spec(std::env::var("RUST_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("RUST_LOG is not a valid filter ({e}); using the default");
        EnvFilter::new(filter_spec(None))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The filter for a `RUST_LOG` value: bare levels become certmint's level, directives
/// that name a target are kept as they are and override the defaults.
pub fn filter_spec(rust_log: Option<&str>) -> String {
    let mut own = "info".to_owned();
    let mut named = Vec::new();
    for d in rust_log.unwrap_or("").split(',').map(str::trim) {
        if d.is_empty() {
            continue;
        }
        if is_level(d) {
            own = d.to_owned();
        } else if let Some(level) = d.strip_prefix("certmint=") {
            own = level.to_owned();
        } else {
            named.push(d);
        }
    }
    let mut spec = vec![DEPENDENCIES.to_owned(), format!("certmint={own}")];
    for quiet in QUIET {
        if !named.iter().any(|d| names_target(d, quiet)) {
            spec.push(format!("{quiet}=off"));
        }
    }
    spec.extend(named.into_iter().map(str::to_owned));
    spec.join(",")
}

fn is_level(d: &str) -> bool {
    ["off", "error", "warn", "info", "debug", "trace"]
        .iter()
        .any(|l| d.eq_ignore_ascii_case(l))
}

/// Whether directive `d` names `target` or one of its parent modules.
fn names_target(d: &str, target: &str) -> bool {
    let t = d.split(['=', '[']).next().unwrap_or("");
    target == t || target.starts_with(&format!("{t}::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_dependencies_at_warn() {
        assert_eq!(
            filter_spec(None),
            "warn,certmint=info,kube_client::client::builder=off"
        );
    }

    #[test]
    fn bare_level_applies_to_certmint_only() {
        let spec = filter_spec(Some("debug"));
        assert!(spec.starts_with("warn,certmint=debug,"), "{spec}");
        let f = EnvFilter::try_new(&spec).unwrap();
        assert_eq!(
            f.max_level_hint(),
            Some(tracing::level_filters::LevelFilter::DEBUG)
        );
    }

    #[test]
    fn named_crates_are_honoured() {
        let spec = filter_spec(Some("info,h2=debug,kube_client=info"));
        assert_eq!(spec, "warn,certmint=info,h2=debug,kube_client=info");
        assert!(EnvFilter::try_new(&spec).is_ok());
    }
}
