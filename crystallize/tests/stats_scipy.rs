//! crystallize::stats against SciPy. The reference values are fixtures written by
//! `xtask/fixtures/gen_stats_fixtures.py` (`cargo xtask fixtures`), committed beside this file.
//!
//! Tolerances:
//! * closed-form results (t, rank, exact permutation and Fisher p-values, intervals, effect
//!   sizes, corrections, power): 1e-9 relative ([`CLOSED_FORM`]). Exact permutation p-values are
//!   counts over the same enumeration as SciPy's `permutation_test(n_resamples=inf)`, so they
//!   agree to the last bit, but the 1e-9 check is kept uniform. The noncentral t CDF (AS 243)
//!   has absolute rather than relative accuracy: 1e-9 relative above 10⁻³, 10⁻¹² absolute below.
//! * the bootstrap interval *arithmetic*, on a bootstrap distribution shared with SciPy: 1e-9
//!   relative to the interval's width.
//! * Monte Carlo results, whose resamples differ from SciPy's (different generators): a
//!   permutation p-value from B = 9999 resamples has standard error √(p(1−p)/B) ≤ 0.005; the
//!   difference of two independent estimates is allowed 4.5 combined standard errors
//!   (`4.5·√2·√(p(1−p)/B)` plus 1/(B+1) for the +1 correction). A bootstrap end point is allowed
//!   0.1 bootstrap standard errors: the Monte Carlo error of a 2.5 % quantile from 9999
//!   resamples is about 0.03 of them, and BCa's adjusted levels add a little.

use std::path::PathBuf;

use crystallize::stats::{
    self, Alternative, BootstrapMethod, BootstrapOptions, PermutationOptions, RankMethod, StatsError,
};
use serde_json::Value;

const CLOSED_FORM: f64 = 1e-9;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stats").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(!value["cases"].as_array().unwrap().is_empty(), "{name}: no cases");
    value
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(num).collect()
}

fn alternative(v: &Value) -> Alternative {
    match v.as_str().unwrap() {
        "two-sided" => Alternative::TwoSided,
        "greater" => Alternative::Greater,
        "less" => Alternative::Less,
        other => panic!("alternative {other}"),
    }
}

/// |actual − expected| ≤ tol · max(|expected|, scale). `scale` guards quantities that can be
/// near 0 by cancellation (an interval end), and is the absolute floor for them.
#[track_caller]
fn close(actual: f64, expected: f64, tol: f64, scale: f64, what: &str) {
    if expected.is_infinite() {
        assert_eq!(actual, expected, "{what}");
        return;
    }
    let bound = tol * expected.abs().max(scale);
    assert!(
        (actual - expected).abs() <= bound,
        "{what}: got {actual:e}, SciPy {expected:e} (|diff| {:e} > {bound:e})",
        (actual - expected).abs()
    );
}

fn error_kind(error: &StatsError) -> &'static str {
    match error {
        StatsError::Empty { .. } => "Empty",
        StatsError::NonFinite { .. } => "NonFinite",
        StatsError::TooFew { .. } => "TooFew",
        StatsError::ZeroVariance { .. } => "ZeroVariance",
        StatsError::LengthMismatch { .. } => "LengthMismatch",
        StatsError::NotBinary { .. } => "NotBinary",
        StatsError::InvalidArgument { .. } => "InvalidArgument",
    }
}

#[test]
fn t_tests_match_scipy() {
    let f = fixture("ttest");
    for case in f["cases"].as_array().unwrap() {
        let what = format!("{} {} mu={}", case["name"], case["alternative"], case["mu"]);
        let (x, mu, alt) = (nums(&case["x"]), num(&case["mu"]), alternative(&case["alternative"]));
        let r = match case["kind"].as_str().unwrap() {
            "welch" => stats::welch_t(&x, &nums(&case["y"]), mu, alt),
            "student" => stats::student_t(&x, &nums(&case["y"]), mu, alt),
            "paired" => stats::paired_t(&x, &nums(&case["y"]), mu, alt),
            "one_sample" => stats::one_sample_t(&x, mu, alt),
            other => panic!("{other}"),
        }
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        close(r.statistic, num(&case["statistic"]), CLOSED_FORM, 1e-300, &format!("{what} t"));
        close(r.df, num(&case["df"]), CLOSED_FORM, 1e-300, &format!("{what} df"));
        close(r.p, num(&case["p"]), CLOSED_FORM, 1e-300, &format!("{what} p"));
        let level = case.get("level").map_or(0.95, num);
        let ci = r.confidence_interval(level).unwrap();
        let width = r.standard_error;
        close(ci.low, num(&case["ci_low"]), CLOSED_FORM, width, &format!("{what} ci low"));
        close(ci.high, num(&case["ci_high"]), CLOSED_FORM, width, &format!("{what} ci high"));
    }
    for case in f["errors"].as_array().unwrap() {
        let (x, y) = (nums(&case["x"]), nums(&case["y"]));
        let result = match case["kind"].as_str().unwrap() {
            "welch" => stats::welch_t(&x, &y, 0.0, Alternative::TwoSided),
            "student" => stats::student_t(&x, &y, 0.0, Alternative::TwoSided),
            "paired" => stats::paired_t(&x, &y, 0.0, Alternative::TwoSided),
            other => panic!("{other}"),
        };
        let error = result.expect_err(&format!("{case}: SciPy gives p = {}, we must refuse", case["scipy_p"]));
        assert_eq!(error_kind(&error), case["error"].as_str().unwrap(), "{case}: {error}");
    }
}

