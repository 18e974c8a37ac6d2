//! VQAv2 questions (+ annotations) -> one `vqa` sample per question, the 10 answers in `answers`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::{read_json, write_samples, ImportOptions, Sample};

#[derive(Deserialize)]
struct VqaQuestions {
    data_subtype: Option<String>,
    questions: Vec<VqaQuestion>,
}

#[derive(Deserialize)]
struct VqaQuestion {
    question_id: i64,
    image_id: i64,
    question: String,
}

#[derive(Deserialize)]
struct VqaAnnotations {
    annotations: Vec<VqaAnnotation>,
}

#[derive(Deserialize)]
struct VqaAnnotation {
    question_id: i64,
    multiple_choice_answer: Option<String>,
    answers: Vec<VqaAnswer>,
}

#[derive(Deserialize)]
struct VqaAnswer {
    answer: String,
}

/// VQAv2 questions (+ annotations, absent for test-dev) -> one `vqa` sample per question, its
/// (usually 10) human answers in `answers` and the majority answer in `target`. Image paths
/// follow COCO's naming, `COCO_<data_subtype>_<12-digit id>.jpg`.
pub fn import_vqav2(
    questions: &Path,
    annotations: Option<&Path>,
    opts: &ImportOptions,
    out: &Path,
) -> Result<usize> {
    write_samples(out, vqav2_samples(questions, annotations, opts)?)
}

/// The samples of [`import_vqav2`].
pub fn vqav2_samples(
    questions: &Path,
    annotations: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Vec<Sample>> {
    let q: VqaQuestions = read_json(questions)?;
    let source = opts.source.clone().unwrap_or_else(|| "vqav2".into());
    let subtype = q.data_subtype.clone().unwrap_or_else(|| "val2014".into());
    let mut anns: HashMap<i64, VqaAnnotation> = HashMap::new();
    if let Some(a) = annotations {
        let a: VqaAnnotations = read_json(a)?;
        anns = a.annotations.into_iter().map(|a| (a.question_id, a)).collect();
    }
    let mut qs = q.questions;
    qs.sort_by_key(|q| q.question_id);
    let mut missing = None;
    let samples: Vec<Sample> = qs
        .into_iter()
        .map(|q| {
            let ann = anns.remove(&q.question_id);
            if annotations.is_some() && ann.is_none() && missing.is_none() {
                missing = Some(q.question_id);
            }
            Sample {
                sample_id: format!("{source}-{}", q.question_id),
                task: "vqa".into(),
                image_id: Some(q.image_id.to_string()),
                image_path: Some(format!(
                    "{}COCO_{subtype}_{:012}.jpg",
                    opts.images_prefix, q.image_id
                )),
                instruction: q.question,
                target: ann.as_ref().and_then(|a| a.multiple_choice_answer.clone()),
                answers: ann.map(|a| a.answers.into_iter().map(|x| x.answer).collect()),
                split: opts.split.clone(),
                source: Some(source.clone()),
                ..Default::default()
            }
        })
        .collect();
    if let Some(id) = missing {
        bail!("vqav2: question {id} has no annotation in '{}'", annotations.unwrap().display());
    }
    Ok(samples)
}
