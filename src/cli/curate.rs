//! `vista curate`: instruction samples from an imported COCO-format set.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct CurateArgs {
    /// rec | res | grec | gres | caption | vqa | attcoseg, or the path of an edited .sql copy.
    task: String,
    /// Directory written by `vista import coco-instances`.
    #[arg(long)]
    input: PathBuf,
    /// Output directory (samples/part-*.parquet, manifest.json, report/).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Coordinate text of targets: bins | decimal.
    #[arg(long, default_value = "decimal")]
    style: String,
    /// Contour points per mask target.
    #[arg(long, default_value_t = 32)]
    points: i64,
    /// Drop mask targets whose polygon redraws the mask with a lower IoU.
    #[arg(long, default_value_t = 0.5)]
    min_iou: f64,
    /// Objects with a smaller COCO area are `tiny` (dropped).
    #[arg(long, default_value_t = 16.0)]
    min_area: f64,
    /// Drop images within this pHash Hamming distance of an earlier one; -1 = no de-duplication.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    phash_distance: i64,
    /// Keep at most this many samples per class (category, answer, ...); 0 = no cap.
    #[arg(long, default_value_t = 0)]
    max_per_class: i64,
    /// No-target samples (absent categories) per image for grec/gres/vqa.
    #[arg(long, default_value_t = 1)]
    negatives_per_image: i64,
    #[arg(long, default_value = "train")]
    split: String,
    /// Rows per Parquet shard.
    #[arg(long, default_value_t = 10000)]
    shard_rows: usize,
    /// Directory relative image paths are resolved against (vista.base_dir).
    #[arg(long)]
    base_dir: Option<String>,
    /// Memory the job's operators may hold before sorts spill to the temporary directory:
    /// 256M, 2G, ...; 0 = no limit (memory then grows with the candidates, ~2.5 KB each).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    memory_limit: usize,
}

/// `512`, `64K`, `256M`, `2G` (powers of 1024).
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim().to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let scale: usize = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("'{s}': expected a size such as 256M or 2G")),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("'{s}': expected a size such as 256M or 2G"))
}

/// Runs the curation job and prints its summary.
pub(crate) async fn curate(a: CurateArgs) -> Result<ExitCode> {
    let opts = vista::curate::CurateOptions {
        task: a.task,
        input: a.input,
        out_dir: a.out,
        seed: a.seed,
        style: a.style,
        points: a.points,
        min_iou: a.min_iou,
        min_area: a.min_area,
        phash_distance: a.phash_distance,
        max_per_class: a.max_per_class,
        negatives_per_image: a.negatives_per_image,
        split: a.split,
        shard_rows: a.shard_rows,
        base_dir: a.base_dir,
        memory_limit: (a.memory_limit > 0).then_some(a.memory_limit),
    };
    println!("{}", vista::curate::curate_async(&opts).await?);
    Ok(ExitCode::SUCCESS)
}
