//! Which definition of a metric a call used, as a short stable string for output metadata
//! (the Parquet writer records it next to the scores).
//!
//! Convention: `<function>:<reference>@<commit>[;<option>=<value>...]`, where the options are
//! the call's literal arguments that change the definition, defaults filled in.

/// The variant string of a metric function call, from its name and the literal values of its
/// named arguments (`("variant", "pre2021")`, `("tokenize", "false")`, ...). `None` for
/// functions that are not metrics.
pub fn variant_of(func: &str, literal_args: &[(&str, &str)]) -> Option<String> {
    let arg = |name: &str| {
        literal_args
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches('\'').to_ascii_lowercase())
    };
    let flag = |name: &str, default: bool| match arg(name).as_deref() {
        Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        _ => default,
    };
    let tokenize = || if flag("tokenize", true) { "ptb-3.4.1" } else { "none" };
    const COCO: &str = "pycocoevalcap@ad63453";
    Some(match func {
        "ptb_tokenize" => "ptb_tokenize:stanford-ptbtokenizer-3.4.1;lowercase;preserve_lines;punct=pycocoevalcap;scope=caption".into(),
        "cider_d" => format!("cider_d:{COCO};n=4;sigma=6;df=group;tokenize={}", tokenize()),
        "bleu" => format!("bleu:{COCO};n=4;reflen=closest;tokenize={}", tokenize()),
        "rouge_l" => format!("rouge_l:{COCO};beta=1.2;tokenize={}", tokenize()),
        "caption_scores" => format!(
            "caption_scores:{COCO};bleu=n4,closest;rouge_l=beta1.2;cider_d=n4,sigma6,df=group;tokenize={}",
            tokenize()
        ),
        "vqa_accuracy" => match arg("variant").as_deref() {
            Some("pre2021") | Some("legacy") => "vqa_accuracy:GT-Vision-Lab/VQA@77bb365;variant=pre2021".into(),
            _ => "vqa_accuracy:GT-Vision-Lab/VQA@a013f00;variant=current".into(),
        },
        "box_iou" => "box_iou:torchvision;continuous;empty_union=0".into(),
        "box_giou" => "box_giou:mdetr-box_ops;continuous;empty_enclosure=0".into(),
        "grec_match" | "grec_score" => format!(
            "{func}:gRefCOCO@b4b1e55;match=giou>={};f1=1.0;score_filter=none",
            arg("iou_threshold").unwrap_or_else(|| "0.5".into())
        ),
        "miou" | "ciou" | "res_score" => format!("{func}:LAVT@066bcf2;empty_union=0;resolution=input"),
        "gres_score" => {
            if flag("smoothed", false) {
                "gres_score:ReLA@a389648;acc=+1-smoothed".into()
            } else {
                "gres_score:ReLA@884ef17;acc=fixed".into()
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_options_are_named() {
        assert_eq!(
            variant_of("vqa_accuracy", &[]).unwrap(),
            "vqa_accuracy:GT-Vision-Lab/VQA@a013f00;variant=current"
        );
        assert!(variant_of("vqa_accuracy", &[("variant", "'pre2021'")])
            .unwrap()
            .ends_with("variant=pre2021"));
        assert!(variant_of("cider_d", &[("tokenize", "false")])
            .unwrap()
            .ends_with("tokenize=none"));
        assert!(variant_of("gres_score", &[("smoothed", "true")]).unwrap().contains("a389648"));
        assert_eq!(variant_of("image_width", &[]), None);
        for f in crate::metrics::scalar_functions() {
            assert!(variant_of(f.name(), &[]).is_some(), "{} has no variant", f.name());
        }
        for f in crate::metrics::aggregate_functions() {
            assert!(variant_of(f.name(), &[]).is_some(), "{} has no variant", f.name());
        }
    }
}
