//! The curation report: candidates per task and filter, the reconstruction-IoU histogram (CSV
//! and PNG), and the dropped candidates with their reason.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use image::{Rgb, RgbImage};
use serde::Serialize;

use super::Candidates;
use crate::chart::{draw_text, draw_text_in, fill, text_width};
use crate::output;

/// Histogram bins over [0, 1].
const BINS: usize = 20;

pub fn dropped_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Utf8, true),
        Field::new("task", DataType::Utf8, true),
        Field::new("dropped_by", DataType::Utf8, true),
        Field::new("recon_iou", DataType::Float64, true),
    ]))
}

/// Running counts over the candidate stream.
pub struct Tally {
    min_iou: f64,
    /// (task, status) -> candidates; status is `kept` or the filter's name.
    counts: BTreeMap<(String, String), usize>,
    /// Per bin: (kept, dropped) candidates with a reconstruction IoU.
    histogram: [(usize, usize); BINS],
    iou_sum: f64,
    iou_n: usize,
    dropped_rows: Vec<RecordBatch>,
}

#[derive(Serialize)]
struct HistogramBin {
    from: f64,
    to: f64,
    kept: usize,
    dropped: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    task: &'a str,
    candidates: usize,
    kept: usize,
    dropped: BTreeMap<String, usize>,
    per_task: BTreeMap<String, BTreeMap<String, usize>>,
    min_iou: f64,
    mean_recon_iou: Option<f64>,
    iou_histogram: Vec<HistogramBin>,
}

impl Tally {
    pub fn new(min_iou: f64) -> Tally {
        Tally {
            min_iou,
            counts: BTreeMap::new(),
            histogram: [(0, 0); BINS],
            iou_sum: 0.0,
            iou_n: 0,
            dropped_rows: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, c: &Candidates) -> Result<()> {
        let tasks = c.task.as_string::<i32>();
        let dropped = c.dropped_by.as_string::<i32>();
        let iou = c.recon_iou.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        for i in 0..tasks.len() {
            let status = if dropped.is_null(i) { "kept" } else { dropped.value(i) };
            let task = if tasks.is_null(i) { "" } else { tasks.value(i) };
            *self.counts.entry((task.to_string(), status.to_string())).or_default() += 1;
            if iou.is_valid(i) {
                let v = iou.value(i);
                let bin = ((v * BINS as f64) as usize).min(BINS - 1);
                if dropped.is_null(i) {
                    self.histogram[bin].0 += 1;
                } else {
                    self.histogram[bin].1 += 1;
                }
                self.iou_sum += v;
                self.iou_n += 1;
            }
        }
        Ok(())
    }

    pub fn keep_dropped(&mut self, batch: &RecordBatch) {
        if batch.num_rows() > 0 {
            self.dropped_rows.push(batch.clone());
        }
    }

    pub fn candidates(&self) -> usize {
        self.counts.values().sum()
    }

    pub fn kept(&self) -> usize {
        self.counts.iter().filter(|((_, s), _)| s == "kept").map(|(_, n)| n).sum()
    }

    pub fn dropped(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for ((_, status), n) in &self.counts {
            if status != "kept" {
                *out.entry(status.clone()).or_default() += n;
            }
        }
        out
    }

    /// Writes `report.json`, `counts.csv`, `iou_histogram.csv`, `iou_histogram.png` and
    /// `dropped.parquet` into `dir`.
    pub fn write(&self, dir: &Path, task: &str, meta: &[(String, String)]) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut per_task: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for ((t, s), n) in &self.counts {
            per_task.entry(t.clone()).or_default().insert(s.clone(), *n);
        }
        let bins: Vec<HistogramBin> = self
            .histogram
            .iter()
            .enumerate()
            .map(|(i, (k, d))| HistogramBin {
                from: i as f64 / BINS as f64,
                to: (i + 1) as f64 / BINS as f64,
                kept: *k,
                dropped: *d,
            })
            .collect();
        let mut counts_csv = String::from("task,status,candidates\n");
        for ((t, s), n) in &self.counts {
            counts_csv.push_str(&format!("{t},{s},{n}\n"));
        }
        let mut hist_csv = String::from("from,to,kept,dropped\n");
        for b in &bins {
            hist_csv.push_str(&format!("{:.2},{:.2},{},{}\n", b.from, b.to, b.kept, b.dropped));
        }
        output::write_bytes_atomic(&dir.join("counts.csv"), counts_csv.as_bytes())?;
        output::write_bytes_atomic(&dir.join("iou_histogram.csv"), hist_csv.as_bytes())?;
        let png = histogram_png(&self.histogram, self.min_iou);
        output::write_bytes_atomic(&dir.join("iou_histogram.png"), &png)?;
        output::write_parquet_atomic(
            &dir.join("dropped.parquet"),
            &self.dropped_rows,
            dropped_schema(),
            meta,
        )?;
        let report = Report {
            task,
            candidates: self.candidates(),
            kept: self.kept(),
            dropped: self.dropped(),
            per_task,
            min_iou: self.min_iou,
            mean_recon_iou: (self.iou_n > 0).then(|| self.iou_sum / self.iou_n as f64),
            iou_histogram: bins,
        };
        output::write_json_atomic(&dir.join("report.json"), &report)
    }
}

