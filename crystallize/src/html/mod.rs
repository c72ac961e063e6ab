//! The one-file HTML report of a stored run (`report RUN --html FILE`, `run --html FILE`, and
//! each run's page in `view`): inline CSS and SVG, no script, no request to anything, readable
//! printed and without colour.
//!
//! It shows what [`crate::report::Report`] computed — the summaries of [`crate::summary`], the
//! decided hypotheses, the integrity of a confirmation — and the run's manifest; it computes no
//! statistic of its own except the quartiles of the boxes. Plots are in [`svg`].

mod svg;

use std::fmt::Write as _;

use serde_json::Value;

use crate::hypothesis::HypothesisResult;
use crate::report::{p_text, Report};
use crate::store::preregistration::Read;
use crate::store::RunDir;
use crate::summary::{self, interval_text, number};

pub use svg::{MAX_POINTS, PAGE_POINTS};

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a page adds around the report: the viewer's navigation and live updates.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// HTML put before the report's title (the viewer's links back).
    pub nav: String,
    /// HTML put at the end of the body (the viewer's polling script for a run in progress).
    pub tail: String,
}

const STYLE: &str = r#"
:root { --ink: #1a1a1a; --muted: #5a5a5a; --rule: #d4d4d4; --paper: #ffffff; --soft: #f4f4f4; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--paper); margin: 0 auto; max-width: 1000px; padding: 24px 28px 60px; }
h1 { font-size: 1.5em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1.02em; margin: 20px 0 6px; }
p, li { max-width: 75ch; }
.headline { color: var(--muted); margin: 0 0 8px; }
.status { display: inline-block; padding: 1px 8px; border: 1.5px solid currentColor; border-radius: 4px; font-weight: 600; }
.status.complete { color: #0072B2; } .status.incomplete { color: #6b6b6b; } .status.failed { color: #D55E00; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
th { border-bottom: 1.5px solid var(--ink); font-weight: 600; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; }
pre { background: var(--soft); padding: 8px 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
.note { background: #fff7e0; border-left: 4px solid #E69F00; padding: 6px 10px; }
.verdict { font-weight: 700; }
.verdict.supported { color: #0072B2; } .verdict.not-supported { color: #D55E00; }
.verdict.inconclusive { color: #6b6b6b; } .verdict.within-noise { color: #8a5d00; }
.ok { color: #0072B2; font-weight: 600; } .bad { color: #D55E00; font-weight: 700; }
svg.plot { display: block; max-width: 100%; height: auto; margin: 4px 0 10px; }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .axis-label { font-size: 12px; fill: var(--muted); }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .box { fill: none; stroke-width: 1.5; }
svg .median { stroke-width: 2.5; }
svg .ci { stroke: var(--ink); stroke-width: 2.5; }
svg .forest .ci { stroke-width: 3; }
svg .mean { fill: var(--paper); stroke: var(--ink); stroke-width: 1.6; }
svg .null { stroke: var(--ink); stroke-dasharray: 4 3; }
svg .noise { fill: #E69F00; fill-opacity: 0.18; }
svg .diagonal { stroke: var(--muted); stroke-dasharray: 5 4; }
svg .verdict { font-weight: 700; }
.pairs-grid { display: flex; flex-wrap: wrap; gap: 8px 24px; }
.pairs-grid figure { margin: 0; }
figcaption { color: var(--muted); font-size: 0.9em; max-width: 400px; }
.legend { color: var(--muted); font-size: 0.9em; }
details summary { cursor: pointer; }
nav { margin-bottom: 12px; }
#live { margin-bottom: 18px; }
#live ul { margin: 4px 0 0; padding-left: 20px; font-size: 0.85em; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; } svg.plot, table, figure { break-inside: avoid; }
  pre { white-space: pre-wrap; } nav { display: none; } details { display: block; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// A page of the viewer around `body`, with the report's style.
#[cfg(feature = "view")]
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — crystallize</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

fn status_class(status: &crate::store::Status) -> &'static str {
    match status {
        crate::store::Status::Complete => "complete",
        crate::store::Status::Failed => "failed",
        crate::store::Status::Incomplete => "incomplete",
        // A sequential run that stopped because it had its answer: as good as complete.
        crate::store::Status::Decided => "complete decided",
        // Styled as failed: a run whose journals hold damage needs a look.
        crate::store::Status::Damaged => "failed damaged",
    }
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The shell word for `text` (single quotes when needed), for the commands the page shows.
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The whole page of `report` (of the stored `run`); `program` is how the failures' `debug`
/// commands call the binary.
pub fn render(report: &Report, run: &RunDir, program: &str, extras: &Extras) -> String {
    let results = report.ran();
    let manifest = &run.manifest;
    let id = &manifest.run;
    // The store's own status when the report has it (a decided sequential run, damage); else
    // from the results.
    let state_status = match report.stored {
        Some((status, _)) => status,
        None => {
            if results.skipped > 0 {
                crate::store::Status::Incomplete
            } else if results.units.failed() > 0 {
                crate::store::Status::Failed
            } else {
                crate::store::Status::Complete
            }
        }
    };
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — {}</title><style>{STYLE}</style></head><body>",
        escape(&manifest.experiment),
        escape(id)
    );
    out.push_str(&extras.nav);
    let _ = write!(
        out,
        "<header><h1>{}</h1><p class=\"headline mono\">{}</p><p><span class=\"status {}\" id=\"status\">{}</span> created {} on {}</p></header>",
        escape(&manifest.experiment),
        escape(&summary::headline_of(id, results, report.decided())),
        status_class(&state_status),
        state_status,
        escape(&manifest.created),
        escape(&manifest.host)
    );

    let mut thinned = false;
    let summaries = summary::summarize_table(&results.info.conditions, results.units);
    let metrics: Vec<String> = {
        let mut names: Vec<String> = summaries.iter().flat_map(|s| s.metrics.iter().map(|(n, _)| n.clone())).collect();
        names.sort();
        names.dedup();
        names
    };

    // Hypotheses first: they are the question the run was for.
    out.push_str("<section id=\"hypotheses\"><h2>Hypotheses</h2>");
    if report.hypotheses.is_empty() && report.undecided.is_empty() {
        out.push_str("<p>The run declares no hypotheses; <code>report RUN --hypothesis \"B.metric &gt; A.metric\"</code> decides one.</p>");
    }
    if !report.hypotheses.is_empty() {
        let decided: Vec<&HypothesisResult> = report.hypotheses.iter().map(|d| &d.result).collect();
        let first = decided[0];
        let _ = write!(
            out,
            "<p class=\"legend\">Each row: the difference in means (left − right) as a dot with its {}% interval; the dashed line is no difference (plus the hypothesis's margin){}. Corrected: {} over {} at alpha {}.</p>",
            short_level(1.0 - first.alpha),
            if first.min_effect.is_some() { "; the shaded band is <code>--min-effect</code>, differences inside it are noise" } else { "" },
            correction_name(first.correction),
            first.hypotheses_in_run,
            svg::short(first.alpha)
        );
        out.push_str(&svg::forest_plot(&decided));
        out.push_str("<table><tr><th>hypothesis</th><th>verdict</th><th>test</th><th>effect</th><th>interval</th><th>p</th><th>p adj</th></tr>");
        for d in &report.hypotheses {
            let r = &d.result;
            let (_, symbol, class) = svg::verdict_style(&r.verdict);
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td class=\"verdict {class} nowrap\">{symbol} {}</td><td class=\"nowrap\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&r.hypothesis),
                if d.preregistered == Some(true) { " (pre-registered)" } else { "" },
                r.verdict,
                r.test,
                number(r.effect),
                r.ci.as_ref().map(interval_text).unwrap_or_else(|| "-".into()),
                r.p.map(p_text).unwrap_or_else(|| "-".into()),
                r.p_adjusted.map(p_text).unwrap_or_else(|| "-".into()),
            );
        }
        out.push_str("</table><ul>");
        for d in &report.hypotheses {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                escape(&d.result.hypothesis),
                escape(&d.result.explanation)
            );
        }
        out.push_str("</ul>");
    }
    if !report.undecided.is_empty() {
        out.push_str("<h3>Could not be decided</h3><ul>");
        for u in &report.undecided {
            let _ = write!(out, "<li><code>{}</code>: <pre>{}</pre></li>", escape(&u.hypothesis), escape(&u.error));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    // Right after the hypotheses: for a sequential run, how they were decided.
    sequential(&mut out, report, run);

    // Per metric: every replicate.
    out.push_str("<section id=\"metrics\"><h2>Metrics</h2><p class=\"legend\">Each point is one replicate; the box spans the quartiles with the median as a bar; the diamond is the mean and the black bar its 95% interval.</p>");
    let strip_count: usize = summaries.iter().map(|s| s.metrics.len()).sum();
    let limit = svg::points_per_strip(strip_count);
    for metric in &metrics {
        let strips: Vec<svg::Strip> = summaries
            .iter()
            .filter_map(|s| {
                let summary = s.metrics.iter().find(|(n, _)| n == metric).map(|(_, m)| m)?;
                Some(svg::Strip { condition: &s.condition, values: values(report, &s.condition, metric), summary })
            })
            .collect();
        let (plot, thin) = svg::strip_plot(metric, &strips, limit);
        thinned |= thin;
        let _ = write!(out, "<h3>{}</h3>{plot}", escape(metric));
    }
    out.push_str("<table><tr><th>condition</th><th>metric</th><th>n</th><th>mean</th><th>sd</th><th>95% CI</th><th>min</th><th>max</th></tr>");
    for s in &summaries {
        for (name, m) in &s.metrics {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&s.condition),
                escape(name),
                m.n,
                number(m.mean),
                m.sd.map(number).unwrap_or_else(|| "-".into()),
                m.ci.as_ref().map(interval_text).unwrap_or_else(|| "-".into()),
                number(m.min),
                number(m.max)
            );
        }
    }
    out.push_str("</table></section>");

    // The paired view.
    out.push_str("<section id=\"paired\"><h2>Paired replicates</h2>");
    let shared = crate::report::seeds_shared(run);
    if !shared {
        out.push_str("<p>The conditions of this run have their own seeds (seed policy per-condition): replicates are not paired.</p>");
    } else {
        out.push_str("<p class=\"legend\">Conditions share seeds: replicate k of one condition ran with the same randomness as replicate k of the other. Each point is one seed; above the dashed diagonal the vertical condition did better on that seed.</p><div class=\"pairs-grid\">");
        let mut pairs_to_draw: Vec<(String, String, String)> = report
            .hypotheses
            .iter()
            // A hypothesis comparing two different metrics has no per-seed pairs of one metric.
            .filter(|d| d.result.left.metric == d.result.right.metric)
            .map(|d| (d.result.left.metric.clone(), d.result.right.condition.clone(), d.result.left.condition.clone()))
            .filter(|(_, x, y)| x != y)
            .collect();
        if pairs_to_draw.is_empty() {
            if let Some(baseline) = results.info.conditions.first() {
                for treatment in results.info.conditions.iter().skip(1) {
                    for metric in &metrics {
                        pairs_to_draw.push((metric.clone(), baseline.clone(), treatment.clone()));
                    }
                }
            }
        }
        let mut unique = std::collections::HashSet::new();
        pairs_to_draw.retain(|pair| unique.insert(pair.clone()));
        for (metric, x, y) in pairs_to_draw.iter().take(12) {
            let pairs = paired_values(report, metric, x, y);
            if pairs.is_empty() {
                continue;
            }
            let (plot, thin) = svg::paired_plot(metric, x, y, &pairs, MAX_POINTS);
            thinned |= thin;
            let _ = write!(
                out,
                "<figure>{plot}<figcaption>{}: {} against {}, {} seeds</figcaption></figure>",
                escape(metric),
                escape(y),
                escape(x),
                pairs.len()
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");

    if thinned {
        let _ = write!(
            out,
            "<p class=\"note\" id=\"thinned\">Thinned: a condition has more than {limit} values of a metric (or a paired plot more than {MAX_POINTS} seeds), so that many evenly spaced ones of them (in sorted order, the extremes included) are drawn as points; at most {MAX_POINTS} per condition and {PAGE_POINTS} on the page. Boxes, means, intervals and every table use all values.</p>"
        );
    }

    configuration(&mut out, run, &results.info.conditions);
    failures(&mut out, report, program, id);
    confirmation(&mut out, report, run);
    reproducibility(&mut out, run);
    out.push_str(
        "<footer><p class=\"legend\">Written by crystallize from the run's files alone; <code>report RUN --html FILE</code> writes it again.</p></footer>",
    );
    out.push_str(&extras.tail);
    out.push_str("</body></html>\n");
    out
}

fn correction_name(correction: crate::stats::Correction) -> &'static str {
    match correction {
        crate::stats::Correction::Holm => "Holm",
        crate::stats::Correction::BenjaminiHochberg => "Benjamini–Hochberg",
        crate::stats::Correction::None => "none",
    }
}

fn short_level(level: f64) -> String {
    let text = format!("{:.2}", level * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The values of `metric` in `condition`'s successful units, in replicate order.
fn values(report: &Report, condition: &str, metric: &str) -> Vec<f64> {
    report.units.iter().filter(|u| u.condition() == condition && u.is_ok()).filter_map(|u| u.metric(metric)).collect()
}

/// Per seed, the value in condition `x` and in condition `y` (replicates both have).
fn paired_values(report: &Report, metric: &str, x: &str, y: &str) -> Vec<(f64, f64)> {
    let mut of_x = std::collections::HashMap::new();
    for unit in report.units.iter().filter(|u| u.is_ok() && u.condition() == x) {
        if let Some(value) = unit.metric(metric) {
            of_x.insert(unit.replicate(), value);
        }
    }
    report
        .units
        .iter()
        .filter(|u| u.is_ok() && u.condition() == y)
        .filter_map(|u| Some((*of_x.get(&u.replicate())?, u.metric(metric)?)))
        .collect()
}

fn configuration(out: &mut String, run: &RunDir, conditions: &[String]) {
    out.push_str("<section id=\"configuration\"><h2>Configuration</h2>");
    let config = &run.manifest.config.conditions;
    let baseline = conditions.first().and_then(|c| config.get(c));
    for (index, condition) in conditions.iter().enumerate() {
        let Some(value) = config.get(condition) else { continue };
        let _ = write!(out, "<h3>{}</h3>", escape(condition));
        match (index, baseline) {
            (0, _) => out.push_str("<p>The baseline.</p>"),
            (_, Some(base)) => {
                let changes = crate::diff::changes(base, value);
                if changes.is_empty() {
                    out.push_str("<p>Same configuration as the baseline.</p>");
                } else {
                    out.push_str("<table class=\"diff\"><tr><th>differs from baseline</th><th>baseline</th><th>this condition</th></tr>");
                    for change in changes {
                        let _ = write!(
                            out,
                            "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                            escape(&change.path),
                            change.left.as_ref().map(|v| escape(&json_text(v))).unwrap_or_else(|| "(absent)".into()),
                            change.right.as_ref().map(|v| escape(&json_text(v))).unwrap_or_else(|| "(absent)".into())
                        );
                    }
                    out.push_str("</table>");
                }
            }
            _ => {}
        }
        let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
        let _ = write!(out, "<details><summary>full configuration</summary><pre>{}</pre></details>", escape(&pretty));
    }
    out.push_str("</section>");
}

fn failures(out: &mut String, report: &Report, program: &str, id: &str) {
    let failed: Vec<_> = report.units.iter().filter(|u| !u.is_ok()).collect();
    out.push_str("<section id=\"failures\"><h2>Failures</h2>");
    if failed.is_empty() {
        out.push_str("<p>No unit failed.</p></section>");
        return;
    }
    let _ = write!(out, "<p>{} units failed. Each command reproduces one, verbosely and without storing anything.</p><table><tr><th>unit</th><th>seed</th><th>error</th><th>reproduce</th></tr>", failed.len());
    for unit in failed.iter().take(500) {
        let error = unit.error();
        let message = error.map(|e| e.message.as_str()).unwrap_or("");
        let location = error.and_then(|e| e.location.as_deref()).map(|l| format!(" at {l}")).unwrap_or_default();
        let kind = error.map(|e| e.kind.name()).unwrap_or("error");
        let command = format!(
            "{} debug {}/{} --replicate {} --run {}",
            shell_word(program),
            shell_word(unit.experiment()),
            shell_word(unit.condition()),
            unit.replicate(),
            shell_word(id)
        );
        let _ = write!(
            out,
            "<tr class=\"failure\"><td>{} replicate {}</td><td class=\"n mono\">{}</td><td>{kind}: {}{}</td><td><code>{}</code></td></tr>",
            escape(unit.condition()),
            unit.replicate(),
            unit.seed(),
            escape(message),
            escape(&location),
            escape(&command)
        );
    }
    out.push_str("</table>");
    if failed.len() > 500 {
        let _ = write!(out, "<p class=\"note\">The first 500 of {} failures are listed; <code>export RUN --csv -</code> lists them all.</p>", failed.len());
    }
    out.push_str("</section>");
}

fn confirmation(out: &mut String, report: &Report, run: &RunDir) {
    let record = match run.read_preregistration() {
        Read::Found { record, actual_digest } => Some((record, actual_digest)),
        Read::Invalid(why) => {
            let _ = write!(out, "<section id=\"confirmation\"><h2>Confirmation</h2><p class=\"bad\">The pre-registration record is not valid: {}</p></section>", escape(&why));
            return;
        }
        Read::Missing => None,
    };
    let Some((record, digest)) = record else { return };
    out.push_str("<section id=\"confirmation\"><h2>Confirmation</h2><h3>Pre-registration</h3><table>");
    let rows = [
        ("hypothesis", format!("<code>{}</code>", escape(&record.hypothesis))),
        ("registered", escape(&record.registered)),
        ("test", escape(&record.test)),
        ("alpha", number(record.alpha)),
        ("correction", correction_name(record.correction).to_owned()),
        ("power", number(record.power)),
        ("replicates", format!("{} (from index {})", record.replicates, record.first_replicate)),
        ("seed", format!("{} ({:?})", record.seed, record.seed_policy)),
        ("conditions", escape(&record.conditions.join(", "))),
        ("digest now", escape(&digest)),
    ];
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    out.push_str("</table>");
    if let Some(integrity) = &report.integrity {
        let class = if integrity.status == crate::confirmation::Status::Valid { "ok" } else { "bad" };
        let _ = write!(out, "<h3>Integrity: <span class=\"{class}\">{}</span></h3><table><tr><th>check</th><th>result</th><th>detail</th></tr>", escape(&integrity.summary));
        for check in &integrity.checks {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                check.check.name(),
                if check.ok { "ok" } else { "bad" },
                if check.ok { "\u{2714} ok" } else { "\u{2716} FAILED" },
                escape(&check.detail)
            );
        }
        out.push_str("</table>");
        if !integrity.forced.is_empty() {
            let _ = write!(
                out,
                "<p class=\"bad\">Forced with --force despite: {}</p>",
                escape(&integrity.forced.join(", "))
            );
        }
    }
    out.push_str("</section>");
}

/// For a run stopped by its sequential test (`run --until-decided`): the rule, and per hypothesis
/// its anytime-valid interval over the pairs (replayed from the stored units, as `report` does)
/// and where it was decided.
fn sequential(out: &mut String, report: &Report, run: &RunDir) {
    let Some(sequential) = &report.sequential else { return };
    let rule = &sequential.rule;
    let _ = write!(
        out,
        "<section id=\"sequential\"><h2>Sequential test</h2><p>The run went by an anytime-valid stopping rule (<code>--until-decided</code>): at most {} replicates{}, alpha {} split over {} hypotheses (Bonferroni){}. {} The fixed-n p-values above are not valid after optional stopping; these intervals are. Each plot draws a hypothesis's interval of the paired difference after each count of pairs (from where its ends are first finite), the dashed line its margin, the vertical line where it was decided.</p>",
        rule.max_replicates,
        if rule.min_replicates > 0 { format!(", at least {}", rule.min_replicates) } else { String::new() },
        svg::short(rule.alpha),
        rule.hypotheses.len(),
        rule.min_effect.map(|e| format!(", minimum effect {}", svg::short(e))).unwrap_or_default(),
        if sequential.all_decided { "Every hypothesis was decided." } else { "Not every hypothesis was decided." }
    );
    let first = run.manifest.first_replicate;
    let units = &report.units;
    let last = units.iter().map(|u| u.replicate().saturating_sub(first) + 1).max().unwrap_or(0);
    // The interval after each count of pairs: the sequence replayed on each prefix of indices.
    let step = (last as usize).div_ceil(svg::MAX_SEQUENCE_POINTS).max(1) as u64;
    let mut trajectories: Vec<Vec<svg::SequencePoint>> = vec![Vec::new(); sequential.results.len()];
    let mut k = step.min(last);
    while k > 0 {
        let prefix: Vec<crate::runner::UnitResult> =
            units.iter().filter(|u| u.replicate() < first.saturating_add(k)).map(|u| u.to_result()).collect();
        let replayed = crate::sequential::replay(rule, &run.manifest.experiment, first, &prefix);
        for (trajectory, result) in trajectories.iter_mut().zip(&replayed) {
            trajectory.push((result.n, result.low, result.high));
        }
        if k == last {
            break;
        }
        k = (k + step).min(last);
    }
    out.push_str("<table><tr><th>hypothesis</th><th>status</th><th>pairs</th><th>effect</th><th>interval</th><th>decided after</th><th>sequence</th></tr>");
    for result in &sequential.results {
        let end = |v: Option<f64>| v.map(svg::short).unwrap_or_else(|| "unbounded".into());
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"nowrap\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">[{}, {}]</td><td class=\"n\">{}</td><td class=\"nowrap\">{}</td></tr>",
            escape(&result.hypothesis),
            result.status.name(),
            result.n,
            result.effect.map(svg::short).unwrap_or_else(|| "-".into()),
            end(result.low),
            end(result.high),
            result.decided_at.map(|n| n.to_string()).unwrap_or_else(|| "open".into()),
            escape(result.test.name())
        );
    }
    out.push_str("</table>");
    for (result, trajectory) in sequential.results.iter().zip(&trajectories) {
        out.push_str(&svg::sequence_plot(&result.hypothesis, trajectory, result.decided_at));
    }
    out.push_str("</section>");
}

fn reproducibility(out: &mut String, run: &RunDir) {
    let manifest = &run.manifest;
    out.push_str("<section id=\"reproducibility\"><h2>Reproducibility</h2><table>");
    let git = match &manifest.git {
        Some(git) => format!(
            "<code>{}</code> {}",
            escape(&git.commit),
            if git.dirty {
                "<span class=\"bad\">dirty: uncommitted changes</span>"
            } else {
                "<span class=\"ok\">clean</span>"
            }
        ),
        None => "not in a git work tree".into(),
    };
    let command: Vec<String> = manifest.command.iter().map(|w| shell_word(w)).collect();
    let rows = [
        ("run", format!("<code>{}</code>", escape(&manifest.run))),
        (
            "seed",
            format!(
                "{} (seed policy {})",
                manifest.config.seed.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                manifest.config.seed_policy.map(|p| format!("{p:?}")).unwrap_or_else(|| "Shared".into())
            ),
        ),
        ("git", git),
        ("command", format!("<code>{}</code>", escape(&command.join(" ")))),
        (
            "versions",
            format!(
                "{} {}, crystallize {}",
                escape(&manifest.versions.crate_name),
                escape(&manifest.versions.crate_version),
                escape(&manifest.versions.crystallize)
            ),
        ),
        ("host", escape(&manifest.host)),
        ("created", escape(&manifest.created)),
        ("schema", manifest.schema.to_string()),
    ];
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    out.push_str("</table><h3>Code fingerprints</h3><table><tr><th>part</th><th>fingerprint</th></tr>");
    for (part, fingerprint) in &manifest.config.fingerprints {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"mono\">{}</td></tr>",
            escape(part),
            escape(fingerprint)
        );
    }
    out.push_str("</table>");
    let (sessions, _) = run.sessions();
    if !sessions.is_empty() {
        out.push_str(
            "<h3>Sessions</h3><table><tr><th>started</th><th>host</th><th>replicates</th><th>command</th></tr>",
        );
        for session in &sessions {
            let command: Vec<String> = session.command.iter().map(|w| shell_word(w)).collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td><code>{}</code>{}</td></tr>",
                escape(&session.started),
                escape(&session.host),
                session.replicates,
                escape(&command.join(" ")),
                if session.forced {
                    format!(" <span class=\"bad\">forced despite: {}</span>", escape(&session.drift.join("; ")))
                } else {
                    String::new()
                }
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}
