//! `submit slurm RUN-or-EXPERIMENT --shards N`: a run's shards as a Slurm job array. Writes an
//! sbatch script into the run directory whose every array task runs this same binary with
//! `run EXP --resume RUN --shard auto`, so a requeued or resubmitted task finishes only what is
//! missing of its shard; submits it with `sbatch` and says how to follow it. Given an experiment,
//! it first creates the run (its manifest only) so that every task joins the same run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::debug::shell_quote;
use super::Invocation;
use super::StoreArgs;
use crate::error::Error;
use crate::registry::Registry;
use crate::session::Session;
use crate::store::{RunDir, Store};

#[derive(Subcommand, Debug)]
pub(super) enum SubmitCommand {
    /// Submit the shards as a Slurm job array (sbatch --array=0-(N-1)).
    Slurm(SlurmArgs),
}

#[derive(Args, Debug)]
pub(super) struct SlurmArgs {
    /// A stored run to finish (a unique prefix is enough), or an experiment to start a run of.
    target: String,
    /// How many shards (array tasks) to split the run into.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=crate::shard::MAX_SHARDS))]
    shards: u64,
    /// An argument for sbatch, passed through (repeatable): --sbatch-arg=--partition=cpu
    /// --sbatch-arg=--time=02:00:00.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
    /// Print the script and the sbatch command; create and submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// For a new run: only these treatments (repeatable); the baseline always runs.
    #[arg(long = "treatment", value_name = "NAME")]
    treatments: Vec<String>,
    /// For a new run: replicates per condition.
    #[arg(long, value_parser = super::replicates)]
    replicates: Option<u64>,
    /// For a new run: its seed.
    #[arg(long)]
    seed: Option<u64>,
    /// For a new run: KEY=VALUE overrides (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Passed to every task's `run` (a unit's deadline: 500ms, 120s, 2min, 1h).
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    timeout: Option<std::time::Duration>,
    /// Passed to every task's `run`: retries of a unit that failed in a way worth it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: Option<u32>,
    #[command(flatten)]
    store: StoreArgs,
}

