//! The loss curve: `loss.csv` (one row per optimiser step) and `loss.png`.

use std::path::Path;

use anyhow::Result;
use image::{Rgb, RgbImage};

use crate::chart::{draw_text, draw_text_in, text_width};
use crate::output::write_bytes_atomic;

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub stage: u32,
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub seconds: f64,
}

pub const CSV_HEADER: &str = "stage,step,loss,lr,grad_norm,seconds";

impl Point {
    pub fn csv(&self) -> String {
        format!(
            "{},{},{:.6},{:.8},{:.5},{:.2}",
            self.stage, self.step, self.loss, self.lr, self.grad_norm, self.seconds
        )
    }

    pub fn parse(line: &str) -> Option<Point> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 6 {
            return None;
        }
        Some(Point {
            stage: f[0].parse().ok()?,
            step: f[1].parse().ok()?,
            loss: f[2].parse().ok()?,
            lr: f[3].parse().ok()?,
            grad_norm: f[4].parse().ok()?,
            seconds: f[5].parse().ok()?,
        })
    }
}

/// Reads the points of an existing `loss.csv` (a resumed run continues it).
pub fn read_csv(path: &Path) -> Vec<Point> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().skip(1).filter_map(Point::parse).collect())
        .unwrap_or_default()
}

pub fn write_csv(path: &Path, points: &[Point]) -> Result<()> {
    let mut text = String::from(CSV_HEADER);
    text.push('\n');
    for p in points {
        text.push_str(&p.csv());
        text.push('\n');
    }
    write_bytes_atomic(path, text.as_bytes())
}

/// The texts [`write_png`] draws besides numbers: axis titles and legend.
pub const LABELS: [&str; 6] =
    ["STEP", "LOSS", "STAGE 0", "STAGE 1", "STAGE 2", "LINE = MEAN OF 20 STEPS"];

/// Light (raw points) and dark (running mean) colours of stages 0 (green), 1 (blue), 2 (orange).
fn colours(stage: u32) -> ([u8; 3], [u8; 3]) {
    match stage {
        0 => ([160, 215, 160], [30, 120, 40]),
        1 => ([150, 180, 235], [20, 60, 170]),
        _ => ([245, 190, 140], [200, 90, 10]),
    }
}

/// Loss against global step, coloured by stage, a 20-step running mean drawn dark over the raw
/// points; the y axis runs from 0 to the largest loss. Axis titles, ticks at both ends of each
/// axis and a legend of the stages present are drawn in.
pub fn write_png(path: &Path, points: &[Point]) -> Result<()> {
    let (w, h) = (720u32, 380u32);
    let (left, right, top, bottom) = (50u32, 20u32, 40u32, 30u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_loss = points.iter().map(|p| p.loss).fold(0.0f64, f64::max).max(1e-9);
    let n = points.len().max(2);
    let at = |i: usize, loss: f64| {
        let x = left + (i as f64 / (n - 1) as f64 * (pw - 1) as f64).round() as u32;
        let y = top + ph - 1 - ((loss / max_loss).clamp(0.0, 1.0) * (ph - 1) as f64).round() as u32;
        (x, y)
    };
    for x in left..left + pw {
        img.put_pixel(x, top + ph, Rgb([0, 0, 0]));
    }
    for y in top..=top + ph {
        img.put_pixel(left - 1, y, Rgb([0, 0, 0]));
    }
    for (i, p) in points.iter().enumerate() {
        let (x, y) = at(i, p.loss);
        let c = colours(p.stage).0;
        img.put_pixel(x, y, Rgb(c));
    }
    let mut prev: Option<(u32, u32)> = None;
    for i in 0..points.len() {
        let lo = i.saturating_sub(19);
        let mean = points[lo..=i].iter().map(|p| p.loss).sum::<f64>() / (i - lo + 1) as f64;
        let (x, y) = at(i, mean);
        let c = colours(points[i].stage).1;
        if let Some((px, py)) = prev {
            let steps = px.abs_diff(x).max(py.abs_diff(y)).max(1);
            for s in 0..=steps {
                let t = s as f64 / steps as f64;
                let xi = (px as f64 + (x as f64 - px as f64) * t).round() as u32;
                let yi = (py as f64 + (y as f64 - py as f64) * t).round() as u32;
                img.put_pixel(xi, yi, Rgb(c));
            }
        }
        prev = Some((x, y));
    }
    let [x_title, y_title, stage0, stage1, stage2, line] = LABELS;
    draw_text(&mut img, y_title, 4, 6);
    draw_text(&mut img, &format!("{max_loss:.2}"), 2, top);
    draw_text(&mut img, "0", left - 12, top + ph - 10);
    draw_text(&mut img, "0", left, top + ph + 8);
    let steps = points.len().to_string();
    draw_text(&mut img, &steps, w - right - text_width(&steps), top + ph + 8);
    draw_text(&mut img, x_title, left + (pw - text_width(x_title)) / 2, top + ph + 8);
    let mut x = left + 60;
    let has_stage0 = points.iter().any(|p| p.stage == 0);
    let legend = [(stage0, 0), (stage1, 1), (stage2, 2)]
        .into_iter()
        .filter(|&(_, st)| st > 0 || has_stage0)
        .map(|(label, st)| (label, colours(st).1))
        .chain([(line, [90, 90, 90])]);
    for (label, c) in legend {
        draw_text_in(&mut img, label, x, 6, c);
        x += text_width(label) + 24;
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?;
    write_bytes_atomic(path, &out)
}
