//! Batched decoding over prompt embeddings: greedy (the default), temperature/top-p sampling with
//! a seed, or beam search. Rows are left-padded into one batch with their own positions and
//! padding masks; a row that stops (a stop token or `max_new_tokens`) leaves the batch and its
//! KV cache, so it costs nothing further. A row's output does not depend on the other rows.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};

use super::llama::{KvCache, Llama};
pub use vista_udfs::seeded::SplitMix64;

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    pub max_new_tokens: usize,
    /// The stop tokens are masked out until a row has this many tokens.
    pub min_new_tokens: usize,
    pub num_beams: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// Generation ends at any of these; the stop token is part of the output.
    pub stop: Vec<u32>,
    /// Beam search score = sum of log-probabilities / length^length_penalty.
    pub length_penalty: f64,
    /// Most pixels an input image, or a buffer made from it (square padding), may hold.
    pub max_image_pixels: u64,
    /// Coordinate tokens `<bin_0>` ..= `<bin_N>` in coordinate order, when greedy decoding picks
    /// a coordinate as the median of the distribution over them (`vista.coord_decode =
    /// 'median'`); empty: the most likely token.
    pub median_bins: Arc<[u32]>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_new_tokens: 64,
            min_new_tokens: 0,
            num_beams: 1,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
            length_penalty: 1.0,
            max_image_pixels: vista_udfs::limits::DEFAULT_MAX_IMAGE_PIXELS,
            median_bins: Arc::from([]),
        }
    }
}

