//! `confirm [EXP] H --replicates N [--from RUN]`: explore, then confirm, honestly. Writes a
//! pre-registration (hypothesis, test, alpha, replicates and their indices, code fingerprints,
//! the exploratory run) into the store before the first unit, runs replicate indices that no
//! earlier run of the experiment used (fresh data with the same seed), and reports the verdict
//! with its integrity ([`crate::confirmation`]). Checks that can fail before anything runs (too
//! few replicates, code changed since the exploratory run) refuse the confirmation with exit
//! code 2 unless `--force`, which runs it anyway and leaves those checks failed in its report.

use std::process::ExitCode;

use clap::Args;

use super::inspect::Format;
use super::run::{self, Execution, Output};
use super::StoreArgs;
use super::{probability, Invocation};
use crate::confirmation::{self, SampleSize};
use crate::error::Error;
use crate::hypothesis::{self, EvalOptions, Hypothesis, TestKind};
use crate::plan::BASELINE;
use crate::registry::{Experiment, Registry};
use crate::report;
use crate::seed::SeedPolicy;
use crate::session::{CacheMode, Session};
use crate::stats::Correction;
use crate::store::preregistration::{Adequacy, Exploration, Preregistration};
use crate::store::{RunDir, Store};

/// Arguments of `confirm`.
#[derive(Args, Debug)]
pub(super) struct ConfirmArgs {
    /// `[EXP] H`: the experiment (may be left out when the binary has only one) and the
    /// hypothesis, e.g. "dolphin.win < baseline.win".
    #[arg(value_name = "[EXP] H", num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// Replicates per condition (default: what --from RUN's effect needs for --power, else the
    /// experiment's replicates).
    #[arg(long, value_parser = super::replicates)]
    replicates: Option<u64>,
    /// The exploratory run the hypothesis came from: plans the replicates from its effect, and
    /// names every part of the code or configuration that changed since.
    #[arg(long, value_name = "RUN")]
    from: Option<String>,
    /// The significance level.
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    alpha: f64,
    /// The power the replicates must give against the effect seen in --from RUN.
    #[arg(long, default_value_t = 0.8, value_parser = probability)]
    power: f64,
    /// The test to decide with (default: the paired permutation test with shared seeds); one of
    /// paired-permutation, permutation, paired-t, welch-t, student-t, mann-whitney, wilcoxon, fisher.
    #[arg(long, value_name = "TEST", value_parser = test_kind)]
    test: Option<TestKind>,
    /// The run's seed (default: --from RUN's, else the experiment's). Fresh replicate indices
    /// give fresh data with any seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override a param or an input field: KEY=VALUE (repeatable; default: --from RUN's).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Units in parallel (default: available cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..1025))]
    jobs: Option<u64>,
    /// Stop scheduling new units after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Fail a unit still running after this long (500ms, 120s, 2min, 1h); recorded in the
    /// pre-registration.
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    timeout: Option<std::time::Duration>,
    /// Retry a unit that failed in a way worth it up to N more times (same seed); recorded in
    /// the pre-registration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: Option<u32>,
    /// Run even though a check fails before the first unit (too few replicates, changed code);
    /// the report then says INVALID or CONFOUNDED, never VALID.
    #[arg(long)]
    force: bool,
    /// Serve `#[step(cache)]` outputs stored before this confirmation. Without it a
    /// confirmation runs every cached step afresh (`--cache write`: fresh data must be fresh)
    /// and stores the outputs.
    #[arg(long)]
    allow_cached: bool,
    /// Print the report as one JSON object.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print the report as Markdown tables.
    #[arg(long)]
    md: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Refuses a `--power` that does not exceed `--alpha` (no test is planned to be that weak).
pub(super) fn check_power(power: f64, alpha: f64) -> Result<(), Error> {
    if power <= alpha {
        return Err(Error::BadOption {
            option: "--power".into(),
            value: power.to_string(),
            why: format!("the power must exceed alpha ({alpha})"),
        });
    }
    Ok(())
}

pub(super) fn test_kind(text: &str) -> Result<TestKind, String> {
    text.parse()
}

/// Splits `[EXP] H` into the experiment and the hypothesis.
pub(super) fn experiment_and_hypothesis<'a>(
    registry: &'a Registry,
    args: &'a [String],
) -> Result<(&'a Experiment, &'a str), Error> {
    match args {
        [hypothesis] => Ok((registry.experiment(None)?, hypothesis)),
        [experiment, hypothesis] => Ok((registry.experiment(Some(experiment))?, hypothesis)),
        _ => unreachable!("clap takes 1 or 2 values"),
    }
}

