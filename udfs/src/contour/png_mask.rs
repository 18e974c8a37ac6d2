//! PNG masks straight to a [`Mask`]: the `png` decoder with no transformations (no expansion
//! of low bit depths, palettes or 16-bit samples to RGBA), each pixel's foreground test made on
//! its raw samples, and one blocked transpose into the mask's column-major order.
//!
//! Foreground is what `Mask::from_png` documents: any colour channel non-zero, alpha and
//! transparency ignored, palette images read by the palette colour (an index past the palette
//! reads as black).

use std::io::Cursor;

use png::{BitDepth, ColorType, Transformations};

use super::mask::Mask;

/// Decodes PNG bytes into a mask; the error is one line naming what failed.
pub fn decode(bytes: &[u8]) -> Result<Mask, String> {
    let bad =
        |e: &dyn std::fmt::Display| format!("not a readable PNG mask ({} bytes): {e}", bytes.len());
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(Transformations::IDENTITY);
    decoder.set_ignore_text_chunk(true);
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let info = reader.info();
    let (w, h) = (info.width as usize, info.height as usize);
    let (color, depth) = (info.color_type, info.bit_depth);
    // Palette entries whose colour is not black.
    let palette: Option<[u8; 256]> = info.palette.as_ref().map(|p| {
        let mut lut = [0u8; 256];
        for (i, rgb) in p.chunks_exact(3).take(256).enumerate() {
            lut[i] = (rgb[0] | rgb[1] | rgb[2] != 0) as u8;
        }
        lut
    });
    let size = reader.output_buffer_size().ok_or_else(|| bad(&"image too large"))?;
    with_raw_buffer(size, |buf| {
        let frame = reader.next_frame(buf).map_err(|e| bad(&e))?;
        let line = frame.line_size;
        // A band of rows as foreground bytes (0 or 1), small enough to stay in cache, then
        // transposed into the mask's columns.
        let mut m = Mask::empty(w, h);
        let mut band = vec![0u8; BAND * w];
        for y0 in (0..h).step_by(BAND) {
            let n = (h - y0).min(BAND);
            for k in 0..n {
                let src = &buf[(y0 + k) * line..(y0 + k + 1) * line];
                let out = &mut band[k * w..(k + 1) * w];
                foreground_row(src, out, color, depth, palette.as_ref()).map_err(|e| bad(&e))?;
            }
            transpose_band(&band[..n * w], &mut m.bits, w, h, y0);
        }
        Ok(m)
    })
}

/// Rows per band of `decode`.
const BAND: usize = 32;

