//! The plots of the HTML report, as inline SVG written by hand: per metric a strip plot of every
//! condition's replicates with box, mean and interval; a forest plot of the hypotheses; a
//! paired scatter of two conditions per seed against the diagonal; for a run stopped by its
//! sequential test, each hypothesis's anytime-valid interval over the pairs and where it was
//! decided.
//!
//! Every number drawn comes from [`crate::summary`] and [`crate::report`]; this module only
//! places it. Elements carry classes (`point`, `condition`, `hypothesis`, `pair`) and `data-`
//! attributes so that tests (and a reader's own CSS) can find them.

use std::fmt::Write as _;

use super::escape;
use crate::hypothesis::{HypothesisResult, Verdict};
use crate::stats::Interval;
use crate::summary::MetricSummary;

/// Most points drawn per condition (strip plot) or per pair plot; beyond it a deterministic,
/// evenly spaced sample of the sorted values is drawn (so the shape stays) and the page says so.
pub const MAX_POINTS: usize = 2000;

/// Most points drawn on the whole page: with many conditions and metrics each strip gets its
/// share (but never fewer than [`MIN_POINTS`]), so that the file stays a few MB whatever the run.
pub const PAGE_POINTS: usize = 60_000;

/// The fewest points a strip is thinned to.
pub const MIN_POINTS: usize = 200;

/// How many points each strip of a page with `strips` strips may draw.
pub fn points_per_strip(strips: usize) -> usize {
    (PAGE_POINTS / strips.max(1)).clamp(MIN_POINTS, MAX_POINTS)
}

/// The Okabe–Ito palette: distinguishable with the common colour-vision deficiencies and in
/// greyscale print (together with the text labels every mark has).
pub const PALETTE: [&str; 7] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"];

/// The colour and the symbol of a verdict (the symbol and the word keep it readable without
/// colour).
pub fn verdict_style(verdict: &Verdict) -> (&'static str, &'static str, &'static str) {
    match verdict {
        Verdict::Supported => ("#0072B2", "\u{2714}", "supported"),
        Verdict::NotSupported => ("#D55E00", "\u{2716}", "not-supported"),
        Verdict::Inconclusive { .. } => ("#6b6b6b", "?", "inconclusive"),
        Verdict::WithinNoise { .. } => ("#E69F00", "\u{2248}", "within-noise"),
    }
}

/// A number on an axis or in a label: at most 4 significant digits, no trailing zeros.
pub fn short(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{x:.2e}");
    }
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A linear map from data to pixels.
#[derive(Clone, Copy)]
struct Scale {
    low: f64,
    high: f64,
    from: f64,
    to: f64,
}

impl Scale {
    /// A scale over `[low, high]` widened by 5 % (and made non-empty).
    fn padded(low: f64, high: f64, from: f64, to: f64) -> Scale {
        let (mut low, mut high) = if low.is_finite() && high.is_finite() { (low, high) } else { (0.0, 1.0) };
        if high - low < 1e-12 {
            let pad = if low.abs() > 1e-12 { low.abs() * 0.1 } else { 1.0 };
            low -= pad;
            high += pad;
        }
        let pad = (high - low) * 0.05;
        Scale { low: low - pad, high: high + pad, from, to }
    }

    fn at(&self, x: f64) -> f64 {
        self.from + (x - self.low) / (self.high - self.low) * (self.to - self.from)
    }

    /// About five round tick values inside the scale.
    fn ticks(&self) -> Vec<f64> {
        let span = self.high - self.low;
        let raw = span / 5.0;
        let power = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| span / s <= 6.0).unwrap_or(power * 10.0);
        let mut ticks = Vec::new();
        let mut tick = (self.low / step).ceil() * step;
        while tick <= self.high + step * 1e-9 && ticks.len() < 20 {
            ticks.push(if tick.abs() < step * 1e-9 { 0.0 } else { tick });
            tick += step;
        }
        ticks
    }
}

