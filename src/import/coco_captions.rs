//! COCO captions (`captions_*.json`) -> one `caption` sample per image, its captions in `answers`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use super::{read_json, write_samples, CocoImage, ImportOptions, Sample};

#[derive(Deserialize)]
struct CocoCaptionAnn {
    id: i64,
    image_id: i64,
    caption: String,
}

#[derive(Deserialize)]
struct CocoCaptions {
    images: Vec<CocoImage>,
    annotations: Vec<CocoCaptionAnn>,
}

/// `captions_*.json` -> one `caption` sample per image, its captions (by annotation id) in
/// `answers`, written to `out`; returns the number of samples.
pub fn import_coco_captions(annotations: &Path, opts: &ImportOptions, out: &Path) -> Result<usize> {
    write_samples(out, coco_captions_samples(annotations, opts)?)
}

/// The samples of [`import_coco_captions`].
pub fn coco_captions_samples(annotations: &Path, opts: &ImportOptions) -> Result<Vec<Sample>> {
    let data: CocoCaptions = read_json(annotations)?;
    let source = opts.source.clone().unwrap_or_else(|| "coco-captions".into());
    let mut caps: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for a in data.annotations {
        caps.entry(a.image_id).or_default().push((a.id, a.caption));
    }
    let mut images = data.images;
    images.sort_by_key(|i| i.id);
    let samples = images.into_iter().filter_map(|img| {
        let mut c = caps.remove(&img.id)?;
        c.sort_by_key(|x| x.0);
        Some(Sample {
            sample_id: format!("{source}-{}", img.id),
            task: "caption".into(),
            image_id: Some(img.id.to_string()),
            image_path: Some(format!("{}{}", opts.images_prefix, img.file_name)),
            width: img.width,
            height: img.height,
            instruction: String::new(),
            answers: Some(c.into_iter().map(|x| x.1).collect()),
            split: opts.split.clone(),
            source: Some(source.clone()),
            ..Default::default()
        })
    });
    Ok(samples.collect())
}
