//! `plan [EXP] H --from RUN [--power P]`: how many replicates per condition a confirmation of H
//! needs, from the effect and the spread H has in the stored run RUN
//! ([`crate::confirmation::sample_size`]), and the `confirm` command that would run them.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::confirm::{check_power, experiment_and_hypothesis, exploratory_run, plan_from, test_kind};
use super::probability;
use super::StoreArgs;
use crate::error::Error;
use crate::hypothesis::{EvalOptions, TestKind};
use crate::registry::Registry;
use crate::stats::Alternative;
use crate::store::Store;
use crate::summary::number;

/// Arguments of `plan`.
#[derive(Args, Debug)]
pub(super) struct PlanArgs {
    /// `[EXP] H`: the experiment (may be left out when the binary has only one) and the
    /// hypothesis, e.g. "dolphin_spoilers.win > baseline.win".
    #[arg(value_name = "[EXP] H", num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// The stored run whose effect and spread to plan from.
    #[arg(long, value_name = "RUN")]
    from: String,
    /// The probability of detecting the effect, if it is real.
    #[arg(long, default_value_t = 0.8, value_parser = probability)]
    power: f64,
    /// The significance level.
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    alpha: f64,
    /// The test that will decide (default: the paired permutation test with shared seeds).
    #[arg(long, value_name = "TEST", value_parser = test_kind)]
    test: Option<TestKind>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub(super) fn plan(registry: &Registry, args: &PlanArgs) -> Result<ExitCode, Error> {
    let (experiment, text) = experiment_and_hypothesis(registry, &args.args)?;
    let store = Store::locate(args.store.store.as_deref());
    let run = exploratory_run(&store, &args.from, experiment)?;
    let conditions = run.conditions();
    let names: Vec<&str> = conditions.iter().map(String::as_str).collect();
    let hypothesis = crate::hypothesis::checked_hypothesis(text, "to plan", experiment.name(), &names)?;
    check_power(args.power, args.alpha)?;
    let options = EvalOptions { alpha: args.alpha, power: args.power, test: args.test, ..EvalOptions::default() };
    let planned = plan_from(&run, &hypothesis, &options)?;
    let confirm = planned.required.map(|n| {
        let program = crate::store::recorder::command_line().into_iter().next().unwrap_or_else(|| "crystallize".into());
        format!(
            "{} confirm {} {} --replicates {n} --from {}{}{}{}",
            super::debug::shell_quote(&program),
            experiment.name(),
            super::debug::shell_quote(&planned.hypothesis),
            run.manifest.run,
            // What N was planned for, so that `confirm` plans the same N.
            format_args!(" --alpha {} --power {}", args.alpha, args.power),
            args.test.map(|t| format!(" --test {t}")).unwrap_or_default(),
            super::run::store_flag(&args.store)
        )
    });
    // Stopping with --until-decided instead: simulated from this run's paired differences, up
    // to four times the fixed n (or 200 when there is none).
    let max = planned.required.map_or(200, |n| (4 * n as u64).clamp(10, crate::sequential::MAX_REPLICATES));
    let units = run.state().results();
    let sequential =
        crate::sequential::plan_sequential(experiment.name(), &hypothesis, &units, args.alpha, args.power, max);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&planned).unwrap_or_default();
        value["run"] = serde_json::json!(run.manifest.run);
        value["confirm"] = serde_json::json!(confirm);
        // The default test's plan, then (for a bounded metric) the SPRT's.
        value["sequential"] = serde_json::to_value(sequential.first()).unwrap_or_default();
        if let Some(sprt) = sequential.get(1) {
            value["sequential_sprt"] = serde_json::to_value(sprt).unwrap_or_default();
        }
        let _ = writeln!(out, "{value}");
    } else {
        let unit = if planned.paired { "pairs of replicates" } else { "replicates per condition" };
        let noise = if planned.paired { "sd of the paired differences" } else { "pooled sd" };
        let sided = if planned.alternative == Alternative::TwoSided { "two-sided" } else { "one-sided" };
        let _ = writeln!(out, "plan for '{}' from run {}:", planned.hypothesis, run.manifest.run);
        let _ = writeln!(
            out,
            "  observed   difference {} over {} {unit}, {noise} {}",
            number(planned.effect),
            planned.n_observed,
            planned.sd.map(number).unwrap_or_else(|| "-".into())
        );
        let _ = writeln!(out, "  test       {}, {sided}, alpha {}", planned.test, planned.alpha);
        match (planned.for_power, &planned.why_not) {
            (Some(n), _) => {
                let _ = writeln!(
                    out,
                    "  power      {n} {unit} for {}% power against that difference (t-test approximation)",
                    planned.power * 100.0
                );
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "  power      cannot be planned: {why}");
            }
            _ => {}
        }
        if let Some(n) = planned.min_possible {
            let _ = writeln!(out, "  floor      {n} {unit} before the test can reach p ≤ {} at all", planned.alpha);
        }
        for s in &sequential {
            let sprt = s.min_effect.map_or_else(String::new, |e| {
                format!(" --sequential-test sprt --min-effect {} --power {}", number(e), args.power)
            });
            let _ = writeln!(
                out,
                "  sequential with --until-decided --max-replicates {}{sprt}: {} pairs on average, 90% of runs within \
                 {} ({} test; {}% ended supported; {} simulations resampling this run's paired differences, seed 0)",
                s.max_replicates,
                number(s.expected),
                s.p90,
                s.test.name(),
                number(s.power * 100.0),
                s.simulations
            );
        }
        match (&planned.required, &confirm) {
            (Some(n), Some(command)) => {
                let _ = writeln!(out, "needed: {n} {unit}\nconfirm with fresh replicates:\n  {command}");
            }
            _ => {
                let _ = writeln!(out, "needed: cannot be said from this run");
            }
        }
    }
    let _ = out.flush();
    if let Some(why) = &planned.why_not {
        if planned.required.is_none() {
            eprintln!("error: no sample size for '{}' from run {}: {why}", planned.hypothesis, run.manifest.run);
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