/// The vertical grid lines of a horizontal scale, each with its tick value below `bottom`.
fn grid(out: &mut String, scale: &Scale, top: f64, bottom: f64) {
    for tick in scale.ticks() {
        let x = scale.at(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{top:.1}" y2="{bottom:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 14.0,
            short(tick)
        );
    }
}

/// A reproducible jitter in [-1, 1] for point `i` (a hash, so the picture never changes).
fn jitter(i: u64) -> f64 {
    let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// At most `limit` (2 or more) of `sorted`, evenly spaced, the extremes included (all of them
/// when there are fewer).
pub fn thin<T: Copy>(sorted: &[T], limit: usize) -> Vec<T> {
    let limit = limit.max(2);
    if sorted.len() <= limit {
        return sorted.to_vec();
    }
    (0..limit).map(|i| sorted[i * (sorted.len() - 1) / (limit - 1)]).collect()
}

/// The `q` quantile of sorted values (linear interpolation, as R's type 7 and NumPy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

/// One condition of a strip plot: its values and its summary.
pub struct Strip<'a> {
    /// The condition.
    pub condition: &'a str,
    /// Its values of the metric (successful units), in replicate order.
    pub values: Vec<f64>,
    /// The summary of those values.
    pub summary: &'a MetricSummary,
}

const WIDTH: f64 = 720.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 24.0;

fn axis(out: &mut String, scale: &Scale, top: f64, bottom: f64, label: &str) {
    grid(out, scale, top, bottom);
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        bottom + 30.0,
        escape(label)
    );
}