/// How a family runs the prompt through the decoder and where each row's positions go on from
/// there. LLaMA-style families count positions over a row's real tokens ([`Plain`]); Qwen3-VL
/// gives image tokens grid positions and adds DeepStack features in its prompt pass.
pub trait Prefill {
    /// Last-position logits [n, vocab] of the prompts `rows` (indices into the generate call's
    /// rows), left-padded by `pads` into `embeds` [n, width, hidden]; fills `cache`.
    fn prefill(
        &self,
        llm: &Llama,
        rows: &[usize],
        embeds: &Tensor,
        pads: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor>;

    /// Added to a row's 1-D position (its count of real tokens so far) while decoding.
    fn position_offset(&self, _row: usize) -> i64 {
        0
    }
}

/// Positions 0, 1, 2, ... over each row's real tokens.
pub struct Plain;

impl Prefill for Plain {
    fn prefill(
        &self,
        llm: &Llama,
        _rows: &[usize],
        embeds: &Tensor,
        pads: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        llm.forward(embeds, &prefill_positions(embeds.dim(1)?, pads), pads, cache, false)
    }
}

/// Generates for each row of prompt embeddings ([len_i, hidden] each).
pub fn generate(llm: &Llama, rows: &[Tensor], opts: &DecodeOptions) -> Result<Vec<Vec<u32>>> {
    generate_with(llm, rows, opts, &Plain)
}

/// [`generate`] with a family's own prompt pass and positions.
pub fn generate_with(
    llm: &Llama,
    rows: &[Tensor],
    opts: &DecodeOptions,
    prefill: &dyn Prefill,
) -> Result<Vec<Vec<u32>>> {
    if rows.is_empty() || opts.max_new_tokens == 0 {
        return Ok(vec![Vec::new(); rows.len()]);
    }
    if opts.num_beams > 1 {
        return rows
            .iter()
            .enumerate()
            .map(|(i, r)| beam_search(llm, i, r, opts, prefill))
            .collect();
    }
    sample_batch(llm, rows, opts, prefill)
}

/// A decoding position: the row's count of real tokens plus its family's offset.
fn decode_position(real: usize, offset: i64) -> u32 {
    (real as i64 + offset).max(0) as u32
}

/// Left-pads rows into [n, max_len, hidden]; returns it with each row's padding.
pub(crate) fn left_pad(rows: &[Tensor]) -> Result<(Tensor, Vec<usize>)> {
    let lens: Vec<usize> = rows.iter().map(|r| r.dim(0)).collect::<Result<_>>()?;
    let width = lens.iter().copied().max().unwrap_or(0);
    let hidden = rows[0].dim(1)?;
    let mut padded = Vec::with_capacity(rows.len());
    for (r, &len) in rows.iter().zip(&lens) {
        if len == width {
            padded.push(r.clone());
        } else {
            let zeros = Tensor::zeros((width - len, hidden), r.dtype(), r.device())?;
            padded.push(Tensor::cat(&[&zeros, r], 0)?);
        }
    }
    Ok((Tensor::stack(&padded, 0)?, lens.iter().map(|l| width - l).collect()))
}

pub(crate) fn prefill_positions(width: usize, pads: &[usize]) -> Vec<Vec<u32>> {
    pads.iter().map(|&p| (0..width).map(|j| j.saturating_sub(p) as u32).collect()).collect()
}

fn sample_batch(
    llm: &Llama,
    rows: &[Tensor],
    opts: &DecodeOptions,
    prefill: &dyn Prefill,
) -> Result<Vec<Vec<u32>>> {
    let device = rows[0].device().clone();
    let (embeds, mut pads) = left_pad(rows)?;
    let mut cache = KvCache::new(llm.layers());
    let all: Vec<usize> = (0..rows.len()).collect();
    let mut logits = prefill.prefill(llm, &all, &embeds, &pads, &mut cache)?;
    cache.reserve(opts.max_new_tokens - 1)?;
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
    let mut rngs: Vec<SplitMix64> = (0..rows.len()).map(|_| SplitMix64::new(opts.seed)).collect();
    let mut active: Vec<usize> = (0..rows.len()).collect();
    loop {
        let mut scores: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        let mut keep = Vec::new();
        let mut next = Vec::new();
        for (i, &row) in active.iter().enumerate() {
            if out[row].len() < opts.min_new_tokens {
                mask_stop(&mut scores[i], &opts.stop);
            }
            let token = pick(&scores[i], opts, &mut rngs[row]);
            out[row].push(token);
            if !opts.stop.contains(&token) && out[row].len() < opts.max_new_tokens {
                keep.push(i);
                next.push(token);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            let idx: Vec<u32> = keep.iter().map(|&i| i as u32).collect();
            cache.select_rows(&Tensor::new(idx.as_slice(), &device)?)?;
            pads = keep.iter().map(|&i| pads[i]).collect();
            active = keep.iter().map(|&i| active[i]).collect();
            // Padding that every remaining row has is dead weight in the cache.
            let common = pads.iter().copied().min().unwrap_or(0);
            if common > 0 {
                cache.drop_front(common)?;
                pads.iter_mut().for_each(|p| *p -= common);
            }
        }
        let ids = Tensor::new(next.as_slice(), &device)?.unsqueeze(1)?;
        let embeds = llm.embed(&ids)?;
        let total = cache.len();
        let positions: Vec<Vec<u32>> = pads
            .iter()
            .zip(&active)
            .map(|(&p, &row)| vec![decode_position(total - p, prefill.position_offset(row))])
            .collect();
        logits = llm.forward(&embeds, &positions, &pads, &mut cache, false)?;
    }
    Ok(out)
}

/// The next token from one row's logits: the first maximum when greedy (a coordinate token
/// replaced by the bins' median under [`DecodeOptions::median_bins`]), else a draw from the
/// temperature-scaled distribution restricted to its top-p nucleus.
pub fn pick(logits: &[f32], opts: &DecodeOptions, rng: &mut SplitMix64) -> u32 {
    if opts.temperature <= 0.0 {
        let best = argmax(logits);
        return median_bin(logits, &opts.median_bins, best).unwrap_or(best);
    }
    let t = opts.temperature;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let probs: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i as u32, ((l as f64 - max) / t).exp())).collect();
    let sum: f64 = probs.iter().map(|p| p.1).sum();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].1.total_cmp(&probs[a].1).then(a.cmp(&b)));
    let mut in_nucleus = vec![false; probs.len()];
    let mut cum = 0.0;
    for &i in &order {
        in_nucleus[i] = true;
        cum += probs[i].1 / sum;
        if cum >= opts.top_p {
            break;
        }
    }
    // Draw over the nucleus in token order, not probability order: near-equal probabilities
    // swap places under float noise (another batch shape), token order does not.
    let mass: f64 = probs.iter().zip(&in_nucleus).filter(|(_, &k)| k).map(|(p, _)| p.1).sum();
    let mut u = rng.unit() * mass;
    let mut last = order[0] as u32;
    for (&(id, p), _) in probs.iter().zip(&in_nucleus).filter(|(_, &k)| k) {
        if u < p {
            return id;
        }
        u -= p;
        last = id;
    }
    last
}

