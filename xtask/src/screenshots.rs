//! `cargo xtask screenshots`: PNG screenshots of the HTML report and of the viewer, taken by
//! Debian's headless Chromium, written to `target/screenshots/` (never committed) for a reviewer
//! to look at. It builds the `social_deception` example, stores a few runs in a fresh store there
//! (one with failures, one still running), writes their reports, starts `view` and photographs
//! its pages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// A process killed when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn screenshots() -> ExitCode {
    match take() {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn take() -> Result<Vec<PathBuf>, String> {
    crate::system::ensure_packages(&["chromium"])?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("xtask lives in the workspace")?.to_owned();
    eprintln!("$ cargo build -p social_deception");
    let built = Command::new(env!("CARGO")).args(["build", "-p", "social_deception"]).current_dir(&root).status();
    if !matches!(built, Ok(status) if status.success()) {
        return Err(format!("could not build social_deception ({built:?})"));
    }
    let binary = root.join("target/debug/social_deception");
    let out = root.join("target/screenshots");
    let _ = std::fs::remove_dir_all(&out);
    let store = out.join("store");
    std::fs::create_dir_all(&store).map_err(|e| format!("cannot create {}: {e}", store.display()))?;
    let example = |args: &[&str]| -> Result<String, String> {
        let output = Command::new(&binary)
            .args(args)
            .arg("--store")
            .arg(&store)
            .current_dir(&out)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        // Exit code 1 is a run with failures: wanted here.
        if output.status.code().is_some_and(|code| code > 1) {
            return Err(format!("{args:?} failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let runs = |store: &Path| -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(store.join("runs"))
            .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    };
    example(&["run", "--replicates", "30"])?;
    let first = runs(&store).pop().ok_or("no run was stored")?;
    example(&["run", "--replicates", "12", "--seed", "5", "--set", "crash_on_replicate=3"])?;
    let second = runs(&store).into_iter().find(|id| *id != first).ok_or("no second run")?;
    let report = out.join("report.html");
    example(&[
        "report",
        &first,
        "--html",
        &report.display().to_string(),
        "--hypothesis",
        "dolphin_spoilers.win > baseline.win",
        "--hypothesis",
        "dolphin.rounds > baseline.rounds",
        "--min-effect",
        "0.1",
    ])?;
    let failures = out.join("report-failures.html");
    example(&["report", &second, "--html", &failures.display().to_string()])?;

    let mut viewer = Command::new(&binary)
        .args(["view", "--port", "0", "--store"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the viewer: {e}"))?;
    let stdout = viewer.stdout.take().ok_or("the viewer's stdout")?;
    let _viewer = Background(viewer);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url).map_err(|e| format!("the viewer printed no URL: {e}"))?;
    let url = url.trim().to_owned();
    let slow = Command::new(&binary)
        .args(["run", "--replicates", "40", "--jobs", "1", "--set", "think_ms=100", "--store"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a slow run: {e}"))?;
    let _slow = Background(slow);
    let started = Instant::now();
    let running = loop {
        if let Some(id) = runs(&store).into_iter().find(|id| *id != first && *id != second) {
            break id;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the slow run did not start".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Some units done, so that the live box has something to show.
    std::thread::sleep(Duration::from_secs(8));

    let shots = [
        ("report.png", format!("file://{}", report.display()), 5200),
        ("report-failures.png", format!("file://{}", failures.display()), 5200),
        ("view-runs.png", url.clone(), 900),
        ("view-run.png", format!("{url}runs/{first}"), 5200),
        ("view-live.png", format!("{url}runs/{running}"), 1600),
        ("view-compare.png", format!("{url}compare?a={first}&b={second}"), 2400),
    ];
    let mut files = Vec::new();
    for (name, page, height) in shots {
        let file = out.join(name);
        let profile = out.join(format!("profile-{name}"));
        let status = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                &format!("--user-data-dir={}", profile.display()),
                &format!("--window-size=1100,{height}"),
                &format!("--screenshot={}", file.display()),
                &page,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run chromium: {e}"))?;
        let _ = std::fs::remove_dir_all(&profile);
        if !status.success() || !file.exists() {
            return Err(format!("chromium could not photograph {page} ({status})"));
        }
        files.push(file);
    }
    Ok(files)
}
