//! What the PNG charts (training loss, curation IoU histogram) share: a 3x5 pixel font drawn at
//! 2x for tick values, axis titles and legends, and a filled rectangle. A dependency-free font
//! keeps the charts identical on every machine.

use image::{Rgb, RgbImage};

/// Width of one drawn character, spacing included.
pub const CHAR_W: u32 = 8;

/// Rows of a glyph, 3 bits each (high bit left); letters are drawn upper case.
fn glyph(ch: char) -> Option<[u8; 5]> {
    Some(match ch.to_ascii_uppercase() {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        'A' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'B' => [0b110, 0b101, 0b110, 0b101, 0b110],
        'C' => [0b011, 0b100, 0b100, 0b100, 0b011],
        'D' => [0b110, 0b101, 0b101, 0b101, 0b110],
        'E' => [0b111, 0b100, 0b110, 0b100, 0b111],
        'F' => [0b111, 0b100, 0b110, 0b100, 0b100],
        'G' => [0b011, 0b100, 0b101, 0b101, 0b011],
        'H' => [0b101, 0b101, 0b111, 0b101, 0b101],
        'I' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'J' => [0b001, 0b001, 0b001, 0b101, 0b010],
        'K' => [0b101, 0b101, 0b110, 0b101, 0b101],
        'L' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'M' => [0b101, 0b111, 0b111, 0b101, 0b101],
        'N' => [0b110, 0b101, 0b101, 0b101, 0b101],
        'O' => [0b010, 0b101, 0b101, 0b101, 0b010],
        'P' => [0b110, 0b101, 0b110, 0b100, 0b100],
        'Q' => [0b010, 0b101, 0b101, 0b110, 0b011],
        'R' => [0b110, 0b101, 0b110, 0b101, 0b101],
        'S' => [0b011, 0b100, 0b010, 0b001, 0b110],
        'T' => [0b111, 0b010, 0b010, 0b010, 0b010],
        'U' => [0b101, 0b101, 0b101, 0b101, 0b111],
        'V' => [0b101, 0b101, 0b101, 0b101, 0b010],
        'W' => [0b101, 0b101, 0b111, 0b111, 0b101],
        'X' => [0b101, 0b101, 0b010, 0b101, 0b101],
        'Y' => [0b101, 0b101, 0b010, 0b010, 0b010],
        'Z' => [0b111, 0b001, 0b010, 0b100, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        ',' => [0b000, 0b000, 0b000, 0b010, 0b100],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '=' => [0b000, 0b111, 0b000, 0b111, 0b000],
        '/' => [0b001, 0b001, 0b010, 0b100, 0b100],
        '(' => [0b010, 0b100, 0b100, 0b100, 0b010],
        ')' => [0b010, 0b001, 0b001, 0b001, 0b010],
        ' ' => [0; 5],
        _ => return None,
    })
}

/// Draws `text` in black with its top-left corner at (`x`, `y`), clipped to the image.
/// Characters without a glyph are drawn as blanks (the charts only write what the font has,
/// which a test checks).
pub fn draw_text(img: &mut RgbImage, text: &str, x: u32, y: u32) {
    draw_text_in(img, text, x, y, [0, 0, 0]);
}

/// [`draw_text`] in colour `c` (legends).
pub fn draw_text_in(img: &mut RgbImage, text: &str, x: u32, y: u32, c: [u8; 3]) {
    for (n, ch) in text.chars().enumerate() {
        let Some(rows) = glyph(ch) else { continue };
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..3u32 {
                if bits >> (2 - rx) & 1 == 1 {
                    let (px, py) = (x + n as u32 * CHAR_W + rx * 2, y + ry as u32 * 2);
                    fill(img, px, py, px + 2, py + 2, c);
                }
            }
        }
    }
}

/// Fills `[x0, x1) x [y0, y1)` with `c`, clipped to the image.
pub fn fill(img: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32, c: [u8; 3]) {
    for y in y0..y1.min(img.height()) {
        for x in x0..x1.min(img.width()) {
            img.put_pixel(x, y, Rgb(c));
        }
    }
}

/// The width `text` takes when drawn.
pub fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * CHAR_W
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_drawn_at_twice_their_size() {
        let mut img = RgbImage::from_pixel(20, 12, Rgb([255, 255, 255]));
        draw_text(&mut img, "T1", 0, 0);
        let row = |y: u32| -> String {
            (0..16).map(|x| if img.get_pixel(x, y).0[0] == 0 { '#' } else { '.' }).collect()
        };
        // T: 111 / 010 ...; 1: 010 / 110 ...; each bit 2x2, glyphs 8 pixels apart.
        assert_eq!(row(0), "######....##....");
        assert_eq!(row(1), "######....##....");
        assert_eq!(row(2), "..##....####....");
        assert_eq!(row(9), "..##....######..");
    }

    #[test]
    fn every_chart_label_has_glyphs() {
        for label in crate::train::curve::LABELS.into_iter().chain(crate::curate::report::LABELS) {
            for ch in label.chars() {
                assert!(glyph(ch).is_some(), "no glyph for {ch:?} in {label:?}");
            }
        }
    }
}