/// The strip plot of one metric: a row per condition with every replicate as a point
/// (jittered vertically), the box from the first to the third quartile with the median, and the
/// mean as a diamond with its 95 % interval as a bar. Returns the SVG and whether any condition
/// was thinned.
pub fn strip_plot(metric: &str, strips: &[Strip], limit: usize) -> (String, bool) {
    let row = 54.0;
    let top = 10.0;
    let height = top + row * strips.len() as f64 + 40.0;
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for strip in strips {
        for x in [strip.summary.min, strip.summary.max, strip.summary.mean] {
            if x.is_finite() {
                low = low.min(x);
                high = high.max(x);
            }
        }
        if let Some(ci) = strip.summary.ci.as_ref().filter(|ci| ci.low.is_finite() && ci.high.is_finite()) {
            low = low.min(ci.low);
            high = high.max(ci.high);
        }
    }
    let scale = Scale::padded(low, high, LEFT, WIDTH - RIGHT);
    let bottom = top + row * strips.len() as f64;
    let mut out = format!(
        r#"<svg class="plot strip" data-metric="{m}" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" role="img" aria-label="{m}: every replicate per condition, with box, mean and 95% interval">"#,
        m = escape(metric)
    );
    axis(&mut out, &scale, top, bottom, metric);
    let mut thinned = false;
    for (index, strip) in strips.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let middle = top + row * index as f64 + row / 2.0;
        // A value that is not finite has no place on an axis (the tables still count it).
        let finite: Vec<f64> = strip.values.iter().copied().filter(|v| v.is_finite()).collect();
        let mut sorted = finite.clone();
        sorted.sort_by(f64::total_cmp);
        let drawn = thin(&sorted, limit);
        thinned |= drawn.len() < sorted.len();
        let _ = write!(
            out,
            r#"<g class="condition" data-condition="{c}" data-points="{}" data-values="{}"><text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{c}</text>"#,
            drawn.len(),
            sorted.len(),
            LEFT - 8.0,
            middle + 4.0,
            c = escape(strip.condition)
        );
        // The points, in one group so the markup per point stays small.
        let _ = write!(out, r#"<g class="points" fill="{colour}" fill-opacity="0.45">"#);
        // Points in replicate order when all are drawn (the jitter then follows the replicate).
        let points: &[f64] = if drawn.len() == finite.len() { &finite } else { &drawn };
        for (i, value) in points.iter().enumerate() {
            let y = middle + jitter(i as u64 ^ ((index as u64) << 40)) * row * 0.3;
            let _ = write!(out, r#"<circle class="point" cx="{:.1}" cy="{y:.1}" r="3"/>"#, scale.at(*value));
        }
        out.push_str("</g>");
        if !sorted.is_empty() {
            let (q1, median, q3) = (quantile(&sorted, 0.25), quantile(&sorted, 0.5), quantile(&sorted, 0.75));
            let (x1, x3) = (scale.at(q1), scale.at(q3));
            let _ = write!(
                out,
                r#"<rect class="box" x="{x1:.1}" y="{:.1}" width="{:.1}" height="{:.1}" stroke="{colour}"/><line class="median" x1="{m:.1}" x2="{m:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}"/>"#,
                middle - row * 0.36,
                (x3 - x1).max(0.5),
                row * 0.72,
                middle - row * 0.36,
                middle + row * 0.36,
                m = scale.at(median)
            );
        }
        if let Some(ci) = strip.summary.ci.as_ref().filter(|ci| ci.low.is_finite() && ci.high.is_finite()) {
            let _ = write!(
                out,
                r#"<line class="ci" x1="{:.1}" x2="{:.1}" y1="{middle:.1}" y2="{middle:.1}"/>"#,
                scale.at(ci.low),
                scale.at(ci.high)
            );
        }
        if !strip.summary.mean.is_finite() {
            out.push_str("</g>");
            continue;
        }
        let x = scale.at(strip.summary.mean);
        let _ = write!(
            out,
            r#"<path class="mean" d="M{:.1} {middle:.1}l5 -5l5 5l-5 5z"><title>{}: mean {}{}</title></path></g>"#,
            x - 5.0,
            escape(strip.condition),
            short(strip.summary.mean),
            strip
                .summary
                .ci
                .as_ref()
                .map(|ci| format!(", 95% CI [{}, {}]", short(ci.low), short(ci.high)))
                .unwrap_or_default()
        );
    }
    out.push_str("</svg>");
    (out, thinned)
}

/// The forest plot: a row per hypothesis with its effect and interval, the line of no effect, the
/// `--min-effect` band around it, and the verdict in colour, symbol and word.
pub fn forest_plot(hypotheses: &[&HypothesisResult]) -> String {
    let row = 34.0;
    let top = 10.0;
    let left = 290.0;
    let right_text = 150.0;
    let height = top + row * hypotheses.len() as f64 + 40.0;
    let (mut low, mut high) = (0.0f64, 0.0f64);
    for h in hypotheses {
        low = low.min(h.effect);
        high = high.max(h.effect);
        if let Some(Interval { low: l, high: u, .. }) = h.ci {
            // A one-sided interval reaches infinity: it is drawn to the edge.
            if l.is_finite() {
                low = low.min(l);
            }
            if u.is_finite() {
                high = high.max(u);
            }
        }
        if let Some(m) = h.min_effect {
            low = low.min(h.margin - m);
            high = high.max(h.margin + m);
        }
    }
    let width = WIDTH + 180.0;
    let scale = Scale::padded(low, high, left, width - right_text);
    let bottom = top + row * hypotheses.len() as f64;
    let mut out = format!(
        r#"<svg class="plot forest" viewBox="0 0 {width} {height:.0}" width="{width}" height="{height:.0}" role="img" aria-label="effects of the hypotheses with their intervals">"#
    );
    grid(&mut out, &scale, top, bottom);
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">effect (left − right), with its interval</text>"#,
        (left + width - right_text) / 2.0,
        bottom + 30.0
    );
    for (index, h) in hypotheses.iter().enumerate() {
        let middle = top + row * index as f64 + row / 2.0;
        let (colour, symbol, class) = verdict_style(&h.verdict);
        // Orange marks are fine, orange text on white is not: the word gets a darker shade.
        let text_colour = if class == "within-noise" { "#8a5d00" } else { colour };
        let _ = write!(
            out,
            r#"<g class="hypothesis {class}" data-hypothesis="{t}" data-verdict="{v}"><text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{t}</text>"#,
            left - 10.0,
            middle + 4.0,
            t = escape(&h.hypothesis),
            v = h.verdict
        );
        if let Some(m) = h.min_effect {
            let (a, b) = (scale.at(h.margin - m), scale.at(h.margin + m));
            let _ = write!(
                out,
                r#"<rect class="noise" x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>--min-effect {}: differences inside are noise</title></rect>"#,
                middle - row / 2.0,
                (b - a).max(0.5),
                row,
                short(m)
            );
        }
        let zero = scale.at(h.margin);
        let _ = write!(
            out,
            r#"<line class="null" x1="{zero:.1}" x2="{zero:.1}" y1="{:.1}" y2="{:.1}"/>"#,
            middle - row / 2.0,
            middle + row / 2.0
        );
        if let Some(ci) = &h.ci {
            let clamp = |x: f64| {
                if x.is_finite() {
                    scale.at(x)
                } else if x < 0.0 {
                    left
                } else {
                    width - right_text
                }
            };
            let _ = write!(
                out,
                r#"<line class="ci" style="stroke:{colour}" x1="{:.1}" x2="{:.1}" y1="{middle:.1}" y2="{middle:.1}"/>"#,
                clamp(ci.low),
                clamp(ci.high)
            );
        }
        let _ = write!(
            out,
            r#"<circle class="effect" cx="{:.1}" cy="{middle:.1}" r="{}" fill="{colour}"><title>effect {}</title></circle><text class="verdict" x="{:.1}" y="{:.1}" style="fill:{text_colour}">{symbol} {}</text></g>"#,
            // An effect that is not a number (no data) is drawn as nothing, at the null line.
            if h.effect.is_finite() { scale.at(h.effect) } else { zero },
            if h.effect.is_finite() { 5 } else { 0 },
            short(h.effect),
            width - right_text + 10.0,
            middle + 4.0,
            h.verdict
        );
    }
    out.push_str("</svg>");
    out
}