/// The condition names of `hypothesis`, without an `EXPERIMENT/` prefix.
pub(super) fn bare_conditions(hypothesis: &Hypothesis, experiment: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for condition in hypothesis.conditions() {
        let bare = hypothesis::bare_condition(condition, experiment);
        if !names.iter().any(|n| n == bare) {
            names.push(bare.to_owned());
        }
    }
    names
}

/// The stored run `id` of `experiment`, with a clear error when it is another experiment's.
pub(super) fn exploratory_run(store: &Store, id: &str, experiment: &Experiment) -> Result<RunDir, Error> {
    let run = store.run(id)?;
    if run.manifest.experiment != experiment.name() {
        return Err(Error::Store(format!(
            "run {} is a run of experiment '{}', not '{}'",
            run.manifest.run,
            run.manifest.experiment,
            experiment.name()
        )));
    }
    Ok(run)
}

/// Plans `hypothesis` from the units of `run`; an unknown metric is exit code 2 here, before
/// anything runs.
pub(super) fn plan_from(run: &RunDir, hypothesis: &Hypothesis, options: &EvalOptions) -> Result<SampleSize, Error> {
    let state = run.state();
    for warning in &state.warnings {
        eprintln!("warning: {warning}");
    }
    confirmation::sample_size(hypothesis, &state.results(), report::seeds_shared(run), options)
        .map_err(|error| Error::Hypothesis(format!("cannot use run {} for this hypothesis: {error}", run.manifest.run)))
}

pub(super) fn confirm(registry: &Registry, args: &ConfirmArgs, invocation: &Invocation) -> Result<ExitCode, Error> {
    let (experiment, text) = experiment_and_hypothesis(registry, &args.args)?;
    let entry = experiment.entry;
    let hypothesis =
        crate::hypothesis::checked_hypothesis(text, "to confirm", experiment.name(), &experiment.condition_names())?;
    check_power(args.power, args.alpha)?;
    let store = Store::locate(args.store.store.as_deref());
    let settings = crate::config_file::settings(invocation.app.manifest_dir, registry, experiment)?;
    let options = EvalOptions { alpha: args.alpha, power: args.power, test: args.test, ..EvalOptions::default() };

    // The exploratory run: its effect plans the replicates; its configuration is compared below.
    let from = args.from.as_deref().map(|id| exploratory_run(&store, id, experiment)).transpose()?;
    let planned = from.as_ref().map(|run| plan_from(run, &hypothesis, &options)).transpose()?;

    // The plan: the hypothesis's conditions, at replicate indices no earlier run used.
    let conditions = bare_conditions(&hypothesis, experiment.name());
    let treatments: Vec<String> = conditions.iter().filter(|c| *c != BASELINE).cloned().collect();
    let sets = match &from {
        Some(run) if args.sets.is_empty() => run.manifest.request.sets.clone(),
        _ => args.sets.clone(),
    };
    let from_seed = from.as_ref().and_then(|run| run.manifest.config.seed);
    let seed = args.seed.or(from_seed).unwrap_or_else(|| settings.seed(None, entry.seed).value);
    let replicates = args
        .replicates
        .or_else(|| planned.as_ref().and_then(|p| p.required).map(|n| n as u64))
        .unwrap_or_else(|| settings.replicates(None, entry.replicates).value);
    let earlier = confirmation::earlier_use(&store, experiment.name(), None, None);
    let first = earlier.highest.map_or(0, |highest| highest.saturating_add(1));
    let origin = run::origin(invocation);
    let session = Session::named(experiment.name());
    let session = run::how_units_run(session, args.jobs, args.fail_fast, args.timeout, args.retries);
    let session = session.cache(if args.allow_cached { CacheMode::On } else { CacheMode::Write });
    let mut prepared = session
        .treatments(treatments.iter().cloned())
        .sets(sets.iter().cloned())
        .settings(settings)
        .origin(origin.clone())
        .store(store.root())
        .seed(seed)
        .replicates(replicates)
        .first_replicate(first)
        .prepare()?;
    let plan = &prepared.plan;
    // Is n enough? The test must be able to reach p ≤ alpha, and, with an exploratory run, have
    // the power asked for against the effect it showed.
    let test = options.test.unwrap_or(match plan.policy {
        SeedPolicy::Shared => TestKind::PairedPermutation,
        SeedPolicy::PerCondition => TestKind::Permutation,
    });
    let alternative = hypothesis.op.alternative();
    let min_possible = hypothesis::min_replicates(test, alternative, args.alpha, &options.permutation);
    let adequacy = adequacy(test, min_possible, planned.as_ref(), &options);
    let mut failed = Vec::new();
    if min_possible.is_none() {
        failed.push(format!(
            "n: {}; no number of replicates is enough: choose a larger --alpha or another --test",
            adequacy.reason
        ));
    } else if replicates < adequacy.required {
        failed.push(format!(
            "n: {replicates} replicates per condition, but {} are needed ({})",
            adequacy.required, adequacy.reason
        ));
    }
    if let Some(why) = planned.as_ref().and_then(|p| p.why_not.as_ref()) {
        failed.push(format!("n: the replicates needed cannot be planned from the exploratory run: {why}"));
    }

    let policy = plan.policy;
    let run_policy = prepared.policy();
    let condition_names: Vec<String> = plan.conditions.iter().map(|c| c.name.to_string()).collect();
    let Some(manifest) = prepared.manifest_mut() else {
        return Err(Error::Store("a confirmation is a new stored run".into()));
    };
    // The report of a confirmation decides the registered hypothesis, not the declared ones.
    manifest.hypotheses = vec![hypothesis.to_string()];
    let names: Vec<&str> = conditions.iter().map(String::as_str).collect();
    let exploration = from.as_ref().zip(planned.as_ref()).map(|(run, planned)| Exploration {
        run: run.manifest.run.clone(),
        config: confirmation::relevant_config(&run.manifest.config.to_value(), &names),
        effect: planned.effect,
        changed: confirmation::exploration_changes(
            &run.manifest.config.to_value(),
            &manifest.config.to_value(),
            &names,
        ),
    });
    if let Some(exploration) = &exploration {
        for change in &exploration.changed {
            failed.push(format!("exploration: {change} since the exploratory run {}", exploration.run));
        }
    }
    if !failed.is_empty() && !args.force {
        return Err(Error::ConfirmationRefused {
            checks: failed.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n"),
        });
    }

    // Pre-register, then run.
    let fingerprints = manifest.config.fingerprints.clone();
    let mut record = Preregistration {
        schema: crate::store::manifest::SCHEMA,
        run: manifest.run.clone(),
        experiment: experiment.name().to_owned(),
        registered: manifest.created.clone(),
        hypothesis: hypothesis.to_string(),
        test: test.name().to_owned(),
        alpha: args.alpha,
        correction: Correction::Holm,
        power: args.power,
        replicates,
        first_replicate: first,
        seed,
        seed_policy: policy,
        conditions: condition_names,
        fingerprints,
        earlier,
        adequacy,
        from: exploration,
        forced: failed.clone(),
        command: origin.command.clone(),
        policy: Some(run_policy),
        digest: String::new(),
    };
    let digest = record.seal();
    manifest.preregistration = Some(digest.clone());
    let opened = prepared.open()?;
    if let Some(run_dir) = opened.run_dir() {
        run_dir.write_preregistration(&record)?;
    }
    eprintln!(
        "pre-registered '{}' as run {} (digest {digest}): {test}, alpha {}, {replicates} replicates per condition at \
         fresh indices {first}..={}{}",
        record.hypothesis,
        record.run,
        args.alpha,
        first.saturating_add(replicates - 1),
        record.from.as_ref().map(|f| format!(", from exploratory run {}", f.run)).unwrap_or_default()
    );
    for line in &failed {
        eprintln!("warning: running with --force although this check fails: {line}");
    }
    let format = Format::from_flags(args.json, args.md);
    let execution = Execution {
        fail_fast: args.fail_fast,
        output: Output::Report(format),
        store: &store,
        store_flag: run::store_flag(&args.store),
        html: None,
    };
    run::execute(opened, invocation, execution)
}

