//! Parity with the reference tools on committed fixtures (scripts/make_contour_fixtures.py:
//! pycocotools, OpenCV, PIL).

use serde_json::Value;

use super::mask::Mask;
use super::sample::{self, Contour, Method};
use super::sequence::reconstruction_iou;
use super::trace::{self, Components};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/contour/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn size(v: &Value) -> (usize, usize) {
    (v[0].as_u64().unwrap() as usize, v[1].as_u64().unwrap() as usize)
}

fn points(v: &Value) -> Vec<(i32, i32)> {
    let flat: Vec<i32> = v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect();
    flat.chunks(2).map(|p| (p[0], p[1])).collect()
}

/// The fixture masks, decoded from pycocotools' compressed RLE.
pub(crate) fn fixture_masks() -> Vec<(String, String, Mask)> {
    fixture("masks.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let (h, w) = size(&m["size"]);
            let mask = Mask::from_rle_string(h, w, m["counts"].as_str().unwrap()).unwrap();
            (
                m["name"].as_str().unwrap().to_string(),
                m["category"].as_str().unwrap().to_string(),
                mask,
            )
        })
        .collect()
}

#[test]
fn rle_area_bbox_and_iou_match_pycocotools() {
    let all = fixture("masks.json");
    let masks = fixture_masks();
    for (i, (m, (name, _, mask))) in all.as_array().unwrap().iter().zip(&masks).enumerate() {
        assert_eq!(mask.rle_string(), m["counts"].as_str().unwrap(), "{name}: re-encoded RLE");
        assert_eq!(mask.area(), m["area"].as_u64().unwrap(), "{name}: area");
        let (x0, y0, x1, y1) = mask.bbox().unwrap();
        let bb: Vec<f64> =
            m["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(
            [x0 as f64, y0 as f64, (x1 - x0 + 1) as f64, (y1 - y0 + 1) as f64],
            bb[..],
            "{name}: bbox"
        );
        let next = &masks[(i + 1) % masks.len()].2;
        let iou = mask.iou(next).unwrap();
        assert!((iou - m["iou_next"].as_f64().unwrap()).abs() < 1e-12, "{name}: iou {iou}");
        if let Some(list) = m.get("counts_list") {
            let counts: Vec<u64> =
                list.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(mask.counts(), counts, "{name}: counts list");
            assert_eq!(&Mask::from_counts(mask.height, mask.width, &counts).unwrap(), mask);
        }
    }
}

#[test]
fn contours_match_opencv_find_contours() {
    let all = fixture("masks.json");
    for (m, (name, _, mask)) in all.as_array().unwrap().iter().zip(fixture_masks()) {
        let ours = trace::contours(&mask, Components::All, true);
        let outer: Vec<Vec<(i32, i32)>> =
            ours.iter().filter(|c| !c.hole).map(|c| c.points.clone()).collect();
        let want: Vec<Vec<(i32, i32)>> =
            m["contours"].as_array().unwrap().iter().map(points).collect();
        assert_eq!(outer.len(), want.len(), "{name}: number of outer contours");
        for (k, (a, b)) in outer.iter().zip(&want).enumerate() {
            assert_eq!(a, b, "{name}: outer contour {k}");
        }
        // Holes: the same closed walks as OpenCV's, compared from their top-left pixel.
        let from_top_left = |v: Vec<(i32, i32)>| {
            let r = (0..v.len()).min_by_key(|&i| (v[i].1, v[i].0)).unwrap_or(0);
            [&v[r..], &v[..r]].concat()
        };
        let mut holes: Vec<Vec<(i32, i32)>> =
            ours.iter().filter(|c| c.hole).map(|c| c.points.clone()).collect();
        let mut want_holes: Vec<Vec<(i32, i32)>> =
            m["holes"].as_array().unwrap().iter().map(points).map(from_top_left).collect();
        holes.sort();
        want_holes.sort();
        assert_eq!(holes, want_holes, "{name}: holes");
    }
}

#[test]
fn uniform_pipeline_and_authors_sampler_match_the_python_reference() {
    let all = fixture("masks.json");
    for (m, (name, _, mask)) in all.as_array().unwrap().iter().zip(fixture_masks()) {
        // The reference samples OpenCV's contour: the `centres` sequence.
        let iou = reconstruction_iou(&mask, Some(16), Method::Uniform, Contour::Centres);
        let want = m["uniform16_iou"].as_f64().unwrap();
        assert!((iou - want).abs() < 1e-12, "{name}: uniform-16 IoU {iou} vs pycocotools {want}");
        let c = &trace::contours(&mask, Components::Largest, false)[0];
        let ours: Vec<(i32, i32)> = sample::sample(&c.points, 16, Method::Vistallm)
            .into_iter()
            .map(|i| c.points[i])
            .collect();
        assert_eq!(ours, points(&m["vistallm16"]), "{name}: VistaLLM adaptive sampling");
    }
}

#[test]
fn polygons_rasterise_like_pycocotools() {
    for (i, case) in fixture("polygons.json").as_array().unwrap().iter().enumerate() {
        let (h, w) =
            (case["height"].as_u64().unwrap() as usize, case["width"].as_u64().unwrap() as usize);
        let polys: Vec<Vec<f64>> = case["polygons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
            .collect();
        let m = Mask::from_polygons(h, w, &polys);
        assert_eq!(m.rle_string(), case["counts"].as_str().unwrap(), "polygon case {i}");
        assert_eq!(m.area(), case["area"].as_u64().unwrap(), "polygon case {i}");
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let s: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (k, &c) in chunk.iter().enumerate() {
            acc |= (val(c) as u32) << (18 - 6 * k);
        }
        for k in 0..chunk.len().saturating_sub(1) {
            out.push((acc >> (16 - 8 * k)) as u8);
        }
    }
    out
}

#[test]
fn png_masks_of_every_mode_decode_to_the_same_rle() {
    for case in fixture("png.json").as_array().unwrap() {
        let mode = case["mode"].as_str().unwrap();
        let m = Mask::from_png(&base64(case["png_base64"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!((m.height, m.width), size(&case["size"]), "{mode}");
        assert_eq!(m.rle_string(), case["counts"].as_str().unwrap(), "PNG mode {mode}");
    }
}

#[test]
fn sequences_traced_on_the_crop_equal_those_of_the_whole_mask() {
    use super::mask::Rle;
    use super::sequence::{contour_points, mask_sequence, rle_sequence};
    use super::space::Space;
    for (name, _, mask) in fixture_masks() {
        let rle = Rle::from_mask(&mask);
        for contour in [Contour::Boundary, Contour::Centres] {
            // The reference traces the whole, uncropped mask.
            let full = contour_points(&mask, contour).unwrap();
            for method in [Method::Adaptive, Method::Uniform, Method::Vistallm, Method::Angle] {
                for space in [Space::Pixel, Space::Square] {
                    let (w, h) = (mask.width as f64, mask.height as f64);
                    let want: Vec<f64> = sample::sequence_points(
                        &full,
                        16,
                        method,
                        contour,
                        mask.width,
                        mask.height,
                    )
                    .into_iter()
                    .flat_map(|(x, y)| {
                        let (x, y) = space.from_pixel(x, y, w, h);
                        [x, y]
                    })
                    .collect();
                    let what = format!("{name}: {method:?} on {contour:?} in {space:?}");
                    let got = mask_sequence(&mask, 16, method, contour, space).unwrap();
                    assert_eq!(got, want, "{what}");
                    let got = rle_sequence(&rle, 16, method, contour, space).unwrap();
                    assert_eq!(got, want, "{what}");
                }
            }
        }
    }
}