fn rank_method(v: &Value) -> RankMethod {
    match v.as_str().unwrap() {
        "auto" => RankMethod::Auto,
        "exact" => RankMethod::Exact,
        "asymptotic" => RankMethod::Asymptotic,
        other => panic!("{other}"),
    }
}

#[test]
fn mann_whitney_matches_scipy() {
    let f = fixture("mannwhitney");
    for case in f["cases"].as_array().unwrap() {
        let what = format!("{} {} {} cc={}", case["name"], case["alternative"], case["method"], case["continuity"]);
        let r = stats::mann_whitney_u(
            &nums(&case["x"]),
            &nums(&case["y"]),
            alternative(&case["alternative"]),
            rank_method(&case["method"]),
            case["continuity"].as_bool().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        close(r.u, num(&case["u"]), CLOSED_FORM, 1e-300, &format!("{what} U"));
        close(r.p, num(&case["p"]), CLOSED_FORM, 1e-300, &format!("{what} p"));
    }
    for case in f["errors"].as_array().unwrap() {
        let error = stats::mann_whitney_u(
            &nums(&case["x"]),
            &nums(&case["y"]),
            Alternative::TwoSided,
            RankMethod::Asymptotic,
            true,
        )
        .expect_err("all tied");
        assert_eq!(error_kind(&error), case["error"].as_str().unwrap());
    }
}

#[test]
fn wilcoxon_matches_scipy() {
    let f = fixture("wilcoxon");
    for case in f["cases"].as_array().unwrap() {
        let what = format!("{} {} {} cc={}", case["name"], case["alternative"], case["method"], case["correction"]);
        let r = stats::wilcoxon_signed_rank(
            &nums(&case["d"]),
            alternative(&case["alternative"]),
            rank_method(&case["method"]),
            case["correction"].as_bool().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        close(r.statistic, num(&case["statistic"]), CLOSED_FORM, 1e-300, &format!("{what} statistic"));
        close(r.p, num(&case["p"]), CLOSED_FORM, 1e-300, &format!("{what} p"));
    }
    for case in f["errors"].as_array().unwrap() {
        let error = stats::wilcoxon_signed_rank(&nums(&case["d"]), Alternative::TwoSided, RankMethod::Auto, false)
            .expect_err("all zero");
        assert_eq!(error_kind(&error), case["error"].as_str().unwrap());
    }
}

#[test]
fn permutation_tests_match_scipy() {
    let f = fixture("permutation");
    let (mut exact_cases, mut mc_cases) = (0, 0);
    for case in f["cases"].as_array().unwrap() {
        let what = format!("{} {} mu={}", case["name"], case["alternative"], case["mu"]);
        let (x, y, mu, alt) = (nums(&case["x"]), nums(&case["y"]), num(&case["mu"]), alternative(&case["alternative"]));
        let exact = case["exact"].as_bool().unwrap();
        let options = if exact {
            PermutationOptions { max_exact: u64::MAX, ..PermutationOptions::default() }
        } else {
            PermutationOptions { max_exact: 0, resamples: 9999, seed: 42 }
        };
        let r = if case["paired"].as_bool().unwrap() {
            stats::paired_permutation_test(&x, &y, mu, alt, &options)
        } else {
            stats::permutation_test(&x, &y, mu, alt, &options)
        }
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.exact, exact, "{what}");
        // A mean of values near 10^12 carries an absolute rounding error of about 10^12 · 2^-52
        // on both sides; the statistic is compared to that, not to 1e-9 of itself.
        let magnitude = x.iter().chain(&y).fold(0.0f64, |a, v| a.max(v.abs()));
        let scale = 1e-12f64.max(magnitude * 1e-6);
        close(r.statistic, num(&case["statistic"]), CLOSED_FORM, scale, &format!("{what} statistic"));
        let expected = num(&case["p"]);
        if exact {
            exact_cases += 1;
            assert_eq!(r.arrangements, case["arrangements"].as_u64().unwrap(), "{what}");
            close(r.p, expected, CLOSED_FORM, 1e-300, &format!("{what} p"));
        } else {
            mc_cases += 1;
            let b = 9999.0;
            let se = (expected * (1.0 - expected) / b).sqrt().max(1.0 / b);
            let allowed = 4.5 * std::f64::consts::SQRT_2 * se + 1.0 / (b + 1.0);
            assert!((r.p - expected).abs() <= allowed, "{what}: p {} vs SciPy {expected} (allowed ±{allowed})", r.p);
        }
    }
    assert!(exact_cases > 50 && mc_cases >= 6, "{exact_cases} exact, {mc_cases} Monte Carlo cases");
}

fn statistic_of(name: &str) -> fn(&[&[f64]]) -> f64 {
    fn mean(s: &[f64]) -> f64 {
        s.iter().sum::<f64>() / s.len() as f64
    }
    match name {
        "mean" => |s| mean(s[0]),
        "mean_diff" => |s| mean(s[0]) - mean(s[1]),
        other => panic!("{other}"),
    }
}

fn bootstrap_method(v: &Value) -> BootstrapMethod {
    match v.as_str().unwrap() {
        "percentile" => BootstrapMethod::Percentile,
        "bca" => BootstrapMethod::Bca,
        other => panic!("{other}"),
    }
}

#[test]
fn bootstrap_intervals_match_scipy() {
    let f = fixture("bootstrap");
    for case in f["cases"].as_array().unwrap() {
        let what = format!("{} {} {}", case["name"], case["method"], case["level"]);
        let samples: Vec<Vec<f64>> = case["samples"].as_array().unwrap().iter().map(nums).collect();
        let views: Vec<&[f64]> = samples.iter().map(Vec::as_slice).collect();
        let statistic = statistic_of(case["statistic"].as_str().unwrap());
        let interval = stats::bootstrap_interval_from_distribution(
            &views,
            case["paired"].as_bool().unwrap(),
            &statistic,
            &nums(&case["distribution"]),
            num(&case["level"]),
            bootstrap_method(&case["method"]),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let width = num(&case["high"]) - num(&case["low"]);
        close(interval.low, num(&case["low"]), CLOSED_FORM, width, &format!("{what} low"));
        close(interval.high, num(&case["high"]), CLOSED_FORM, width, &format!("{what} high"));
    }
    for case in f["monte_carlo"].as_array().unwrap() {
        let what = format!("{} {} (Monte Carlo)", case["name"], case["method"]);
        let samples: Vec<Vec<f64>> = case["samples"].as_array().unwrap().iter().map(nums).collect();
        let views: Vec<&[f64]> = samples.iter().map(Vec::as_slice).collect();
        let statistic = statistic_of(case["statistic"].as_str().unwrap());
        let options = BootstrapOptions {
            level: num(&case["level"]),
            resamples: 9999,
            seed: 2024,
            method: bootstrap_method(&case["method"]),
        };
        let interval = stats::bootstrap_ci(&views, case["paired"].as_bool().unwrap(), &statistic, &options).unwrap();
        let se = num(&case["standard_error"]);
        for (ours, theirs, end) in
            [(interval.low, num(&case["low"]), "low"), (interval.high, num(&case["high"]), "high")]
        {
            assert!(
                (ours - theirs).abs() <= 0.1 * se,
                "{what} {end}: {ours} vs SciPy {theirs} (allowed ±{})",
                0.1 * se
            );
        }
    }
}

#[test]
fn fisher_matches_scipy() {
    let f = fixture("fisher");
    for case in f["cases"].as_array().unwrap() {
        let t = case["table"].as_array().unwrap();
        let row = |i: usize| -> [u64; 2] {
            let r = t[i].as_array().unwrap();
            [r[0].as_u64().unwrap(), r[1].as_u64().unwrap()]
        };
        let what = format!("{} {}", case["table"], case["alternative"]);
        let r = stats::fisher_exact([row(0), row(1)], alternative(&case["alternative"])).unwrap();
        close(r.p, num(&case["p"]), CLOSED_FORM, 1e-300, &format!("{what} p"));
        let odds = num(&case["odds_ratio"]);
        if odds.is_nan() {
            assert!(r.odds_ratio.is_nan(), "{what}");
        } else {
            close(r.odds_ratio, odds, CLOSED_FORM, 1e-300, &format!("{what} odds ratio"));
        }
    }
    for case in f["binary"].as_array().unwrap() {
        let r = stats::fisher_exact_binary(&nums(&case["x"]), &nums(&case["y"]), alternative(&case["alternative"]))
            .unwrap();
        close(r.p, num(&case["p"]), CLOSED_FORM, 1e-300, "binary samples");
    }
    for case in f["errors"].as_array().unwrap() {
        let error =
            stats::fisher_exact_binary(&nums(&case["x"]), &nums(&case["y"]), Alternative::TwoSided).unwrap_err();
        assert_eq!(error_kind(&error), case["error"].as_str().unwrap());
    }
}

#[test]
fn effect_sizes_match_scipy() {
    let f = fixture("effect");
    for case in f["cases"].as_array().unwrap() {
        let what = case["name"].to_string();
        let (x, y, paired) = (nums(&case["x"]), nums(&case["y"]), case["paired"].as_bool().unwrap());
        for (level, low, high) in [(0.95, "low95", "high95"), (0.90, "low90", "high90")] {
            let d = stats::mean_difference(&x, &y, paired, level).unwrap();
            close(d.estimate, num(&case["estimate"]), CLOSED_FORM, 1e-12, &format!("{what} estimate"));
            let scale = d.standard_error.max(1e-300);
            close(d.ci.low, num(&case[low]), CLOSED_FORM, scale, &format!("{what} {low}"));
            close(d.ci.high, num(&case[high]), CLOSED_FORM, scale, &format!("{what} {high}"));
        }
        if paired {
            continue;
        }
        match (stats::hedges_g(&x, &y), num(&case["hedges_g"])) {
            (Err(StatsError::ZeroVariance { .. }), expected) if expected.is_nan() => {}
            (Ok(g), expected) => close(g, expected, CLOSED_FORM, 1e-300, &format!("{what} g")),
            (other, expected) => panic!("{what}: g {other:?}, expected {expected}"),
        }
        close(stats::relative_change(&x, &y).unwrap(), num(&case["relative_change"]), CLOSED_FORM, 1e-300, &what);
    }
}

#[test]
fn corrections_match_statsmodels_and_scipy() {
    let f = fixture("correction");
    for case in f["cases"].as_array().unwrap() {
        let p = nums(&case["p"]);
        for (ours, theirs) in stats::holm(&p).unwrap().into_iter().zip(nums(&case["holm"])) {
            close(ours, theirs, CLOSED_FORM, 1e-300, "holm");
        }
        for (ours, theirs) in stats::benjamini_hochberg(&p).unwrap().into_iter().zip(nums(&case["benjamini_hochberg"]))
        {
            close(ours, theirs, CLOSED_FORM, 1e-300, "benjamini-hochberg");
        }
    }
}

fn design(v: &Value) -> stats::Design {
    match v.as_str().unwrap() {
        "independent" => stats::Design::Independent,
        "paired" => stats::Design::Paired,
        other => panic!("{other}"),
    }
}

#[test]
fn power_matches_scipy_noncentral_t() {
    let f = fixture("power");
    for case in f["cases"].as_array().unwrap() {
        let ours = stats::noncentral_t_cdf(num(&case["t"]), num(&case["df"]), num(&case["ncp"]));
        // AS 243's recurrences subtract, so its error is absolute (~1e-13): 1e-9 relative above
        // 1e-3, 1e-12 absolute below (power is only ever computed from values ≥ alpha's order).
        close(ours, num(&case["cdf"]), CLOSED_FORM, 1e-3, &format!("nct cdf {case}"));
    }
    for case in f["power"].as_array().unwrap() {
        let ours = stats::t_test_power(
            case["n"].as_u64().unwrap() as usize,
            num(&case["effect"]),
            num(&case["sd"]),
            num(&case["alpha"]),
            alternative(&case["alternative"]),
            design(&case["design"]),
        )
        .unwrap();
        close(ours, num(&case["power"]), CLOSED_FORM, 1e-300, &format!("power {case}"));
    }
    for case in f["n_per_side"].as_array().unwrap() {
        let n = stats::n_per_side(
            num(&case["effect"]),
            num(&case["sd"]),
            num(&case["alpha"]),
            num(&case["power"]),
            alternative(&case["alternative"]),
            design(&case["design"]),
        )
        .unwrap();
        assert_eq!(n as u64, case["n"].as_u64().unwrap(), "{case}");
    }
}