/// When `best` is one of `bins` (in coordinate order): the first bin at which the softmax over
/// the bins' logits reaches half its mass.
fn median_bin(logits: &[f32], bins: &[u32], best: u32) -> Option<u32> {
    if !bins.contains(&best) {
        return None;
    }
    let max = logits[best as usize];
    let weights: Vec<f64> =
        bins.iter().map(|&b| ((logits[b as usize] - max) as f64).exp()).collect();
    let half = weights.iter().sum::<f64>() / 2.0;
    let mut cum = 0.0;
    for (&b, w) in bins.iter().zip(&weights) {
        cum += w;
        if cum >= half {
            return Some(b);
        }
    }
    Some(best)
}

/// Rules the stop tokens out of one row's scores, as transformers' minimum-length processor does.
fn mask_stop(scores: &mut [f32], stop: &[u32]) {
    for &t in stop {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax(xs: &[f32]) -> Vec<f32> {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = xs.iter().map(|&x| ((x - max) as f64).exp()).sum::<f64>().ln() as f32 + max;
    xs.iter().map(|&x| x - lse).collect()
}

struct Beam {
    tokens: Vec<u32>,
    score: f32,
}

/// Beam search for one row, as transformers runs it with `early_stopping=False`: each step keeps
/// the best `2 * beams` continuations; those ending in a stop token (ranked within the first
/// `beams`) become finished hypotheses scored by length-normalised log-probability; the search
/// ends when no running beam can beat the worst of `beams` finished ones, or at
/// `max_new_tokens`.
fn beam_search(
    llm: &Llama,
    index: usize,
    row: &Tensor,
    opts: &DecodeOptions,
    prefill: &dyn Prefill,
) -> Result<Vec<u32>> {
    let k = opts.num_beams;
    let device = row.device().clone();
    let mut cache = KvCache::new(llm.layers());
    let mut logits = prefill.prefill(llm, &[index], &row.unsqueeze(0)?, &[0], &mut cache)?;
    cache.reserve(opts.max_new_tokens - 1)?;
    let offset = prefill.position_offset(index);
    let mut beams = vec![Beam { tokens: Vec::new(), score: 0.0 }];
    let mut finished: Vec<(Vec<u32>, f64)> = Vec::new();
    let norm = |score: f32, n: usize| score as f64 / (n as f64).powf(opts.length_penalty);
    loop {
        let scores: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        let mut cands: Vec<(usize, u32, f32)> = Vec::new();
        for (b, s) in scores.iter().enumerate() {
            // transformers masks after the log-softmax: the other tokens keep their scores.
            let mut lps = log_softmax(s);
            if beams[b].tokens.len() < opts.min_new_tokens {
                mask_stop(&mut lps, &opts.stop);
            }
            for (t, lp) in lps.into_iter().enumerate() {
                cands.push((b, t as u32, beams[b].score + lp));
            }
        }
        let top = (2 * k).min(cands.len());
        cands.select_nth_unstable_by(top - 1, |a, b| {
            b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1)))
        });
        cands.truncate(top);
        cands.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        let step = beams[0].tokens.len() + 1;
        let mut next: Vec<(usize, u32, f32)> = Vec::new();
        for (rank, &(b, t, s)) in cands.iter().enumerate() {
            if opts.stop.contains(&t) {
                if rank < k {
                    let mut tokens = beams[b].tokens.clone();
                    tokens.push(t);
                    finished.push((tokens, norm(s, step)));
                }
            } else {
                next.push((b, t, s));
            }
            if next.len() == k {
                break;
            }
        }
        finished.sort_by(|a, b| b.1.total_cmp(&a.1));
        finished.truncate(k);
        let at_limit = step >= opts.max_new_tokens;
        let hopeless = finished.len() >= k
            && next.first().is_none_or(|best| norm(best.2, step) <= finished[k - 1].1);
        if at_limit || hopeless || next.is_empty() {
            if !hopeless {
                for &(b, t, s) in &next {
                    let mut tokens = beams[b].tokens.clone();
                    tokens.push(t);
                    finished.push((tokens, norm(s, step)));
                }
            }
            finished.sort_by(|a, b| b.1.total_cmp(&a.1));
            return Ok(finished.into_iter().next().map(|f| f.0).unwrap_or_default());
        }
        let idx: Vec<u32> = next.iter().map(|n| n.0 as u32).collect();
        cache.select_rows(&Tensor::new(idx.as_slice(), &device)?)?;
        beams = next
            .iter()
            .map(|&(b, t, s)| {
                let mut tokens = beams[b].tokens.clone();
                tokens.push(t);
                Beam { tokens, score: s }
            })
            .collect();
        let ids: Vec<u32> = next.iter().map(|n| n.1).collect();
        let embeds = llm.embed(&Tensor::new(ids.as_slice(), &device)?.unsqueeze(1)?)?;
        let pos: Vec<Vec<u32>> = vec![vec![decode_position(cache.len(), offset)]; beams.len()];
        let pads = vec![0; beams.len()];
        logits = llm.forward(&embeds, &pos, &pads, &mut cache, false)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn tiny_top_p_is_greedy_and_sampling_is_seeded() {
        let logits = [0.1f32, 3.0, 2.9, -1.0];
        let opts = DecodeOptions { temperature: 1.0, top_p: 1e-6, ..Default::default() };
        let mut rng = SplitMix64::new(5);
        for _ in 0..20 {
            assert_eq!(pick(&logits, &opts, &mut rng), 1);
        }
        let opts = DecodeOptions { temperature: 1.0, top_p: 1.0, seed: 9, ..Default::default() };
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..50).map(|_| pick(&logits, &opts, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
        let d = draw(9);
        assert!(d.contains(&1) && d.contains(&2), "{d:?}");
    }

    #[test]
    fn median_decoding_moves_a_greedy_coordinate_to_the_bins_median() {
        // Tokens 0-1 are words, 2-6 the bins <bin_0>..<bin_4>. The peak is <bin_1> (token 3)
        // with probability 0.4 among the bins; 0.3 + 0.3 lie on <bin_3> and <bin_4>, so half
        // the mass is reached at <bin_3> (token 5).
        let ln = |p: f64| p.ln() as f32;
        let logits = [-9.0, -9.0, f32::NEG_INFINITY, ln(0.4), f32::NEG_INFINITY, ln(0.3), ln(0.3)];
        let median =
            DecodeOptions { median_bins: Arc::from([2, 3, 4, 5, 6]), ..Default::default() };
        let mut rng = SplitMix64::new(0);
        assert_eq!(pick(&logits, &DecodeOptions::default(), &mut rng), 3);
        assert_eq!(pick(&logits, &median, &mut rng), 5);
        // Exactly half the mass on the peak: the peak is the median.
        let logits = [-9.0, -9.0, ln(0.1), ln(0.5), ln(0.2), ln(0.1), ln(0.1)];
        assert_eq!(pick(&logits, &median, &mut rng), 3);
        // A word as the most likely token is kept, however the bins spread.
        let logits = [5.0, -9.0, ln(0.1), ln(0.5), ln(0.2), ln(0.1), ln(0.1)];
        assert_eq!(pick(&logits, &median, &mut rng), 0);
    }

    #[test]
    fn nucleus_excludes_the_tail() {
        // p(1) ~ 0.73, p(2) ~ 0.27: top_p 0.8 keeps exactly tokens 1 and 2.
        let logits = [-5.0f32, 2.0, 1.0, -5.0];
        let opts = DecodeOptions { temperature: 1.0, top_p: 0.8, ..Default::default() };
        let mut rng = SplitMix64::new(1);
        for _ in 0..200 {
            let t = pick(&logits, &opts, &mut rng);
            assert!(t == 1 || t == 2);
        }
    }
}
