//! Decoding encoded images to pixels, and PIL's greyscale conversion.

use image::{DynamicImage, GrayImage};

use crate::limits::Limits;

/// Decodes encoded image bytes (any format the crate reads, guessed from the magic number). The
/// header's size is checked against `max_pixels` before any pixel is decoded, and a JPEG whose
/// data ends before its end-of-image marker is refused (the decoder would fill the missing part
/// with grey and report success).
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, String> {
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())
    };
    let unreadable =
        |e: image::ImageError| format!("not a readable image ({} bytes): {e}", bytes.len());
    let (w, h) = reader()?.into_dimensions().map_err(unreadable)?;
    Limits { max_image_pixels: max_pixels, ..Limits::default() }.check_image(
        "image",
        w.into(),
        h.into(),
    )?;
    let reader = reader()?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(format!("truncated JPEG ({} bytes): no end-of-image marker", bytes.len()));
    }
    reader.decode().map_err(unreadable)
}

/// Whether a JPEG's entropy-coded data is followed by an end-of-image marker (FF D9). Searching
/// after the first start-of-scan (FF DA) skips thumbnails in the EXIF segment, which carry their
/// own marker; inside scan data an FF byte is always followed by 00 or a restart marker, so any
/// FF D9 there is the real end.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
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
        let e = decode(b"not an image", u64::MAX).unwrap_err();
        assert!(e.contains("12 bytes") || e.contains("format"), "{e}");
    }

    #[test]
    fn images_over_the_pixel_limit_are_refused_from_the_header() {
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(image::GrayImage::new(3, 40))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(decode(&png, 120).is_ok());
        assert_eq!(
            decode(&png, 119).unwrap_err(),
            "image of 3x40 (120 pixels) exceeds vista.max_image_pixels = 119"
        );
    }

    #[test]
    fn a_truncated_jpeg_is_an_error() {
        let img =
            image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 0]));
        let mut jpg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        assert!(decode(&jpg, u64::MAX).is_ok());
        let cut = &jpg[..jpg.len() - 40];
        assert_eq!(
            decode(cut, u64::MAX).unwrap_err(),
            format!("truncated JPEG ({} bytes): no end-of-image marker", cut.len())
        );
    }
}
