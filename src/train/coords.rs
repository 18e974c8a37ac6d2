//! Coordinate tokens with ordinal structure. `<bin_0>` .. `<bin_1000>` are separate vocabulary
//! entries; initialised independently, the decoder has to learn 1001 unrelated classes from a few
//! thousand boxes, with no notion that `<bin_740>` lies next to `<bin_741>`. Two initialisations
//! give each bin's input embedding and output row a smooth dependence on its coordinate, plus a
//! smaller independent part, so neighbouring bins start close, a gradient on one bin moves its
//! neighbours, and a near miss costs less than a far one. The rows stay trainable.
//! - `cosine`: 32 cosine basis functions over the coordinate, each along a random direction.
//! - `quadratic`: `a·u + b·t·v - c·t²·w` in the coordinate t = 2k/1000 - 1 along three random
//!   directions. A hidden state h then gives the bins the logits `a·h·u + b·t·h·v - c·t²·h·w`: a
//!   discretised Gaussian whose centre `b·h·v / (2c·h·w)` and sharpness are linear read-outs of
//!   h, and a coordinate is read back from the input embedding linearly (along v).

use std::collections::HashMap;

use candle_core::Tensor;

use crate::model::generate::SplitMix64;

/// The tensors whose rows are token vectors: the decoder's input embeddings and output head.
pub(super) const TOKEN_TABLES: [&str; 2] =
    ["language_model.model.embed_tokens.weight", "language_model.lm_head.weight"];

/// Weights of the constant, linear and quadratic directions.
const SHAPE: [f64; 3] = [0.5, 1.0, 1.0];
/// Share of each row's energy in the independent part.
const OWN_SHARE: f64 = 0.2;

/// Cosine basis functions over the coordinate: neighbouring bins within about 1001 / BASIS of
/// each other start strongly correlated.
const BASIS: usize = 32;
/// Share of each row's energy in the smooth part.
const SMOOTH_SHARE: f64 = 0.75;

