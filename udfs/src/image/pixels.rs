//! Decoding encoded images to pixels, and PIL's greyscale conversion.

use image::{DynamicImage, GrayImage};

/// Decodes encoded image bytes (any format the crate reads, guessed from the magic number).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| format!("not a readable image ({} bytes): {e}", bytes.len()))
}

/// 8-bit greyscale as PIL's `convert("L")`: ITU-R 601-2 luma `L = R*299/1000 + G*587/1000 +
/// B*114/1000`, in PIL's fixed-point form (rounded). Alpha is ignored; 8-bit greyscale images
/// are taken as they are, other depths are first scaled to 8 bits.
pub fn luma_pil(img: &DynamicImage) -> GrayImage {
    if let DynamicImage::ImageLuma8(g) = img {
        return g.clone();
    }
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let raw = rgb.pixels().map(|p| luma(p.0[0], p.0[1], p.0[2])).collect();
    GrayImage::from_raw(w, h, raw).expect("one byte per pixel")
}

/// PIL's `L24`: `(R*19595 + G*38470 + B*7471 + 0x8000) >> 16` (the 601-2 weights in 16.16).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_pil_on_primaries_and_greys() {
        // PIL: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)).
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(255, 255, 255), 255);
        for v in 0..=255u8 {
            assert_eq!(luma(v, v, v), v);
        }
    }

    #[test]
    fn undecodable_bytes_name_their_length() {
        let e = decode(b"not an image").unwrap_err();
        assert!(e.contains("12 bytes") || e.contains("format"), "{e}");
    }
}