/// How many replicates are needed, and why: at least what lets `test` reach p ≤ alpha, and
/// with an exploratory run, what gives the power asked for against its effect.
fn adequacy(
    test: TestKind,
    min_possible: Option<usize>,
    planned: Option<&SampleSize>,
    options: &EvalOptions,
) -> Adequacy {
    // A test that cannot reach alpha at all needs more than any n (`confirm` refuses it apart).
    let floor = min_possible.unwrap_or(usize::MAX);
    let floor_reason = match min_possible {
        Some(n) => format!("the {test} test can reach p ≤ {} from {n} replicates per condition on", options.alpha),
        None => format!("the {test} test cannot reach p ≤ {} with up to 200 replicates per condition", options.alpha),
    };
    let for_power = planned.and_then(|p| p.for_power);
    let (required, reason) = match (for_power, planned) {
        (Some(n), Some(p)) if n > floor => (
            n,
            format!(
                "{}% power at alpha {} against the effect {} the exploratory run showed, noise sd {} (t-test \
                 approximation); {floor_reason}",
                p.power * 100.0,
                p.alpha,
                crate::summary::number(p.effect),
                p.sd.map(crate::summary::number).unwrap_or_else(|| "-".into())
            ),
        ),
        (Some(n), Some(_)) => (floor, format!("{floor_reason}; {n} would already give the power asked for")),
        _ => (floor, floor_reason),
    };
    Adequacy {
        required: required as u64,
        min_possible: min_possible.map(|n| n as u64),
        for_power: for_power.map(|n| n as u64),
        reason,
    }
}