fn norm(row: &[f32]) -> f64 {
    row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

/// Scales `v` to unit length.
fn normalise(v: &mut [f64]) {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// A random unit vector of `d` entries.
fn direction(rng: &mut SplitMix64, d: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..d).map(|_| super::params::normal(rng)).collect();
    normalise(&mut v);
    v
}

/// Rewrites the rows of each of [`TOKEN_TABLES`] present in `tensors`, in that order:
/// `rewrite(rng, rows, d)` gets the table's rows (row-major, `d` columns) and one random stream
/// shared by the tables.
fn rewrite_tables(
    tensors: &mut HashMap<String, Tensor>,
    seed: u64,
    mut rewrite: impl FnMut(&mut SplitMix64, &mut [f32], usize),
) -> candle_core::Result<()> {
    let mut rng = SplitMix64::new(seed ^ 0x636f_6f72_6473);
    for name in TOKEN_TABLES {
        let Some(table) = tensors.get(name) else { continue };
        let (vocab, d) = table.dims2()?;
        let mut rows: Vec<f32> = table.flatten_all()?.to_vec1()?;
        rewrite(&mut rng, &mut rows, d);
        let t = Tensor::from_vec(rows, (vocab, d), table.device())?;
        tensors.insert(name.to_string(), t);
    }
    Ok(())
}

/// Calls `f(k, row)` for the row of each bin `bins[k]` inside the table.
fn for_each_bin(rows: &mut [f32], d: usize, bins: &[u32], mut f: impl FnMut(usize, &mut [f32])) {
    let vocab = rows.len() / d;
    for (k, &id) in bins.iter().enumerate() {
        let id = id as usize;
        if id < vocab {
            f(k, &mut rows[id * d..(id + 1) * d]);
        }
    }
}

/// `quadratic`: rewrites the rows `bins` (in coordinate order) of [`TOKEN_TABLES`] in `tensors`;
/// the rows' mean norm stays what it was.
pub(super) fn quadratic_rows(
    tensors: &mut HashMap<String, Tensor>,
    bins: &[u32],
    seed: u64,
) -> candle_core::Result<()> {
    rewrite_tables(tensors, seed, |rng, rows, d| {
        let vocab = rows.len() / d;
        let ids: Vec<usize> = bins.iter().map(|&b| b as usize).filter(|&b| b < vocab).collect();
        if ids.len() < 2 {
            return;
        }
        let mean_norm =
            ids.iter().map(|&id| norm(&rows[id * d..(id + 1) * d])).sum::<f64>() / ids.len() as f64;
        let dirs: Vec<Vec<f64>> = (0..3).map(|_| direction(rng, d)).collect();
        // E[|shape part|²] over t uniform in [-1, 1]: a² + b²/3 + c²/5.
        let [a, b, c] = SHAPE;
        let shape_norm = (a * a + b * b / 3.0 + c * c / 5.0).sqrt();
        let (shape_scale, own_scale) = ((1.0 - OWN_SHARE).sqrt() / shape_norm, OWN_SHARE.sqrt());
        let last = (bins.len() - 1) as f64;
        for_each_bin(rows, d, bins, |k, row| {
            let t = 2.0 * k as f64 / last - 1.0;
            let coef = [a, b * t, -c * t * t];
            let own = norm(row).max(1e-12);
            for (i, r) in row.iter_mut().enumerate() {
                let shaped: f64 = (0..3).map(|j| coef[j] * dirs[j][i]).sum();
                let x = shape_scale * shaped + own_scale * f64::from(*r) / own;
                *r = (mean_norm * x) as f32;
            }
        });
    })
}

/// `cosine`: rewrites the rows `bins` (in coordinate order) of [`TOKEN_TABLES`] in `tensors`,
/// keeping each row's norm.
pub(super) fn cosine_rows(
    tensors: &mut HashMap<String, Tensor>,
    bins: &[u32],
    seed: u64,
) -> candle_core::Result<()> {
    rewrite_tables(tensors, seed, |rng, rows, d| {
        let directions: Vec<f64> = (0..BASIS * d).map(|_| super::params::normal(rng)).collect();
        let b = bins.len() as f64;
        for_each_bin(rows, d, bins, |k, row| {
            let x = (k as f64 + 0.5) / b;
            let mut smooth = vec![0f64; d];
            for j in 0..BASIS {
                let c = (std::f64::consts::PI * j as f64 * x).cos();
                for (s, r) in smooth.iter_mut().zip(&directions[j * d..(j + 1) * d]) {
                    *s += c * r;
                }
            }
            let row_norm = norm(row);
            let mut own: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
            normalise(&mut own);
            normalise(&mut smooth);
            let mut mixed: Vec<f64> = smooth
                .iter()
                .zip(&own)
                .map(|(s, o)| SMOOTH_SHARE.sqrt() * s + (1.0 - SMOOTH_SHARE).sqrt() * o)
                .collect();
            normalise(&mut mixed);
            for (r, m) in row.iter_mut().zip(&mixed) {
                *r = (m * row_norm) as f32;
            }
        });
    })
}

/// Cosine similarity of rows `a` and `b` of a table.
#[cfg(test)]
fn similarity(t: &Tensor, a: u32, b: u32) -> f32 {
    let ra = t.get(a as usize).unwrap();
    let rb = t.get(b as usize).unwrap();
    let dot = (&ra * &rb).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    let n = |r: &Tensor| {
        r.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap()
    };
    dot / (n(&ra) * n(&rb))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded 1100 x 64 token table (std 0.02) under the first table name, and the 1001 bin
    /// rows 50..1051.
    fn random_table() -> (Tensor, HashMap<String, Tensor>, Vec<u32>) {
        let mut rng = SplitMix64::new(1);
        let (vocab, d) = (1100, 64);
        let values: Vec<f32> = (0..vocab * d)
            .map(|_| (super::super::params::normal(&mut rng) * 0.02) as f32)
            .collect();
        let t = Tensor::from_vec(values, (vocab, d), &candle_core::Device::Cpu).unwrap();
        let m = HashMap::from([(TOKEN_TABLES[0].to_string(), t.clone())]);
        (t, m, (50..1051).collect())
    }

    #[test]
    fn quadratic_neighbouring_bins_start_close_and_norms_stay() {
        let (t, mut m, bins) = random_table();
        quadratic_rows(&mut m, &bins, 7).unwrap();
        let new = &m[TOKEN_TABLES[0]];
        // Bins 450 and 451 (rows 500, 501) start close; coordinates 0.05 and 0.85 apart do not.
        let near = similarity(new, 500, 501);
        let far = similarity(new, 100, 900);
        assert!(near > 0.55, "neighbours {near}");
        assert!(far.abs() < 0.25, "far apart {far}");
        // Rows outside the bins are untouched.
        let diff = (t.get(10).unwrap() - new.get(10).unwrap()).unwrap();
        assert_eq!(diff.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        // The rows' mean norm is kept.
        let mean_norm = |m: &Tensor| {
            let rows = m.narrow(0, 50, 1001).unwrap();
            let norms = rows.sqr().unwrap().sum(1).unwrap().sqrt().unwrap();
            norms.mean_all().unwrap().to_scalar::<f32>().unwrap()
        };
        assert!((mean_norm(&t) / mean_norm(new) - 1.0).abs() < 0.05);
    }

    #[test]
    fn cosine_neighbouring_bins_start_close_and_norms_stay() {
        let (t, mut m, bins) = random_table();
        cosine_rows(&mut m, &bins, 7).unwrap();
        let new = &m[TOKEN_TABLES[0]];
        let (near, far) = (similarity(new, 500, 501), similarity(new, 100, 900));
        assert!(near > 0.7, "neighbours {near}");
        assert!(far.abs() < 0.3, "far apart {far}");
        let norm = |r: Tensor| {
            r.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap()
        };
        assert!((norm(t.get(600).unwrap()) - norm(new.get(600).unwrap())).abs() < 1e-5);
    }
}
