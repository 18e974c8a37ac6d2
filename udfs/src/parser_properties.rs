//! Property tests of the parsers that read untrusted text: COCO's compressed RLE counts, the
//! model's coordinate text (both styles) and polygon rasterising. Whatever the input, each
//! returns a value or an error: no panic, no unbounded work, and what it writes it reads back.

use proptest::prelude::*;

use crate::contour::mask::{decode_counts, encode_counts};
use crate::contour::rasterise::polygon_mask;
use crate::contour::space::Space;
use crate::text::coords::{format_objects, parse_objects, Parsed, Tag};
use crate::text::prompt::Style;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn counts_round_trip(counts in prop::collection::vec(0u64..1_000_000, 0..64)) {
        prop_assert_eq!(decode_counts(&encode_counts(&counts)).unwrap(), counts);
    }

    #[test]
    fn any_counts_text_decodes_or_fails(s in "[0-9A-Za-z\\[\\]\\\\^_`@:;<=>?!#-]{0,40}") {
        let _ = decode_counts(&s);
    }

    #[test]
    fn coordinate_text_round_trips(
        objects in prop::collection::vec(prop::collection::vec(0.0f64..1.0, 4), 1..4),
        bins in any::<bool>(),
    ) {
        let style = if bins { Style::Bins } else { Style::Decimal };
        let text = format_objects(&objects, style, Tag::Box).unwrap();
        match parse_objects(&text, &[Tag::Box]) {
            Parsed::Ok(back) => {
                prop_assert_eq!(back.len(), objects.len());
                // Bins are 1/1000 wide, decimals have three places.
                for (a, b) in back.iter().flatten().zip(objects.iter().flatten()) {
                    prop_assert!((a - b).abs() <= 0.0015, "{} vs {}", a, b);
                }
            }
            other => prop_assert!(false, "{:?} from {}", other, text),
        }
    }

    #[test]
    fn any_answer_text_parses_or_fails(
        s in "(<b_st>|<b_ed>|<b_sep>|<p_st>|<m_st>|<m_ed>|<bin_[0-9]{1,5}>|[0-9.,;\\[\\] -]|[a-z]){0,60}",
    ) {
        let _ = parse_objects(&s, &[Tag::Box, Tag::Point, Tag::Mask]);
    }

    #[test]
    fn any_polygon_rasterises_or_fails(
        points in prop::collection::vec(prop_oneof![
            -50.0f64..80.0,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(1e300),
            Just(-1e9),
        ], 0..16),
        w in 1usize..40,
        h in 1usize..40,
    ) {
        if let Ok(rle) = polygon_mask(&points, w, h, Space::Pixel) {
            prop_assert_eq!((rle.width, rle.height), (w, h));
            prop_assert!(rle.area() <= (w * h) as u64);
        }
    }
}
