//! A generic co-segmentation layout (iCoSeg's: `images/<class>/*.jpg` and
//! `ground_truth/<class>/*.png`): `--images DIR` holds one folder per group of images, `--masks
//! DIR` the same folders with one PNG mask per image (same file stem, non-zero = foreground, the
//! image's size) -> `coseg` samples of `--group-size` images each (default 2), scored by
//! `queries/eval_coseg.sql`.
//!
//! Within a group the images are taken in file-name order and cut into consecutive samples of
//! `group_size`; a last sample of one image joins the one before (co-segmentation needs two).
//! Images are embedded in `images` and masks stored as COCO RLE in `masks`, in the same order;
//! `image_id` is the group. An image without a readable mask of its size is skipped with a
//! one-line reason; samples are written as each group is read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vista_udfs::contour::mask::Mask;

use super::{ImportOptions, Sample, SamplesReport, SamplesWriter};

const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// Reads the groups under `images_dir` with their masks under `masks_dir`; writes samples.
pub fn import_coseg(
    images_dir: &Path,
    masks_dir: &Path,
    group_size: usize,
    opts: &ImportOptions,
    out: &Path,
) -> Result<SamplesReport> {
    let mut w = SamplesWriter::create(out)?;
    let mut skipped = Vec::new();
    for group in groups(images_dir)? {
        for s in group_samples(&group, images_dir, masks_dir, group_size, opts, &mut skipped)? {
            w.push(s)?;
        }
    }
    Ok(SamplesReport { samples: w.finish()?, skipped })
}

/// The samples of [`import_coseg`] in memory, with the skipped images.
pub fn coseg_samples(
    images_dir: &Path,
    masks_dir: &Path,
    group_size: usize,
    opts: &ImportOptions,
) -> Result<(Vec<Sample>, Vec<String>)> {
    let (mut samples, mut skipped) = (Vec::new(), Vec::new());
    for group in groups(images_dir)? {
        samples.extend(group_samples(
            &group,
            images_dir,
            masks_dir,
            group_size,
            opts,
            &mut skipped,
        )?);
    }
    Ok((samples, skipped))
}

/// The group folders, sorted by name.
fn groups(images_dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(images_dir)
        .with_context(|| format!("cannot read '{}'", images_dir.display()))?
    {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    if out.is_empty() {
        bail!(
            "'{}' has no group folders (expected <images>/<group>/<image>)",
            images_dir.display()
        );
    }
    out.sort();
    Ok(out)
}

fn group_samples(
    group: &str,
    images_dir: &Path,
    masks_dir: &Path,
    group_size: usize,
    opts: &ImportOptions,
    skipped: &mut Vec<String>,
) -> Result<Vec<Sample>> {
    if group_size < 2 {
        bail!("--group-size must be at least 2, got {group_size}");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(images_dir.join(group))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| {
                IMAGE_EXTENSIONS.contains(&x.to_string_lossy().to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    let mut items = Vec::new();
    for path in files {
        match image_and_mask(&path, &masks_dir.join(group)) {
            Ok(item) => items.push(item),
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    let mut chunks: Vec<Vec<(Vec<u8>, Mask)>> = Vec::new();
    for item in items {
        match chunks.last_mut() {
            Some(c) if c.len() < group_size => c.push(item),
            _ => chunks.push(vec![item]),
        }
    }
    if chunks.len() > 1 && chunks.last().is_some_and(|c| c.len() == 1) {
        let last = chunks.pop().expect("non-empty");
        chunks.last_mut().expect("two chunks").extend(last);
    }
    if chunks.last().is_some_and(|c| c.len() == 1) {
        skipped.push(format!("group {group}: only one usable image"));
        chunks.pop();
    }
    let source = opts.source.clone().unwrap_or_else(|| "coseg".to_string());
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(k, chunk)| {
            let (w, h) = (chunk[0].1.width as i32, chunk[0].1.height as i32);
            let masks = chunk
                .iter()
                .map(|(_, m)| (m.height as i32, m.width as i32, m.rle_string()))
                .collect();
            Sample {
                sample_id: format!("{source}-{group}-{}", k + 1),
                task: "coseg".into(),
                image_id: Some(group.to_string()),
                images: Some(chunk.into_iter().map(|(img, _)| img).collect()),
                width: Some(w),
                height: Some(h),
                masks: Some(masks),
                split: opts.split.clone(),
                source: Some(source.clone()),
                ..Default::default()
            }
        })
        .collect())
}

/// An image's bytes and its mask, checked to be of the image's size.
fn image_and_mask(path: &Path, masks: &Path) -> std::result::Result<(Vec<u8>, Mask), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| format!("not a readable image ({e})"))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mask_path = masks.join(format!("{stem}.png"));
    let png =
        std::fs::read(&mask_path).map_err(|e| format!("no mask {}: {e}", mask_path.display()))?;
    let mask = Mask::from_png(&png).map_err(|e| format!("mask {}: {e}", mask_path.display()))?;
    if (mask.width as u32, mask.height as u32) != (w, h) {
        return Err(format!(
            "mask {} is {}x{}, the image {w}x{h}",
            mask_path.display(),
            mask.width,
            mask.height
        ));
    }
    Ok((bytes, mask))
}