/// The paired view: per seed (replicate), the value under `y_label` against the value under
/// `x_label`, with the diagonal y = x; points above it favour the y condition. Returns the SVG
/// and whether it was thinned.
pub fn paired_plot(metric: &str, x_label: &str, y_label: &str, pairs: &[(f64, f64)], limit: usize) -> (String, bool) {
    let size = 300.0;
    let margin = 50.0;
    let pairs: Vec<(f64, f64)> = pairs.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let drawn = thin(&pairs, limit);
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in &pairs {
        low = low.min(x.min(*y));
        high = high.max(x.max(*y));
    }
    let sx = Scale::padded(low, high, margin, margin + size);
    let sy = Scale::padded(low, high, margin + size, margin);
    let total = size + margin * 2.0;
    let mut out = format!(
        r#"<svg class="plot paired" data-metric="{m}" data-x="{x}" data-y="{y}" data-points="{}" viewBox="0 0 {total} {total}" width="{total}" height="{total}" role="img" aria-label="{m} per seed: {y} against {x}">"#,
        drawn.len(),
        m = escape(metric),
        x = escape(x_label),
        y = escape(y_label)
    );
    for tick in sx.ticks() {
        let (x, y) = (sx.at(tick), sy.at(tick));
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{margin}" y2="{:.1}"/><line class="grid" y1="{y:.1}" y2="{y:.1}" x1="{margin}" x2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{t}</text><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{t}</text>"#,
            margin + size,
            margin + size,
            margin + size + 14.0,
            margin - 4.0,
            y + 4.0,
            t = short(tick)
        );
    }
    let (a, b) = (sx.at(sx.low), sx.at(sx.high));
    let (c, d) = (sy.at(sx.low), sy.at(sx.high));
    let _ = write!(out, r#"<line class="diagonal" x1="{a:.1}" y1="{c:.1}" x2="{b:.1}" y2="{d:.1}"/>"#);
    let _ = write!(out, r#"<g class="pairs" fill="{}" fill-opacity="0.4">"#, PALETTE[0]);
    for (i, (x, y)) in drawn.iter().enumerate() {
        // A little jitter separates equal pairs (counts and 0/1 outcomes), within 3 % of the axis.
        let spread = size * 0.03;
        let _ = write!(
            out,
            r#"<circle class="pair" cx="{:.1}" cy="{:.1}" r="3"/>"#,
            sx.at(*x) + jitter(i as u64) * spread,
            sy.at(*y) + jitter(i as u64 + 7_777_777) * spread
        );
    }
    let _ = write!(
        out,
        r#"</g><text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="axis-label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text></svg>"#,
        margin + size / 2.0,
        total - 8.0,
        escape(x_label),
        margin + size / 2.0,
        escape(y_label)
    );
    (out, drawn.len() < pairs.len())
}

/// Most pairs drawn along a sequence plot; beyond it an evenly spaced subset of the pair counts.
pub const MAX_SEQUENCE_POINTS: usize = 400;

/// One point of a sequence plot: pairs seen, the interval's low and high ends (`None`: unbounded).
pub type SequencePoint = (u64, Option<f64>, Option<f64>);

/// The anytime-valid interval of one hypothesis over the pairs seen: `(pairs, low, high)` (an end
/// `None` is unbounded yet), the margin of the hypothesis as a dashed line, and a vertical line
/// where it was decided.
pub fn sequence_plot(hypothesis: &str, points: &[SequencePoint], decided_at: Option<u64>) -> String {
    let height = 190.0;
    let (top, bottom) = (12.0, height - 42.0);
    let finite = |v: &Option<f64>| v.filter(|x| x.is_finite());
    let values: Vec<f64> = points.iter().flat_map(|(_, l, h)| [finite(l), finite(h)]).flatten().chain([0.0]).collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let last = points.iter().map(|(n, ..)| *n).max().unwrap_or(1).max(1) as f64;
    let x = Scale { low: 0.0, high: last, from: LEFT, to: LEFT + WIDTH - RIGHT };
    let y = Scale::padded(low, high, bottom, top);
    let mut out = format!(
        r#"<svg class="sequence" data-hypothesis="{}" viewBox="0 0 {} {height}" role="img" aria-label="anytime-valid interval of {} over the pairs">"#,
        escape(hypothesis),
        LEFT + WIDTH,
        escape(hypothesis)
    );
    axis(&mut out, &x, top, bottom, "pairs of replicates seen");
    let zero = y.at(0.0);
    let _ = write!(
        out,
        r##"<line class="margin" x1="{LEFT:.1}" x2="{:.1}" y1="{zero:.1}" y2="{zero:.1}" stroke="#555" stroke-dasharray="4 3"/>"##,
        LEFT + WIDTH - RIGHT
    );
    for (end, colour) in [(1usize, PALETTE[0]), (2usize, PALETTE[0])] {
        let mut path = String::new();
        for (n, l, h) in points {
            let value = if end == 1 { finite(l) } else { finite(h) };
            match value {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if path.is_empty() { "M" } else { "L" },
                        x.at(*n as f64),
                        y.at(v)
                    );
                }
                None => {
                    // Unbounded yet: the line starts where the end first is finite.
                    if !path.is_empty() && !path.ends_with("M") {
                        path.push(' ');
                    }
                }
            }
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                r#"<path class="bound" d="{}" fill="none" stroke="{colour}" stroke-width="1.6"/>"#,
                path.trim_end()
            );
        }
    }
    // The difference axis: its ticks on the left.
    for tick in y.ticks() {
        let py = y.at(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT:.1}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            short(tick)
        );
    }
    if let Some(at) = decided_at {
        let px = x.at(at as f64);
        // The label on the side of the line with room for it.
        let (label_x, anchor) = if px > LEFT + (WIDTH - RIGHT) / 2.0 { (px - 4.0, "end") } else { (px + 4.0, "start") };
        let _ = write!(
            out,
            r#"<line class="decided" x1="{px:.1}" x2="{px:.1}" y1="{top:.1}" y2="{bottom:.1}" stroke="{}" stroke-width="1.4"/><text class="tick" x="{label_x:.1}" y="{:.1}" text-anchor="{anchor}">decided after {at} pairs</text>"#,
            PALETTE[5],
            top + 10.0
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">difference</text></svg>"#,
        LEFT - 48.0,
        (top + bottom) / 2.0,
        LEFT - 48.0,
        (top + bottom) / 2.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_and_ticks_are_round() {
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(1234.5678), "1235");
        assert_eq!(short(0.012345), "0.01235");
        assert_eq!(short(-2.0), "-2");
        let ticks = Scale::padded(0.0, 1.0, 0.0, 100.0).ticks();
        assert_eq!(ticks, vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
    }

    #[test]
    fn values_that_are_not_finite_are_left_off_the_axes() {
        let values = [1.0, f64::NAN, 3.0, f64::INFINITY];
        let summary = MetricSummary::of(&values).unwrap();
        let strip = Strip { condition: "c", values: values.to_vec(), summary: &summary };
        let (svg, _) = strip_plot("m", &[strip], MAX_POINTS);
        assert_eq!(svg.matches(r#"class="point""#).count(), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let (svg, _) = paired_plot("m", "a", "b", &[(1.0, 2.0), (f64::NAN, 1.0)], MAX_POINTS);
        assert_eq!(svg.matches(r#"class="pair""#).count(), 1);
        assert!(!svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn every_value_is_a_point_up_to_the_limit_then_a_sample() {
        let summary = MetricSummary::of(&[1.0, 2.0, 3.0]).unwrap();
        let strip = Strip { condition: "a<b", values: vec![1.0, 2.0, 3.0], summary: &summary };
        let (svg, thinned) = strip_plot("m", &[strip], MAX_POINTS);
        assert!(!thinned);
        assert_eq!(svg.matches(r#"class="point""#).count(), 3);
        assert!(svg.contains(r#"data-condition="a&lt;b""#), "{svg}");
        let many: Vec<f64> = (0..10_000).map(f64::from).collect();
        let sample = thin(&many, MAX_POINTS);
        assert_eq!(sample.len(), MAX_POINTS);
        assert_eq!((sample[0], sample[MAX_POINTS - 1]), (0.0, 9_999.0), "the extremes stay");
        assert_eq!(points_per_strip(3), MAX_POINTS);
        assert_eq!(points_per_strip(100), 600, "a page of 100 strips shares the page's budget");
        assert_eq!(points_per_strip(10_000), MIN_POINTS);
    }
}
