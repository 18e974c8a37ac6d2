//! Coordinate spaces. Every function that reads or writes coordinates names one:
//! - `pixel`: pixel units; pixel `(x, y)` is the square `[x, x + 1] x [y, y + 1]` (COCO's and
//!   pycocotools' polygon frame; boundary sequences have their vertices at pixel corners, while
//!   OpenCV's contour, `mask_contour` and `contour => 'centres'`, lists pixel indices);
//! - `norm`: pixel coordinates divided by the image's width and height;
//! - `square`: VistaLLM's frame: the image pasted onto a square canvas of side `max(w, h)` at
//!   offset `(max - min) // 2` on the short axis (centred, floor; `Expand2square`), then divided
//!   by the side.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    Pixel,
    Norm,
    Square,
}

impl Space {
    pub fn parse(s: &str) -> Result<Space, String> {
        match s.to_ascii_lowercase().as_str() {
            "pixel" => Ok(Space::Pixel),
            "norm" => Ok(Space::Norm),
            "square" => Ok(Space::Square),
            other => Err(format!("space must be 'pixel', 'norm' or 'square', got '{other}'")),
        }
    }

    /// Scale and offset per axis such that `space = (pixel + offset) / scale`.
    fn frame(self, width: f64, height: f64) -> ((f64, f64), (f64, f64)) {
        match self {
            Space::Pixel => ((1.0, 0.0), (1.0, 0.0)),
            Space::Norm => ((width, 0.0), (height, 0.0)),
            Space::Square => {
                let side = width.max(height);
                let (ox, oy) = (((side - width) / 2.0).floor(), ((side - height) / 2.0).floor());
                ((side, ox), (side, oy))
            }
        }
    }

    /// Pixel coordinates `(x, y)` to this space, for an image of `width` x `height`.
    pub fn from_pixel(self, x: f64, y: f64, width: f64, height: f64) -> (f64, f64) {
        let ((sx, ox), (sy, oy)) = self.frame(width, height);
        ((x + ox) / sx, (y + oy) / sy)
    }

    /// Coordinates in this space back to pixels.
    pub fn to_pixel(self, x: f64, y: f64, width: f64, height: f64) -> (f64, f64) {
        let ((sx, ox), (sy, oy)) = self.frame(width, height);
        (x * sx - ox, y * sy - oy)
    }

    /// Converts a flat `[x0, y0, x1, y1, ...]` list from `self` to `to`.
    pub fn convert(self, to: Space, xy: &[f64], width: f64, height: f64) -> Vec<f64> {
        if self == to {
            return xy.to_vec();
        }
        let mut out = Vec::with_capacity(xy.len());
        for p in xy.chunks(2) {
            if p.len() < 2 {
                out.extend_from_slice(p);
                break;
            }
            let (px, py) = self.to_pixel(p[0], p[1], width, height);
            let (x, y) = to.from_pixel(px, py, width, height);
            out.push(x);
            out.push(y);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_pads_the_short_axis_centred() {
        // 100 x 40: side 100, y offset 30.
        assert_eq!(Space::Square.from_pixel(50.0, 0.0, 100.0, 40.0), (0.5, 0.3));
        assert_eq!(Space::Square.to_pixel(0.5, 0.3, 100.0, 40.0), (50.0, 0.0));
        // 41 x 100: x offset floor(59 / 2) = 29.
        assert_eq!(Space::Square.from_pixel(0.0, 0.0, 41.0, 100.0), (0.29, 0.0));
        assert_eq!(Space::Norm.convert(Space::Pixel, &[0.5, 0.25], 10.0, 20.0), vec![5.0, 5.0]);
    }
}
