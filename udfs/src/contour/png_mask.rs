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
    // Palette indices and greyscale below 8 bits go through a table; the rest sample by sample.
    let unpack = match (depth as usize, color, &palette) {
        (bits, ColorType::Indexed, Some(lut)) => Some(Unpack::new(bits, |v| lut[v as usize])),
        (_, ColorType::Indexed, None) => return Err(bad(&"an indexed PNG without a palette")),
        (bits, _, _) if bits < 8 => Some(Unpack::new(bits, |v| (v != 0) as u8)),
        _ => None,
    };
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
                match &unpack {
                    Some(u) => u.row(src, out),
                    None => foreground_row(src, out, color, depth),
                }
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

/// Rows of 1-, 2-, 4- or 8-bit samples (greyscale or palette indices) to foreground bytes, a
/// whole byte at a time: each byte value's `8 / bits` foreground bytes are worked out once per
/// image.
struct Unpack {
    per_byte: usize,
    table: Box<[[u8; 8]; 256]>,
}

impl Unpack {
    /// `fg` maps a sample to its foreground byte (0 or 1).
    fn new(bits: usize, fg: impl Fn(u8) -> u8) -> Unpack {
        let per_byte = 8 / bits;
        let mask = ((1u16 << bits) - 1) as u8;
        let mut table = Box::new([[0u8; 8]; 256]);
        for (byte, out) in table.iter_mut().enumerate() {
            for (i, o) in out.iter_mut().take(per_byte).enumerate() {
                *o = fg((byte as u8 >> (8 - bits * (i + 1))) & mask);
            }
        }
        Unpack { per_byte, table }
    }

    fn row(&self, src: &[u8], out: &mut [u8]) {
        // One output per byte (8-bit indices) and eight (1-bit masks) are the common layouts:
        // fixed-size copies the compiler turns into single loads and stores.
        match self.per_byte {
            1 => {
                for (o, &byte) in out.iter_mut().zip(src) {
                    *o = self.table[byte as usize][0];
                }
            }
            8 => {
                let full = out.len() / 8;
                let mut whole = out.chunks_exact_mut(8);
                for (chunk, &byte) in (&mut whole).zip(src) {
                    chunk.copy_from_slice(&self.table[byte as usize]);
                }
                let rest = whole.into_remainder();
                if let Some(&byte) = src.get(full).filter(|_| !rest.is_empty()) {
                    rest.copy_from_slice(&self.table[byte as usize][..rest.len()]);
                }
            }
            n => {
                for (chunk, &byte) in out.chunks_mut(n).zip(src) {
                    chunk.copy_from_slice(&self.table[byte as usize][..chunk.len()]);
                }
            }
        }
    }
}

/// One raw PNG row of 8- or 16-bit greyscale or colour samples to foreground bytes: a pixel is
/// foreground when any colour channel is non-zero (alpha is ignored).
fn foreground_row(src: &[u8], out: &mut [u8], color: ColorType, depth: BitDepth) {
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
}

/// Writes a band of rows `y0..y0 + n` (row-major, `w` wide) into the column-major `dst` (`h`
/// tall): `dst[x * h + y0 + k] = band[k * w + x]`. Blocks of 8 x 8 bytes are transposed in
/// registers (one load per row, one store per column); the edges a block does not cover go byte
/// by byte.
fn transpose_band(band: &[u8], dst: &mut [u8], w: usize, h: usize, y0: usize) {
    let n = band.len() / w.max(1);
    let (w8, n8) = (w / 8 * 8, n / 8 * 8);
    for k0 in (0..n8).step_by(8) {
        for x0 in (0..w8).step_by(8) {
            let rows: [u64; 8] = std::array::from_fn(|i| {
                let at = (k0 + i) * w + x0;
                u64::from_le_bytes(band[at..at + 8].try_into().expect("eight bytes"))
            });
            for (j, col) in transpose8(rows).into_iter().enumerate() {
                let at = (x0 + j) * h + y0 + k0;
                dst[at..at + 8].copy_from_slice(&col.to_le_bytes());
            }
        }
    }
    // The columns right of the last whole block, then the rows below it.
    let edge = |dst: &mut [u8], xs: std::ops::Range<usize>, ks: std::ops::Range<usize>| {
        for x in xs {
            for k in ks.clone() {
                dst[x * h + y0 + k] = band[k * w + x];
            }
        }
    };
    edge(dst, w8..w, 0..n);
    edge(dst, 0..w8, n8..n);
}

/// An 8 x 8 byte matrix, row `i` in `rows[i]` (byte `j` = column `j`), transposed: byte `i` of
/// the result's `j`th word is byte `j` of `rows[i]`. Three rounds of swapping 4-, 2- and 1-byte
/// sub-blocks across the diagonal, with masks and shifts.
fn transpose8(r: [u64; 8]) -> [u64; 8] {
    let mut r = r;
    // Swap the off-diagonal 4x4 blocks, then 2x2 blocks within them, then single bytes.
    for (step, mask) in
        [(4usize, 0x0000_0000_FFFF_FFFFu64), (2, 0x0000_FFFF_0000_FFFF), (1, 0x00FF_00FF_00FF_00FF)]
    {
        let shift = 8 * step as u32;
        for i in 0..8 {
            if i & step == 0 {
                let (a, b) = (r[i], r[i + step]);
                r[i] = (a & mask) | ((b & mask) << shift);
                r[i + step] = ((a >> shift) & mask) | (b & !mask);
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eight_by_eight_block_transposes() {
        let rows: [u64; 8] = std::array::from_fn(|i| {
            u64::from_le_bytes(std::array::from_fn(|j| (16 * i + j) as u8))
        });
        let cols = transpose8(rows);
        for (j, col) in cols.iter().enumerate() {
            let want: [u8; 8] = std::array::from_fn(|i| (16 * i + j) as u8);
            assert_eq!(col.to_le_bytes(), want, "column {j}");
        }
    }

    #[test]
    fn bands_of_any_shape_transpose() {
        for (w, n, h) in [(1, 1, 1), (8, 8, 8), (17, 9, 20), (64, 32, 40), (5, 13, 13), (9, 8, 16)]
        {
            let band: Vec<u8> = (0..w * n).map(|v| (v * 7 % 251) as u8).collect();
            let y0 = h - n;
            let mut dst = vec![0u8; w * h];
            transpose_band(&band, &mut dst, w, h, y0);
            for x in 0..w {
                for k in 0..n {
                    assert_eq!(dst[x * h + y0 + k], band[k * w + x], "{w}x{n}: ({x}, {k})");
                }
            }
        }
    }

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
