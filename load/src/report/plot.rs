//! The SVG latency spectrum: latency against the percentile, both on log scales
//! (HdrHistogram's 1/(1-p) for the percentile, so the tail has room; log latency, so
//! the median is not flattened against the axis by a slow p99.9), with the run's
//! parameters in the title and the SLO as a line when one was given. Several runs can
//! share one plot (`--plot-json`), each from the spectrum its JSON report holds.

use super::Outcome;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::path::Path;

/// Label of x = 1/(1-p) as a percentile: 1 -> 0%, 10 -> 90%, 1000 -> 99.9%.
fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.decimals$}%")
}

/// Label of a latency in microseconds, in µs below a millisecond and ms above.
fn latency_label(us: f64) -> String {
    if us >= 1000.0 {
        let ms = us / 1000.0;
        if ms >= 10.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms:.1} ms")
        }
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

/// One line of the plot: its legend and its (1/(1-p), µs) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The spectrum of `h` as (1/(1-p), µs) points, up to the percentile its sample count
/// can resolve, then its maximum.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let x_max = (h.len() as f64).max(10.0);
    let mut pts = Vec::new();
    let mut i = 0;
    loop {
        let x = 10f64.powf(i as f64 / 20.0);
        if x > x_max {
            break;
        }
        let q = 1.0 - 1.0 / x;
        pts.push((x, h.value_at_quantile(q).max(1) as f64 / 1e3));
        i += 1;
    }
    pts.push((x_max, h.max().max(1) as f64 / 1e3));
    pts
}

/// The series of one run: corrected response time, and service time in open loop.
pub fn run_series(o: &Outcome) -> Vec<Series> {
    let named: [(&str, &Histogram<u64>); 2] = if o.rate.is_some() {
        [
            ("response time (from intended send)", &o.corrected),
            ("service time (from actual send)", &o.service),
        ]
    } else {
        [
            ("response time (closed loop)", &o.corrected),
            ("", &o.service),
        ]
    };
    named
        .into_iter()
        .filter(|(name, h)| !name.is_empty() && !h.is_empty())
        .map(|(name, h)| Series {
            name: name.to_string(),
            points: spectrum(h),
        })
        .collect()
}

/// One series from a run's JSON report (its `latency_spectrum_us`), named by the
/// run's parameters.
pub fn json_series(doc: &Value, file: &str) -> Result<Series, String> {
    let points = doc["latency_spectrum_us"]
        .as_array()
        .ok_or_else(|| format!("{file} has no latency_spectrum_us (written by an older version?)"))?
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
        .collect();
    let p = &doc["params"];
    let mode = match p["rate"].as_f64() {
        Some(r) => format!("{r:.0}/s"),
        None => "closed".into(),
    };
    let name = format!(
        "{file}: {} {mode}, {} conns, pipeline {}",
        p["protocol"].as_str().unwrap_or("?"),
        p["connections"],
        p["pipeline"]
    );
    Ok(Series { name, points })
}

/// A latency target to draw: its text and its latency in microseconds.
pub type SloLine<'a> = Option<(&'a str, f64)>;

/// Draws `series` to an SVG file at `path`.
pub fn draw(series: &[Series], path: &Path, title: &str, slo: SloLine<'_>) -> Result<(), String> {
    use plotters::prelude::*;
    if series.iter().all(|s| s.points.is_empty()) {
        return Err("no latencies were recorded, nothing to plot".into());
    }
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(10.0, f64::max);
    let slo_us = slo.map_or(0.0, |s| s.1);
    let y_max = all().map(|p| p.1).fold(slo_us, f64::max).max(1.0) * 1.5;
    let y_min = all()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(slo_us.max(0.1))
        / 1.5;
    let y_min = y_min.clamp(0.01, y_max / 10.0);
    let root = SVGBackend::new(path, (1100, 650)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| latency_label(*y))
        .draw()
        .map_err(|e| err(&e))?;
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, s) in series.iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if let Some((text, us)) = slo {
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(LineSeries::new(
                vec![(1.0, us), (x_max, us)],
                grey.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(format!("target {text}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The histogram in HdrHistogram's percentile-distribution text format (as its
/// `outputPercentileDistribution` writes it, values in microseconds), so runs can be
/// compared with the standard tools (HdrHistogram's plotter, hdr-plot).
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1e3;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:>12.3} {q:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1e3,
        h.stdev() / 1e3
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1e3,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_nines() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10000.0), "99.99%");
    }

    #[test]
    fn latency_labels_switch_to_ms() {
        assert_eq!(latency_label(76.0), "76 µs");
        assert_eq!(latency_label(2.5), "2.5 µs");
        assert_eq!(latency_label(1500.0), "1.5 ms");
        assert_eq!(latency_label(25_000.0), "25 ms");
    }

    #[test]
    fn the_percentile_distribution_reads_like_hdrhistograms() {
        let mut h = crate::report::new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let text = percentile_distribution(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Value") && lines[0].contains("1/(1-Percentile)"));
        // The last value line reaches the 100th percentile and counts every sample.
        let last = lines
            .iter()
            .rev()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        let fields: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(fields[1].parse::<f64>().unwrap(), 1.0);
        assert_eq!(fields[2], "1000");
        assert!(text.contains("#[Max     ="));
        assert!(text.contains("Total count    =         1000"));
    }
}
