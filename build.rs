//! Records the git commit for `certmint --version`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=CERTMINT_GIT_COMMIT");
    watch_git();
    println!("cargo:rustc-env=CERTMINT_GIT_COMMIT={}", git_commit());
    Ok(())
}

fn git_commit() -> String {
    if let Ok(c) = std::env::var("CERTMINT_GIT_COMMIT") {
        return c;
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

/// Rebuild when this checkout's commit changes: its HEAD, the branch HEAD names and the
/// packed refs. Not the whole refs directory, which other branches and worktrees move.
fn watch_git() {
    let mut refs = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    refs.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for r in refs {
        if let Some(path) = git(&["rev-parse", "--git-path", &r])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
}
