//! `vista demo --report`: `report.html` with the score table and, for the first samples of each
//! task, the image(s) with the ground truth (cyan) and the prediction (orange) drawn over them,
//! the instruction, the target and the model's raw answer. Pictures go to `report/*.png` next to
//! the page, so the page stays small and opens from disk.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use image::{Rgb, RgbImage};

/// Samples shown per task.
const PER_TASK: usize = 2;
/// Pictures are drawn at this multiple of the image size (nearest neighbour).
const ZOOM: u32 = 3;
// Colours no synthetic object has, each line on a black halo so it shows on any background.
const TRUTH: Rgb<u8> = Rgb([0, 230, 230]);
const PREDICTED: Rgb<u8> = Rgb([255, 140, 0]);
const HALO: Rgb<u8> = Rgb([0, 0, 0]);

struct Shown {
    task: String,
    instruction: String,
    target: String,
    raw: String,
    status: String,
    images: Vec<Vec<u8>>,
    truth: Shapes,
    predicted: Shapes,
}

#[derive(Default)]
struct Shapes {
    boxes: Vec<Vec<f64>>,
    polygons: Vec<Vec<f64>>,
}

fn text(b: &RecordBatch, name: &str) -> Result<Vec<String>> {
    let col = b.column_by_name(name).with_context(|| format!("report: no `{name}` column"))?;
    let col = datafusion::arrow::compute::cast(col, &DataType::Utf8)?;
    let s = col.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| if s.is_valid(i) { s.value(i).to_string() } else { String::new() })
        .collect())
}

/// list<list<double>> per row.
fn nested(b: &RecordBatch, name: &str) -> Result<Vec<Vec<Vec<f64>>>> {
    let col = b.column_by_name(name).with_context(|| format!("report: no `{name}` column"))?;
    let target = DataType::new_list(DataType::new_list(DataType::Float64, true), true);
    let col = datafusion::arrow::compute::cast(col, &target)?;
    let outer = col.as_list::<i32>();
    let mut rows = Vec::with_capacity(outer.len());
    for i in 0..outer.len() {
        let mut shapes = Vec::new();
        if outer.is_valid(i) {
            let inner = outer.value(i);
            let inner = inner.as_list::<i32>();
            for k in 0..inner.len() {
                if inner.is_valid(k) {
                    let v = inner.value(k);
                    shapes.push(v.as_primitive::<Float64Type>().values().to_vec());
                }
            }
        }
        rows.push(shapes);
    }
    Ok(rows)
}

fn images(b: &RecordBatch) -> Result<Vec<Vec<Vec<u8>>>> {
    let col = b.column_by_name("imgs").context("report: no `imgs` column")?;
    let col = datafusion::arrow::compute::cast(col, &DataType::new_list(DataType::Binary, true))?;
    let list = col.as_list::<i32>();
    Ok((0..list.len())
        .map(|i| {
            if !list.is_valid(i) {
                return Vec::new();
            }
            let v = list.value(i);
            let v = v.as_binary::<i32>();
            (0..v.len()).filter(|&k| v.is_valid(k)).map(|k| v.value(k).to_vec()).collect()
        })
        .collect())
}

async fn shown(ctx: &SessionContext, samples: &Path, predictions: &Path) -> Result<Vec<Shown>> {
    let sql = format!(
        "WITH j AS (
            SELECT p.task, p.sample_id, p.instruction, s.target, p.raw, p.parse_status,
                   s.width, s.height,
                   CASE WHEN s.images IS NOT NULL THEN s.images ELSE make_array(s.image) END AS imgs,
                   row_number() OVER (PARTITION BY p.task ORDER BY p.sample_id) AS k
            FROM '{pred}' p JOIN '{samples}' s ON p.sample_id = s.sample_id)
         SELECT task, instruction, target, raw, parse_status, imgs,
                parse_boxes(COALESCE(target, ''), 'pixel', width, height)['boxes'] AS gt_boxes,
                parse_polygons(COALESCE(target, ''), 'pixel', width, height)['polygons'] AS gt_polygons,
                parse_boxes(COALESCE(raw, ''), 'pixel', width, height)['boxes'] AS boxes,
                parse_polygons(COALESCE(raw, ''), 'pixel', width, height)['polygons'] AS polygons
         FROM j WHERE k <= {PER_TASK} ORDER BY task, sample_id",
        pred = predictions.display(),
        samples = samples.display(),
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let (task, instruction, target, raw, status) = (
            text(b, "task")?,
            text(b, "instruction")?,
            text(b, "target")?,
            text(b, "raw")?,
            text(b, "parse_status")?,
        );
        let (gtb, gtp, pb, pp) = (
            nested(b, "gt_boxes")?,
            nested(b, "gt_polygons")?,
            nested(b, "boxes")?,
            nested(b, "polygons")?,
        );
        let imgs = images(b)?;
        for i in 0..b.num_rows() {
            out.push(Shown {
                task: task[i].clone(),
                instruction: instruction[i].clone(),
                target: target[i].clone(),
                raw: raw[i].clone(),
                status: status[i].clone(),
                images: imgs[i].clone(),
                truth: Shapes { boxes: gtb[i].clone(), polygons: gtp[i].clone() },
                predicted: Shapes { boxes: pb[i].clone(), polygons: pp[i].clone() },
            });
        }
    }
    Ok(out)
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()) * ZOOM as f64).ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = ((x0 + (x1 - x0) * t) * ZOOM as f64, (y0 + (y1 - y0) * t) * ZOOM as f64);
        let pen: &[(i64, i64)] = if c == HALO {
            &[
                (-1, -1),
                (0, -1),
                (1, -1),
                (2, -1),
                (-1, 0),
                (2, 0),
                (-1, 1),
                (2, 1),
                (-1, 2),
                (0, 2),
                (1, 2),
                (2, 2),
            ]
        } else {
            &[(0, 0), (1, 0), (0, 1), (1, 1)]
        };
        for &(dx, dy) in pen {
            let (px, py) = (x.round() as i64 + dx, y.round() as i64 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

fn draw(img: &mut RgbImage, shapes: &Shapes, polygons: &[&Vec<f64>], c: Rgb<u8>) {
    for b in shapes.boxes.iter().filter(|b| b.len() == 4) {
        let (x0, y0, x1, y1) = (b[0], b[1], b[2], b[3]);
        for (p, q) in
            [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))]
        {
            line(img, p, q, c);
        }
    }
    for poly in polygons {
        let pts: Vec<(f64, f64)> = poly.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        for k in 0..pts.len() {
            line(img, pts[k], pts[(k + 1) % pts.len()], c);
        }
    }
}

