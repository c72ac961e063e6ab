//! The Debian packages the system tests need (a real headless Chromium, a real one-node Slurm),
//! installed by `cargo xtask test` when they are missing, so that a fresh Debian machine runs the
//! whole suite with nothing but the Rust toolchain.

use std::process::Command;

/// Every Debian package some test drives for real. A test that needs one finds it installed when
/// it runs under `cargo xtask test`.
pub const DEBIAN_PACKAGES: &[&str] = &[
    // tests/e2e/slurm.rs: a one-node Slurm (slurmctld, slurmd, sbatch...) and its authentication
    // daemon, started by the test itself with its own configuration.
    "slurm-wlm",
    "munge",
    // tests/e2e/browser.rs: a real headless Chromium, driven over CDP.
    "chromium",
];

/// Installs those of `packages` that `dpkg` does not know as installed: `apt-get update` first,
/// then one `apt-get install`. Needs root and apt-get; says what to do otherwise.
pub fn ensure_packages(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages.iter().copied().filter(|package| !installed(package)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        return Err(format!(
            "the tests need Debian packages that are missing: {list}; install them \
             (`sudo apt-get install -y {list}`) or run `cargo xtask test` as root"
        ));
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!("the tests need the packages {list}, and there is no apt-get here to install them"));
    }
    eprintln!("$ apt-get update && apt-get install -y {list}");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} failed ({status})")),
        Err(error) => Err(format!("could not run {shown}: {error}")),
    }
}
