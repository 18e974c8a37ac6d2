//! Reference-exact evaluation metrics: caption metrics as pycocoevalcap computes them (with its
//! PTB tokenisation), VQA accuracy, box IoU/GIoU, and the REC/RES/GREC/GRES scores.
//!
//! Every function names its variant (see [`variant_of`]) so outputs can record which
//! definition produced a number.

pub mod boxes;
pub mod caption;
pub mod caption_agg;
pub mod grec;
pub mod lists;
pub mod masks;
pub mod tokenize;
pub mod variant;
pub mod vqa;

#[cfg(test)]
mod fixture_tests;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use variant::variant_of;

pub(crate) const SECTION: datafusion::logical_expr::DocSection =
    datafusion::logical_expr::DocSection {
        include: true,
        label: "Vista metric functions",
        description: Some(
            "Reference-exact evaluation metrics: captioning, VQA, REC, RES, GREC, GRES.",
        ),
    };

pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(vqa::VqaAccuracyFunc::new()),
        ScalarUDF::new_from_impl(boxes::BoxOverlapFunc::new(boxes::Overlap::Iou)),
        ScalarUDF::new_from_impl(boxes::BoxOverlapFunc::new(boxes::Overlap::Giou)),
        ScalarUDF::new_from_impl(grec::GrecMatchFunc::new()),
    ]
}

pub fn aggregate_functions() -> Vec<AggregateUDF> {
    use caption_agg::{CaptionMetric, CaptionMetricFunc};
    vec![
        AggregateUDF::new_from_impl(CaptionMetricFunc::new(CaptionMetric::CiderD)),
        AggregateUDF::new_from_impl(CaptionMetricFunc::new(CaptionMetric::Bleu)),
        AggregateUDF::new_from_impl(CaptionMetricFunc::new(CaptionMetric::RougeL)),
        AggregateUDF::new_from_impl(CaptionMetricFunc::new(CaptionMetric::All)),
        AggregateUDF::new_from_impl(grec::GrecScoreFunc::new()),
        AggregateUDF::new_from_impl(masks::MaskMetricFunc::new(masks::MaskMetric::MIou)),
        AggregateUDF::new_from_impl(masks::MaskMetricFunc::new(masks::MaskMetric::CIou)),
        AggregateUDF::new_from_impl(masks::MaskMetricFunc::new(masks::MaskMetric::Res)),
        AggregateUDF::new_from_impl(masks::MaskMetricFunc::new(masks::MaskMetric::Gres {
            smoothed: false,
        })),
    ]
}