/// The sample's k-th picture with its shapes: every shape on a single image, the k-th polygon
/// on the k-th image of a multi-image sample (one mask per image, in order).
fn picture(s: &Shown, k: usize) -> Result<Vec<u8>> {
    let img = image::load_from_memory(&s.images[k]).context("report: an image does not decode")?;
    let img = img.to_rgb8();
    let mut big = image::imageops::resize(
        &img,
        img.width() * ZOOM,
        img.height() * ZOOM,
        image::imageops::FilterType::Nearest,
    );
    let multi = s.images.len() > 1;
    for (shapes, colour) in [(&s.truth, TRUTH), (&s.predicted, PREDICTED)] {
        let polygons: Vec<&Vec<f64>> = if multi {
            shapes.polygons.get(k).into_iter().collect()
        } else {
            shapes.polygons.iter().collect()
        };
        let boxes = if multi {
            Shapes::default()
        } else {
            Shapes { boxes: shapes.boxes.clone(), polygons: Vec::new() }
        };
        draw(&mut big, &boxes, &polygons, HALO);
        draw(&mut big, &boxes, &polygons, colour);
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(big)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?;
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn score_rows(
    ctx: &SessionContext,
    scores: &Path,
    floor: Option<&Path>,
) -> Result<Vec<[String; 5]>> {
    let sql = match floor {
        Some(f) => format!(
            "SELECT m.task, m.metric, CAST(m.value AS VARCHAR) AS v, CAST(f.value AS VARCHAR) AS fv, CAST(m.n AS VARCHAR) AS n \
             FROM '{}' m LEFT JOIN '{}' f ON m.task = f.task AND m.metric = f.metric AND m.variant = f.variant \
             ORDER BY m.task, m.metric",
            scores.display(),
            f.display()
        ),
        None => format!(
            "SELECT task, metric, CAST(value AS VARCHAR) AS v, '' AS fv, CAST(n AS VARCHAR) AS n FROM '{}' ORDER BY task, metric",
            scores.display()
        ),
    };
    let mut rows = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let cols: Vec<Vec<String>> = ["task", "metric", "v", "fv", "n"]
            .iter()
            .map(|c| text(&b, c))
            .collect::<Result<_>>()?;
        rows.extend((0..b.num_rows()).map(|i| std::array::from_fn(|c| cols[c][i].clone())));
    }
    Ok(rows)
}

fn round(v: &str) -> String {
    v.parse::<f64>().map(|x| format!("{x:.3}")).unwrap_or_else(|_| v.to_string())
}

/// Writes `page` and its pictures in `page`'s folder under `report/`.
pub async fn write(
    ctx: &SessionContext,
    samples: &Path,
    predictions: &Path,
    scores: &Path,
    floor: Option<&Path>,
    page: &Path,
) -> Result<()> {
    let dir = page.parent().unwrap_or(Path::new("."));
    let pics = dir.join("report");
    let _ = std::fs::remove_dir_all(&pics);
    std::fs::create_dir_all(&pics)
        .with_context(|| format!("cannot create '{}'", pics.display()))?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>vista demo</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .s{display:flex;gap:1.5em;margin:1em 0;border-top:1px solid #ddd;padding-top:1em}\
         code{white-space:pre-wrap;word-break:break-all;font-size:12px}\
         .t{color:#009a9a}.p{color:#e07800}</style></head><body><h1>vista demo</h1>",
    );
    html.push_str("<h2>Scores (held-out synthetic set)</h2><table><tr><th>task</th><th>metric</th><th>model</th><th>random weights</th><th>n</th></tr>");
    for [task, metric, v, fv, n] in score_rows(ctx, scores, floor).await? {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&task),
            escape(&metric),
            round(&v),
            round(&fv),
            escape(&n)
        );
    }
    html.push_str("</table><h2>Samples</h2><p><span class=\"t\">cyan: ground truth</span>, <span class=\"p\">orange: prediction</span></p>");
    for (i, s) in shown(ctx, samples, predictions).await?.iter().enumerate() {
        html.push_str("<div class=\"s\"><div>");
        for k in 0..s.images.len() {
            let name = format!("{i:03}_{k}.png");
            let bytes = picture(s, k)?;
            std::fs::write(pics.join(&name), bytes)
                .with_context(|| format!("cannot write '{name}'"))?;
            let _ = write!(html, "<img src=\"report/{name}\" alt=\"{}\"> ", escape(&s.task));
        }
        let _ = write!(
            html,
            "</div><div><b>{}</b><p>{}</p><p class=\"t\">target: <code>{}</code></p>\
             <p class=\"p\">model: <code>{}</code> ({})</p></div></div>",
            escape(&s.task),
            escape(&s.instruction),
            escape(&s.target),
            escape(&s.raw),
            escape(&s.status)
        );
    }
    html.push_str("</body></html>\n");
    crate::output::write_bytes_atomic(page, html.as_bytes())
}