/// The texts [`histogram_png`] draws besides numbers: axis titles and legend.
pub const LABELS: [&str; 5] = ["RECONSTRUCTION IOU", "SAMPLES", "KEPT", "DROPPED", "MIN IOU"];

/// The histogram as a bar chart: kept candidates green, dropped ones red on top, the `min_iou`
/// threshold as a blue line; x ticks at 0, 0.25, ..., 1, the tallest bar's count top left,
/// axis titles and a legend.
fn histogram_png(bins: &[(usize, usize); BINS], min_iou: f64) -> Vec<u8> {
    let (w, h) = (640u32, 380u32);
    let (left, right, top, bottom) = (40u32, 20u32, 40u32, 50u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = bins.iter().map(|(k, d)| k + d).max().unwrap_or(0).max(1);
    let bar_w = plot_w / BINS as u32;
    for (i, (kept, dropped)) in bins.iter().enumerate() {
        let x0 = left + i as u32 * bar_w + 1;
        let x1 = x0 + bar_w - 2;
        let hk = (*kept as f64 / max as f64 * plot_h as f64).round() as u32;
        let hd = (*dropped as f64 / max as f64 * plot_h as f64).round() as u32;
        let base = top + plot_h;
        fill(&mut img, x0, base - hk, x1, base, [60, 160, 80]);
        fill(&mut img, x0, base - hk - hd, x1, base - hk, [210, 70, 60]);
    }
    // Axes.
    fill(&mut img, left, top + plot_h, left + plot_w, top + plot_h + 1, [0, 0, 0]);
    fill(&mut img, left - 1, top, left, top + plot_h + 1, [0, 0, 0]);
    // Threshold.
    let tx = left + (min_iou * plot_w as f64).round() as u32;
    fill(&mut img, tx, top, tx + 2, top + plot_h, [40, 80, 220]);
    for k in 0..=4 {
        let x = left + k * plot_w / 4;
        fill(&mut img, x, top + plot_h, x + 1, top + plot_h + 5, [0, 0, 0]);
        let label = ["0", "0.25", "0.5", "0.75", "1"][k as usize];
        draw_text(&mut img, label, x.saturating_sub(label.len() as u32 * 4), top + plot_h + 10);
    }
    draw_text(&mut img, &max.to_string(), 4, top);
    let [x_title, y_title, kept, dropped, threshold] = LABELS;
    draw_text(&mut img, y_title, 4, 6);
    draw_text(&mut img, x_title, left + (plot_w - text_width(x_title)) / 2, top + plot_h + 28);
    let mut x = left + 100;
    for (label, c) in [(kept, [60, 160, 80]), (dropped, [210, 70, 60]), (threshold, [40, 80, 220])]
    {
        draw_text_in(&mut img, label, x, 6, c);
        x += text_width(label) + 24;
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG into memory cannot fail");
    out
}
