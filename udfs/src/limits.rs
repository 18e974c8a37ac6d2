//! Named limits on what one row may make vista allocate or read. Inputs come from files vista
//! did not make: a 370-byte PNG can declare a 100,000-pixel side, a polygon can carry a
//! coordinate of 1e300, a path can name `/dev/zero`. Every such row is refused with a one-line
//! reason before the allocation, as a row error, so `on_error` applies to it like to any other
//! bad row. Image and file limits are settings (`SET vista.max_image_pixels = ...`); the mask
//! and coordinate limits are fixed. All are recorded in the metadata of every file a query
//! writes (`vista.limit.*`).

use crate::config::VistaConfig;

/// Decoded pixels per image, and per buffer derived from it (the square padding before the
/// model's resize): PIL's decompression-bomb error threshold, `2 * Image.MAX_IMAGE_PIXELS`.
/// At 3 bytes per pixel that is 537 MB for the largest buffer one image may need.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 178_956_970;

/// Pixels per mask (height x width): RLE sizes, `polygon_to_mask` sizes, decoded masks. 16384 x
/// 16384, one byte each while a mask is a bitmap; larger than any mask of the datasets vista
/// reads (SA-1B's largest images are 1500 x 2250).
pub const MAX_MASK_PIXELS: u64 = 1 << 28;

/// Bytes `read_bytes` reads from one file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 512 << 20;

/// Bytes in one Arrow `Binary` column of one batch: its offsets are 32-bit.
pub const MAX_BINARY_BATCH_BYTES: u64 = i32::MAX as u64;

/// How far outside the image a coordinate may lie, in image sides. Models and annotation tools
/// produce points slightly outside the frame; a value many sides away is a unit or parsing error,
/// and rasterising it would walk every scanline between it and the image.
pub const COORDINATE_MARGIN_SIDES: f64 = 1.0;

/// The limits in force for a function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_image_pixels: u64,
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

impl Limits {
    pub fn from_config(c: &VistaConfig) -> Limits {
        Limits { max_image_pixels: c.max_image_pixels, max_file_bytes: c.max_file_bytes }
    }

    /// `(key, value)` pairs for output metadata.
    pub fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("vista.limit.max_image_pixels".into(), self.max_image_pixels.to_string()),
            ("vista.limit.max_mask_pixels".into(), MAX_MASK_PIXELS.to_string()),
            ("vista.limit.coordinate_margin_sides".into(), COORDINATE_MARGIN_SIDES.to_string()),
            ("vista.limit.max_file_bytes".into(), self.max_file_bytes.to_string()),
        ]
    }

    /// An image (or a buffer derived from one) of `width` x `height` pixels.
    pub fn check_image(&self, what: &str, width: u64, height: u64) -> Result<(), String> {
        check_area(what, width, height, self.max_image_pixels, "vista.max_image_pixels")
    }
}

/// A mask of `width` x `height` pixels.
pub fn check_mask(what: &str, width: u64, height: u64) -> Result<(), String> {
    let pixels = width.saturating_mul(height);
    if pixels > MAX_MASK_PIXELS {
        return Err(format!(
            "{what} of {width}x{height} ({pixels} pixels) exceeds the mask limit of \
             {MAX_MASK_PIXELS} pixels"
        ));
    }
    Ok(())
}

fn check_area(what: &str, width: u64, height: u64, max: u64, setting: &str) -> Result<(), String> {
    let pixels = width.saturating_mul(height);
    if pixels > max {
        return Err(format!(
            "{what} of {width}x{height} ({pixels} pixels) exceeds {setting} = {max}"
        ));
    }
    Ok(())
}

/// Checks that every coordinate of `values` (interleaved x, y) is finite and within
/// [`COORDINATE_MARGIN_SIDES`] image sides of a `width` x `height` frame.
pub fn check_coordinates(values: &[f64], width: f64, height: f64) -> Result<(), String> {
    let side = width.max(height).max(1.0);
    let margin = COORDINATE_MARGIN_SIDES * side;
    for (i, v) in values.iter().enumerate() {
        let extent = if i % 2 == 0 { width } else { height };
        if !v.is_finite() || *v < -margin || *v > extent + margin {
            return Err(format!(
                "coordinate {} ({v}) lies outside the {width}x{height} image by more than one image side",
                i + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_over_the_limit_name_the_setting() {
        let l = Limits { max_image_pixels: 100, ..Limits::default() };
        assert!(l.check_image("image", 10, 10).is_ok());
        assert_eq!(
            l.check_image("image", 1, 101).unwrap_err(),
            "image of 1x101 (101 pixels) exceeds vista.max_image_pixels = 100"
        );
        // Sides whose product overflows u64 are refused, not wrapped.
        assert!(check_mask("mask", u64::MAX, 3).is_err());
        assert!(check_mask("mask", 16384, 16384).is_ok());
        assert!(check_mask("mask", 16384, 16385).is_err());
    }

    #[test]
    fn coordinates_may_leave_the_frame_by_one_side() {
        assert!(check_coordinates(&[-10.0, 0.0, 20.0, 20.0], 10.0, 10.0).is_ok());
        assert!(check_coordinates(&[0.0, 0.0, 20.1, 0.0], 10.0, 10.0).is_err());
        assert!(check_coordinates(&[0.0, 1e300], 10.0, 10.0).is_err());
        assert!(check_coordinates(&[f64::NAN, 0.0], 10.0, 10.0).is_err());
        assert_eq!(
            check_coordinates(&[0.0, 0.0, 5.0, -1e9], 10.0, 10.0).unwrap_err(),
            "coordinate 4 (-1000000000) lies outside the 10x10 image by more than one image side"
        );
    }
}