/// Runs `f` on a buffer of `size` bytes for the decoded image. Buffers up to 16 MiB are kept per
/// thread and reused: a fresh one per mask costs more in page faults than its decode.
fn with_raw_buffer<T>(size: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    const KEEP: usize = 16 << 20;
    thread_local! {
        static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if size > KEEP {
        return f(&mut vec![0u8; size]);
    }
    RAW.with(|raw| {
        let mut buf = raw.borrow_mut();
        if buf.len() < size {
            buf.resize(size, 0);
        }
        f(&mut buf[..size])
    })
}

/// One raw PNG row to foreground bytes.
fn foreground_row(
    src: &[u8],
    out: &mut [u8],
    color: ColorType,
    depth: BitDepth,
    palette: Option<&[u8; 256]>,
) -> Result<(), String> {
    let bits = depth as usize;
    let channels = match color {
        ColorType::Grayscale | ColorType::Indexed => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
    };
    // Colour channels tested (alpha is the last channel of GrayscaleAlpha and Rgba).
    let colours = if matches!(color, ColorType::GrayscaleAlpha | ColorType::Rgba) {
        channels - 1
    } else {
        channels
    };
    if color == ColorType::Indexed {
        let lut = palette.ok_or("an indexed PNG without a palette")?;
        return {
            samples(src, out, bits, |v| lut[v as usize]);
            Ok(())
        };
    }
    if bits < 8 {
        // Only greyscale has bit depths below 8.
        samples(src, out, bits, |v| (v != 0) as u8);
        return Ok(());
    }
    let bytes = channels * bits / 8;
    let colour_bytes = colours * bits / 8;
    if bytes == 1 {
        for (o, &v) in out.iter_mut().zip(src) {
            *o = (v != 0) as u8;
        }
    } else {
        for (o, px) in out.iter_mut().zip(src.chunks_exact(bytes)) {
            *o = px[..colour_bytes].iter().any(|&b| b != 0) as u8;
        }
    }
    Ok(())
}

/// Unpacks `bits`-wide samples (1, 2, 4 or 8; most significant first) through `f`.
fn samples(src: &[u8], out: &mut [u8], bits: usize, f: impl Fn(u8) -> u8) {
    if bits == 8 {
        for (o, &v) in out.iter_mut().zip(src) {
            *o = f(v);
        }
        return;
    }
    let per_byte = 8 / bits;
    let mask = (1u8 << bits) - 1;
    for (x, o) in out.iter_mut().enumerate() {
        let byte = src[x / per_byte];
        let shift = 8 - bits * (x % per_byte + 1);
        *o = f((byte >> shift) & mask);
    }
}

/// Writes a band of rows `y0..y0 + n` (row-major, `w` wide) into the column-major `dst` (`h`
/// tall): `dst[x * h + y0 + k] = band[k * w + x]`. Each column's part is one contiguous write
/// and the band stays in cache while it is read across.
fn transpose_band(band: &[u8], dst: &mut [u8], w: usize, h: usize, y0: usize) {
    let n = band.len() / w.max(1);
    for x in 0..w {
        let col = &mut dst[x * h + y0..x * h + y0 + n];
        for (k, d) in col.iter_mut().enumerate() {
            *d = band[k * w + x];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `m` as a PNG of the given colour type and depth with the `png` crate.
    fn encode(m: &Mask, color: ColorType, depth: BitDepth) -> Vec<u8> {
        let (w, h) = (m.width, m.height);
        let bits = depth as usize;
        let channels = match color {
            ColorType::Grayscale | ColorType::Indexed => 1,
            ColorType::GrayscaleAlpha => 2,
            ColorType::Rgb => 3,
            ColorType::Rgba => 4,
        };
        let line = (w * channels * bits).div_ceil(8);
        let mut data = vec![0u8; line * h];
        for y in 0..h {
            for x in 0..w {
                let on = m.get(x, y);
                if bits < 8 {
                    // Greyscale or palette: foreground is the largest sample (palette entry 1).
                    let v: u8 = if !on {
                        0
                    } else if color == ColorType::Indexed {
                        1
                    } else {
                        (1u8 << bits) - 1
                    };
                    let per = 8 / bits;
                    data[y * line + x / per] |= v << (8 - bits * (x % per + 1));
                } else {
                    let px = &mut data[y * line + x * channels * bits / 8..][..channels * bits / 8];
                    for (c, b) in px.iter_mut().enumerate() {
                        // Background pixels get a non-zero alpha (ignored); foreground lights
                        // only the first colour byte, or the index of the white entry.
                        let alpha = matches!(color, ColorType::GrayscaleAlpha | ColorType::Rgba)
                            && c >= (channels - 1) * bits / 8;
                        *b = if alpha {
                            200
                        } else if on && c == 0 {
                            1
                        } else {
                            0
                        };
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w as u32, h as u32);
        e.set_color(color);
        e.set_depth(depth);
        if color == ColorType::Indexed {
            e.set_palette(vec![0, 0, 0, 255, 255, 255, 0, 0, 0]);
        }
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(&data).unwrap();
        wr.finish().unwrap();
        out
    }

    #[test]
    fn every_colour_type_and_depth_decodes_like_the_image_crate() {
        let mut next = crate::test_util::xorshift(0x7a9_5e11);
        let cases = [
            (ColorType::Grayscale, BitDepth::One),
            (ColorType::Grayscale, BitDepth::Two),
            (ColorType::Grayscale, BitDepth::Four),
            (ColorType::Grayscale, BitDepth::Eight),
            (ColorType::Grayscale, BitDepth::Sixteen),
            (ColorType::GrayscaleAlpha, BitDepth::Eight),
            (ColorType::GrayscaleAlpha, BitDepth::Sixteen),
            (ColorType::Rgb, BitDepth::Eight),
            (ColorType::Rgb, BitDepth::Sixteen),
            (ColorType::Rgba, BitDepth::Eight),
            (ColorType::Rgba, BitDepth::Sixteen),
            (ColorType::Indexed, BitDepth::One),
            (ColorType::Indexed, BitDepth::Two),
            (ColorType::Indexed, BitDepth::Four),
            (ColorType::Indexed, BitDepth::Eight),
        ];
        for case in 0..60 {
            let (w, h) = (1 + (next() % 70) as usize, 1 + (next() % 70) as usize);
            let mut m = Mask::empty(w, h);
            for b in m.bits.iter_mut() {
                *b = next().is_multiple_of(3) as u8;
            }
            for &(color, depth) in &cases {
                let bytes = encode(&m, color, depth);
                let what = format!("case {case}: {w}x{h} {color:?} {depth:?}");
                assert_eq!(decode(&bytes).unwrap(), m, "{what}");
                assert_eq!(Mask::from_png_by_image(&bytes).unwrap(), m, "{what}: image crate");
            }
        }
    }

    #[test]
    fn a_broken_png_is_a_one_line_error() {
        let e = decode(b"\x89PNG\r\n\x1a\nnot really").unwrap_err();
        assert!(e.starts_with("not a readable PNG mask (18 bytes)") && !e.contains('\n'), "{e}");
        let mut good = encode(&Mask::empty(4, 4), ColorType::Grayscale, BitDepth::Eight);
        good.truncate(good.len() - 20);
        assert!(decode(&good).is_err());
    }
}
