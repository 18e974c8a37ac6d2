//! LLaVA-NeXT's any-resolution images, as `LlavaNextImageProcessor` and
//! `LlavaNextModel.pack_image_features` lay them out: the image resized into the best of the
//! checkpoint's tile grids (`image_grid_pinpoints`), padded with black and cut into tiles; the
//! vision tower sees the whole image squeezed to one tile first, then each tile. The image's
//! tokens are the whole image's patch features, then the tiles' features as one feature map
//! with the padding rows or columns cut away and `image_newline` after each of its rows.

use candle_core::{Result, Tensor};
use image::RgbImage;

use crate::model::preprocess::{resize_bicubic, Preprocess};

/// The tiling of one checkpoint: its resolutions (height, width), the tile side in pixels (the
/// vision tower's input) and in patches.
#[derive(Debug, Clone, PartialEq)]
pub struct AnyRes {
    pub pinpoints: Vec<[usize; 2]>,
    pub tile: usize,
    pub side: usize,
}

/// The rows and columns of an image's tile feature map that show the image (the rest shows the
/// padding around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub top: usize,
    pub rows: usize,
    pub left: usize,
    pub cols: usize,
}

/// Python's `int(round(x, 7))` for the non-negative sizes below: rounding first keeps a
/// product such as 11 * (15 / 11) = 14.999999999999998 from truncating to 14.
fn round7_trunc(x: f64) -> usize {
    ((x * 1e7).round() / 1e7) as usize
}

impl AnyRes {
    /// The resolution (height, width) that keeps most of an image of `h` x `w` pixels when
    /// scaled to fit, the least wasted area breaking ties, the first in the list after that
    /// (`select_best_resolution`).
    pub fn best_resolution(&self, h: usize, w: usize) -> (usize, usize) {
        let mut best = (self.pinpoints[0][0], self.pinpoints[0][1]);
        let (mut most, mut least_waste) = (0usize, usize::MAX);
        for &[ph, pw] in &self.pinpoints {
            let scale = (pw as f64 / w as f64).min(ph as f64 / h as f64);
            let (sw, sh) = ((w as f64 * scale) as usize, (h as f64 * scale) as usize);
            let effective = (sw * sh).min(w * h);
            let waste = ph * pw - effective;
            if effective > most || (effective == most && waste < least_waste) {
                (most, least_waste, best) = (effective, waste, (ph, pw));
            }
        }
        best
    }

    /// Tiles of an image of `h` x `w` pixels: (rows, columns).
    pub fn grid(&self, h: usize, w: usize) -> (usize, usize) {
        let (bh, bw) = self.best_resolution(h, w);
        (bh / self.tile, bw / self.tile)
    }

    /// The part of the tiles' feature map (`side` features per tile side) that shows an image of
    /// `h` x `w` pixels: the map less the padding's share on both sides of one axis
    /// (`unpad_image`).
    pub fn window(&self, h: usize, w: usize) -> Window {
        let (rows, cols) = self.grid(h, w);
        let (fh, fw) = (rows * self.side, cols * self.side);
        let mut win = Window { top: 0, rows: fh, left: 0, cols: fw };
        if w as f64 / h as f64 > fw as f64 / fh as f64 {
            let shown = round7_trunc(h as f64 * (fw as f64 / w as f64));
            let pad = (fh - shown.min(fh)) / 2;
            (win.top, win.rows) = (pad, fh - 2 * pad);
        } else {
            let shown = round7_trunc(w as f64 * (fh as f64 / h as f64));
            let pad = (fw - shown.min(fw)) / 2;
            (win.left, win.cols) = (pad, fw - 2 * pad);
        }
        win
    }

    /// Image tokens of an image of `h` x `w` pixels: the whole image's patches, then the window
    /// of the tiles' map with one newline per row.
    pub fn tokens(&self, h: usize, w: usize) -> usize {
        let win = self.window(h, w);
        self.side * self.side + win.rows * (win.cols + 1)
    }

