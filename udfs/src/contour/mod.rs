//! Masks as point sequences: mask formats (PNG, COCO RLE, polygons), outer contours
//! (Suzuki-Abe border following), adaptive and uniform contour sampling, and rasterising
//! polygons back into masks.
//!
//! Library API for other modules (metrics, synthetic data): [`Mask`] (decode PNG / RLE /
//! polygons, encode RLE, area, bbox, iou), [`mask::read_masks`] / [`mask::read_mask_lists`]
//! (Arrow mask columns to per-row masks), [`mask::rle_array`] / [`mask::rle_list_array`]
//! (masks to an Arrow RLE column), [`sequence::mask_sequence`] and [`rasterise::polygon_mask`].

pub mod boundary;
#[cfg(test)]
mod fixture_tests;
pub mod mask;
mod mask_contour;
mod mask_stats;
pub(crate) mod options;
mod png_mask;
pub mod rasterise;
#[cfg(test)]
mod reconstruction_tests;
mod refine;
mod rle_encode_decode;
pub mod sample;
pub mod sequence;
pub mod space;
#[cfg(test)]
mod test_masks;
pub mod trace;

use datafusion::logical_expr::{AggregateUDF, DocSection, ScalarUDF};

pub use mask::Mask;
pub use sample::Method;
pub use space::Space;

pub(crate) const SECTION: DocSection = DocSection {
    include: true,
    label: "Vista mask and contour functions",
    description: Some(
        "Masks (PNG, COCO RLE, polygons), contours, point sequences and rasterising.",
    ),
};

pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(rle_encode_decode::RleEncodeFunc::new()),
        ScalarUDF::new_from_impl(rle_encode_decode::RleDecodeFunc::new()),
        ScalarUDF::new_from_impl(mask_stats::MaskStatFunc::new(mask_stats::Stat::Area)),
        ScalarUDF::new_from_impl(mask_stats::MaskStatFunc::new(mask_stats::Stat::Bbox)),
        ScalarUDF::new_from_impl(mask_stats::MaskIouFunc::new()),
        ScalarUDF::new_from_impl(mask_contour::MaskContourFunc::new()),
        ScalarUDF::new_from_impl(sequence::MaskToSequenceFunc::new()),
        ScalarUDF::new_from_impl(rasterise::PolygonToMaskFunc::new()),
    ]
}

pub fn aggregate_functions() -> Vec<AggregateUDF> {
    Vec::new()
}

#[cfg(test)]
mod doc_examples {
    use crate::test_util;

    /// The documented examples of the contour and coordinate-text functions run and print
    /// exactly what their documentation shows (the crate-wide test stops at the first failure
    /// of any family; this one pins ours).
    #[test]
    fn contour_and_coords_examples_print_what_they_show() {
        let ctx = test_util::ctx();
        let mut fs = super::scalar_functions();
        fs.extend(crate::text::coords::scalar_functions());
        let mut failures = Vec::new();
        for f in fs {
            let doc =
                f.documentation().unwrap_or_else(|| panic!("{} has no documentation", f.name()));
            let example =
                doc.sql_example.clone().unwrap_or_else(|| panic!("{} has no example", f.name()));
            let (query, expected) = test_util::parse_example(&example).unwrap();
            assert!(query.contains(f.name()), "{}: example does not call it", f.name());
            match test_util::run(&ctx, &query) {
                Ok(got) if got.trim_end() == expected => {}
                Ok(got) => {
                    failures.push(format!("{}: example prints\n{got}\nnot\n{expected}", f.name()))
                }
                Err(e) => failures.push(format!("{}: {e}", f.name())),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
