//! The SVG latency spectrum: corrected response time and service time against the
//! percentile, on HdrHistogram's log scale of 1/(1-p).

use super::Outcome;
use hdrhistogram::Histogram;
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

/// One line of the plot: its legend, its (1/(1-p), µs) points and its colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, plotters::style::RGBColor);

/// Draws the latency percentile spectrum of the corrected and service-time
/// histograms: x is 1/(1-p) on a log scale, as HdrHistogram's plotter draws it.
pub fn plot(o: &Outcome, path: &Path, title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let mut series: Vec<Series> = Vec::new();
    let named: [(&str, &Histogram<u64>, RGBColor); 2] = if o.rate.is_some() {
        [
            ("response time (from intended send)", &o.corrected, RED),
            ("service time (from actual send)", &o.service, BLUE),
        ]
    } else {
        [
            ("response time (closed loop)", &o.corrected, RED),
            ("", &o.service, BLUE),
        ]
    };
    for (name, h, color) in named {
        if name.is_empty() || h.is_empty() {
            continue;
        }
        // Points up to the percentile the sample count can still resolve.
        let x_max = (h.len() as f64).max(10.0);
        let mut pts = Vec::new();
        let mut i = 0;
        loop {
            let x = 10f64.powf(i as f64 / 20.0);
            if x > x_max {
                break;
            }
            let q = 1.0 - 1.0 / x;
            pts.push((x, h.value_at_quantile(q) as f64 / 1e3));
            i += 1;
        }
        pts.push((x_max, h.max() as f64 / 1e3));
        series.push((name, pts, color));
    }
    if series.is_empty() {
        return Err("no latencies were recorded, nothing to plot".into());
    }
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(10.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (name, pts, color) in series {
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
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
}
