//! Coordinate tokens with ordinal structure. `<bin_0>` .. `<bin_1000>` are separate vocabulary
//! entries; initialised independently, the decoder has to learn 1001 unrelated classes from a few
//! thousand boxes, with no notion that `<bin_740>` lies next to `<bin_741>`. Here each bin's
//! input embedding and output row start as a smooth function of k (a cosine basis over the
//! coordinate, with random directions per basis function) plus a smaller independent part, so
//! that neighbouring bins start close, a gradient on one bin moves its neighbours, and a near
//! miss costs less than a far one. The rows stay trainable.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::model::generate::SplitMix64;

/// The tensors whose rows are token vectors: the decoder's input embeddings and output head.
pub(super) const TOKEN_TABLES: [&str; 2] =
    ["language_model.model.embed_tokens.weight", "language_model.lm_head.weight"];

/// Cosine basis functions over the coordinate: neighbouring bins within about 1001 / BASIS of
/// each other start strongly correlated.
const BASIS: usize = 32;
/// Share of each row's energy in the smooth part.
const SMOOTH_SHARE: f64 = 0.75;

/// Rewrites the rows `bins` (in coordinate order) of [`TOKEN_TABLES`] in `tensors`, keeping each
/// row's norm.
pub(super) fn ordinal_rows(
    tensors: &mut HashMap<String, Tensor>,
    bins: &[u32],
    seed: u64,
) -> candle_core::Result<()> {
    let mut rng = SplitMix64::new(seed ^ 0x636f_6f72_6473);
    for name in TOKEN_TABLES {
        let Some(table) = tensors.get(name) else { continue };
        let (vocab, d) = table.dims2()?;
        let mut rows: Vec<f32> = table.flatten_all()?.to_vec1()?;
        let directions: Vec<f64> =
            (0..BASIS * d).map(|_| super::params::normal(&mut rng)).collect();
        let b = bins.len() as f64;
        for (k, &id) in bins.iter().enumerate() {
            let id = id as usize;
            if id >= vocab {
                continue;
            }
            let row = &mut rows[id * d..(id + 1) * d];
            let x = (k as f64 + 0.5) / b;
            let mut smooth = vec![0f64; d];
            for j in 0..BASIS {
                let c = (std::f64::consts::PI * j as f64 * x).cos();
                for (s, r) in smooth.iter_mut().zip(&directions[j * d..(j + 1) * d]) {
                    *s += c * r;
                }
            }
            let unit = |v: &mut [f64]| {
                let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= n);
            };
            let norm = row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
            let mut own: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
            unit(&mut own);
            unit(&mut smooth);
            let mut mixed: Vec<f64> = smooth
                .iter()
                .zip(&own)
                .map(|(s, o)| SMOOTH_SHARE.sqrt() * s + (1.0 - SMOOTH_SHARE).sqrt() * o)
                .collect();
            unit(&mut mixed);
            for (r, m) in row.iter_mut().zip(&mixed) {
                *r = (m * norm) as f32;
            }
        }
        let t = Tensor::from_vec(rows, (vocab, d), table.device())?;
        tensors.insert(name.to_string(), t);
    }
    Ok(())
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

    #[test]
    fn neighbouring_bins_start_close_and_norms_stay() {
        let dev = candle_core::Device::Cpu;
        let mut rng = SplitMix64::new(1);
        let (vocab, d) = (1100, 64);
        let values: Vec<f32> = (0..vocab * d)
            .map(|_| (super::super::params::normal(&mut rng) * 0.02) as f32)
            .collect();
        let t = Tensor::from_vec(values, (vocab, d), &dev).unwrap();
        let mut m = HashMap::from([(TOKEN_TABLES[0].to_string(), t.clone())]);
        let bins: Vec<u32> = (50..1051).collect();
        ordinal_rows(&mut m, &bins, 7).unwrap();
        let new = &m[TOKEN_TABLES[0]];
        let near = similarity(new, 500, 501);
        let far = similarity(new, 100, 900);
        assert!(near > 0.7, "neighbours {near}");
        assert!(far.abs() < 0.3, "far apart {far}");
        // Rows outside the bins are untouched; norms are kept.
        let diff =
            (t.get(10).unwrap() - new.get(10).unwrap()).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let norm = |r: Tensor| {
            r.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap()
        };
        assert!((norm(t.get(600).unwrap()) - norm(new.get(600).unwrap())).abs() < 1e-5);
    }
}