    /// The normalised tiles [3 * tile * tile each] of an image: the whole image resized to one
    /// tile, then the grid's tiles row by row. The image is resized (PIL's bicubic) to fit the
    /// best resolution with its aspect kept, each side rounded up, and centred on black.
    pub fn tiles(&self, pre: &Preprocess, img: &RgbImage) -> Vec<Vec<f32>> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (bh, bw) = self.best_resolution(h, w);
        let (scale_w, scale_h) = (bw as f64 / w as f64, bh as f64 / h as f64);
        let (nw, nh) = if scale_w < scale_h {
            (bw, ((h as f64 * scale_w).ceil() as usize).min(bh))
        } else {
            (((w as f64 * scale_h).ceil() as usize).min(bw), bh)
        };
        let mut canvas = RgbImage::new(bw as u32, bh as u32);
        let resized = resize_bicubic(img, nw, nh);
        image::imageops::replace(
            &mut canvas,
            &resized,
            ((bw - nw) / 2) as i64,
            ((bh - nh) / 2) as i64,
        );
        let t = self.tile as u32;
        let mut out = vec![pre.normalize(&resize_bicubic(img, self.tile, self.tile))];
        for row in 0..bh as u32 / t {
            for col in 0..bw as u32 / t {
                let tile = image::imageops::crop_imm(&canvas, col * t, row * t, t, t).to_image();
                out.push(pre.normalize(&tile));
            }
        }
        out
    }

    /// One image's tokens [tokens(h, w), hidden] from its tiles' projected features
    /// [1 + tiles, side * side, hidden] (the whole image first) and `newline` [hidden].
    pub fn pack(&self, features: &Tensor, h: usize, w: usize, newline: &Tensor) -> Result<Tensor> {
        let (n, t, d) = features.dims3()?;
        let (rows, cols) = self.grid(h, w);
        let s = self.side;
        if n != 1 + rows * cols || t != s * s {
            candle_core::bail!(
                "image features [{n}, {t}, {d}] do not fit a {rows}x{cols} grid of {s}x{s} patches"
            );
        }
        let map = features
            .narrow(0, 1, rows * cols)?
            .reshape((rows, cols, s, s, d))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .reshape((rows * s, cols * s, d))?;
        let win = self.window(h, w);
        let shown = map.narrow(0, win.top, win.rows)?.narrow(1, win.left, win.cols)?;
        let newlines = newline
            .to_dtype(features.dtype())?
            .reshape((1, 1, d))?
            .broadcast_as((win.rows, 1, d))?;
        let packed = Tensor::cat(&[&shown, &newlines.contiguous()?], 1)?
            .reshape((win.rows * (win.cols + 1), d))?;
        Tensor::cat(&[&features.get(0)?, &packed], 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anyres() -> AnyRes {
        AnyRes {
            pinpoints: vec![[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
            tile: 336,
            side: 24,
        }
    }

    #[test]
    fn best_resolution_keeps_most_of_the_image() {
        let a = anyres();
        assert_eq!(a.best_resolution(480, 640), (672, 672));
        assert_eq!(a.best_resolution(300, 1000), (336, 1008));
        assert_eq!(a.best_resolution(100, 100), (336, 672));
        assert_eq!(a.grid(1000, 300), (3, 1));
    }

    #[test]
    fn window_cuts_the_padding_of_the_longer_axis() {
        let a = anyres();
        // 640 x 480 in a 48 x 48 map: 36 rows show the image, 6 of padding above and below.
        assert_eq!(a.window(480, 640), Window { top: 6, rows: 36, left: 0, cols: 48 });
        assert_eq!(a.tokens(480, 640), 576 + 36 * 49);
        // 300 x 1000 in a 72 x 24 map: 21.6 columns show the image, 1 of padding each side.
        assert_eq!(a.window(1000, 300), Window { top: 0, rows: 72, left: 1, cols: 22 });
    }

    #[test]
    fn pack_puts_the_whole_image_first_and_a_newline_after_each_row() {
        let a = AnyRes { pinpoints: vec![[2, 4]], tile: 2, side: 1 };
        // Whole image 0, tiles 1 and 2 side by side; hidden size 1.
        let f = Tensor::new(&[[[0f32]], [[1.]], [[2.]]], &candle_core::Device::Cpu).unwrap();
        let nl = Tensor::new(&[9f32], &candle_core::Device::Cpu).unwrap();
        let packed = a.pack(&f, 2, 4, &nl).unwrap();
        assert_eq!(packed.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0., 1., 2., 9.]);
    }
}
