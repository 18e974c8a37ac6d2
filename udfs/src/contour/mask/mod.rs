//! Binary masks and their interchange formats: PNG, COCO RLE (compressed string or counts list)
//! and COCO polygons, byte-compatible with pycocotools.
//!
//! A [`Mask`] stores one byte per pixel (0 or 1) in **column-major** order (`x * height + y`),
//! the order COCO RLE runs over, so RLE encoding, decoding, areas and IoUs are single passes.
//!
//! Polygon coordinates follow pycocotools (COCO's frame): pixel `(x, y)` is the square
//! `[x, x + 1] x [y, y + 1]`, and it belongs to a polygon when the scan-line rule of `rleFrPoly`
//! (boundary upsampled 5x, then the crossing of every pixel column) puts it inside: in effect
//! when its centre `(x + 0.5, y + 0.5)` is inside, ties decided by that rule's rounding. [`Mask::from_polygons`]
//! ports that rule exactly, so its RLE equals `pycocotools.mask.frPyObjects` + `merge`.

mod arrow;
mod bitmap;
mod codec;
mod rle;
#[cfg(test)]
mod tests;

pub use arrow::*;
pub use bitmap::*;
pub use codec::*;
pub use rle::*;