pub(super) fn submit(registry: &Registry, command: SubmitCommand, invocation: &Invocation) -> Result<ExitCode, Error> {
    let SubmitCommand::Slurm(args) = command;
    let store = Store::locate(args.store.store.as_deref());
    let root = store.root().to_path_buf();
    if !root.is_absolute() {
        return Err(Error::BadOption {
            option: "--store".into(),
            value: format!("'{}'", root.display()),
            why: "submit needs the absolute path of a store on a file system every node of the cluster mounts at the \
                  same place (e.g. --store /shared/project/.crystallize)"
                .into(),
        });
    }
    if !root.is_dir() {
        return Err(Error::BadOption {
            option: "--store".into(),
            value: format!("'{}'", root.display()),
            why: format!(
                "it is not an existing directory; create it on the shared file system first (mkdir -p {})",
                shell_quote(&root.display().to_string())
            ),
        });
    }
    let program = std::env::current_exe()
        .map_err(|e| Error::Store(format!("cannot find the path of this program for the script: {e}")))?;
    let sbatch = if args.dry_run { None } else { Some(find_program("sbatch")?) };
    let is_experiment = registry.experiments().iter().any(|e| e.name() == args.target);
    let new_run_flags =
        !args.treatments.is_empty() || args.replicates.is_some() || args.seed.is_some() || !args.sets.is_empty();
    // The run: an existing one, or a new one created now (a dry run only plans it).
    let (experiment, run_id, run_path) = if is_experiment {
        let settings = crate::config_file::settings(
            invocation.app.manifest_dir,
            registry,
            registry.experiment(Some(&args.target))?,
        )?;
        let id = crate::store::new_run_id(&args.target);
        let mut session = Session::named(args.target.clone())
            .treatments(args.treatments.iter().cloned())
            .sets(args.sets.iter().cloned())
            .settings(settings)
            .origin(super::run::origin(invocation))
            .store(&root)
            .run_id(id.clone());
        if let Some(replicates) = args.replicates {
            session = session.replicates(replicates);
        }
        if let Some(seed) = args.seed {
            session = session.seed(seed);
        }
        let mut prepared = session.prepare()?;
        if let Some(manifest) = prepared.manifest_mut() {
            manifest.shards = Some(args.shards);
        }
        let replicates = prepared.plan.replicates.len() as u64;
        if replicates < args.shards {
            eprintln!(
                "warning: {} shards for {replicates} replicates: shards {replicates} and up have no units (each shard \
                 runs whole replicate indices)",
                args.shards
            );
        }
        let path = root.join("runs").join(&id);
        if !args.dry_run {
            let opened = prepared.open()?;
            if let Some(dir) = opened.run_dir() {
                eprintln!("created run {} in {}", dir.manifest.run, dir.path().display());
            }
        }
        (args.target.clone(), id, path)
    } else {
        if new_run_flags {
            return Err(Error::BadOption {
                option: "submit slurm".into(),
                value: format!("'{}'", args.target),
                why: "--treatment, --replicates, --seed and --set are for a new run: give an experiment's name, not a run".into(),
            });
        }
        let run = store.run(&args.target).map_err(|error| match error {
            Error::UnknownRun { id, store, known, .. } => {
                let experiments: Vec<&str> = registry.experiments().iter().map(|e| e.name()).collect();
                Error::Store(format!(
                    "'{id}' is neither an experiment ({}) nor a run of the store {store} (runs: {known})",
                    experiments.join(", ")
                ))
            }
            other => other,
        })?;
        check_shards(&run, args.shards)?;
        (run.manifest.experiment.clone(), run.manifest.run.clone(), run.path().to_path_buf())
    };
    let script = script(&ScriptParts {
        program: &program,
        experiment: &experiment,
        run: &run_id,
        run_path: &run_path,
        store: &root,
        shards: args.shards,
        timeout: args.timeout,
        retries: args.retries,
    });
    let mut sbatch_line = vec!["sbatch".to_owned(), "--parsable".to_owned()];
    sbatch_line.extend(args.sbatch_args.iter().cloned());
    let script_path = run_path.join("slurm").join(format!("array-{}.sbatch", crate::store::writer_id()));
    if args.dry_run {
        sbatch_line.push(script_path.display().to_string());
        println!("{script}");
        eprintln!(
            "dry run: nothing was created or submitted; without --dry-run this writes the script above to {} and runs:\n  {}",
            script_path.display(),
            sbatch_line.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let slurm_dir = run_path.join("slurm");
    std::fs::create_dir_all(&slurm_dir)
        .map_err(|e| Error::Store(format!("cannot create {}: {e}", slurm_dir.display())))?;
    std::fs::write(&script_path, &script)
        .map_err(|e| Error::Store(format!("cannot write {}: {e}", script_path.display())))?;
    sbatch_line.push(script_path.display().to_string());
    let sbatch = sbatch.unwrap_or_else(|| PathBuf::from("sbatch"));
    let output = std::process::Command::new(&sbatch)
        .args(&sbatch_line[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Store(format!("cannot run {}: {e}", sbatch.display())))?;
    if !output.status.success() {
        return Err(Error::Store(format!(
            "sbatch refused the job ({}): {}\nthe script is {}; the run {run_id} is in the store, submit it again with \
             `submit slurm {run_id} --shards {}`",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            script_path.display(),
            args.shards
        )));
    }
    let answer = String::from_utf8_lossy(&output.stdout);
    let job = answer.trim().split(';').next().unwrap_or("").to_owned();
    let store_flag = format!(" --store {}", shell_quote(&root.display().to_string()));
    println!("{job}");
    eprintln!(
        "submitted Slurm job {job}: {} array tasks, one shard of run {run_id} each (script {})\nfollow it with:\n  \
         {} status {run_id}{store_flag}\n  squeue -j {job}\ntask logs: {}/slurm/{job}_<task>.out; a requeued or \
         resubmitted task finishes only what its shard is missing",
        args.shards,
        script_path.display(),
        shell_quote(&invocation.program),
        run_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A run made for a shard count other than `shards` would be split differently: refused.
fn check_shards(run: &RunDir, shards: u64) -> Result<(), Error> {
    match run.manifest.shards {
        Some(made) if made != shards => Err(Error::BadOption {
            option: "--shards".into(),
            value: shards.to_string(),
            why: format!("run {} was made for {made} shards; submit it with --shards {made}", run.manifest.run),
        }),
        _ => Ok(()),
    }
}

/// `name` on `PATH`, or the error saying it is not installed.
fn find_program(name: &str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::BadOption {
        option: "submit slurm".into(),
        value: "(sbatch)".into(),
        why: format!(
            "{name} is not installed here (not found on PATH): run submit on a Slurm login node, or print the script \
             with --dry-run and submit it yourself"
        ),
    })
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

struct ScriptParts<'a> {
    program: &'a Path,
    experiment: &'a str,
    run: &'a str,
    run_path: &'a Path,
    store: &'a Path,
    shards: u64,
    timeout: Option<std::time::Duration>,
    retries: Option<u32>,
}

/// The sbatch script: one array task per shard, each running its shard of the run.
fn script(parts: &ScriptParts<'_>) -> String {
    let q = |path: &Path| shell_quote(&path.display().to_string());
    let mut extra = String::new();
    if let Some(timeout) = parts.timeout {
        extra.push_str(&format!(" --timeout {}ms", timeout.as_millis()));
    }
    if let Some(retries) = parts.retries {
        extra.push_str(&format!(" --retries {retries}"));
    }
    format!(
        "#!/bin/sh\n\
         # Written by `submit slurm`: run {run} of experiment {experiment} as a job array of {shards} shards.\n\
         # Task I runs shard I/{shards} (the units whose replicate index is I modulo {shards}); a requeued or\n\
         # resubmitted task resumes its shard and runs only what is missing (exit 0: nothing to do).\n\
         #SBATCH --job-name={experiment}\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --output={log}\n\
         #SBATCH --requeue\n\
         #SBATCH --open-mode=append\n\
         exec {program} run {experiment} --resume {run_q} --shard auto --shard-count {shards} --store {store}{extra} \\\n    \
         ${{SLURM_CPUS_PER_TASK:+--jobs $SLURM_CPUS_PER_TASK}}\n",
        run = parts.run,
        run_q = shell_quote(parts.run),
        experiment = parts.experiment,
        shards = parts.shards,
        last = parts.shards - 1,
        log = parts.run_path.join("slurm").join("%A_%a.out").display(),
        program = q(parts.program),
        store = q(parts.store),
    )
}
