//! BLEU-1..4, ROUGE-L and CIDEr-D exactly as pycocoevalcap computes them, on already tokenized
//! captions (one hypothesis and at least one reference per image).
//!
//! Token rules follow the reference: BLEU and CIDEr split on any whitespace (Python's
//! `str.split()`), ROUGE-L on single spaces (`str.split(" ")`, so an empty caption is one empty
//! token and a non-breaking space does not split).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// One scored image: its tokenized hypothesis and references.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    pub hyp: &'a str,
    pub refs: Vec<&'a str>,
}

/// Python's `str.isspace()` (Unicode White_Space plus the ASCII separators U+001C..U+001F).
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` without arguments.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_isspace).filter(|w| !w.is_empty())
}

/// Python's `str.strip()` without arguments.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// A cheap hasher for the packed n-gram keys (they are already well-mixed integers).
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An n-gram (n = 1..4) of interned token ids (ids start at 1, unused slots are 0).
type Gram = u128;

fn order(g: Gram) -> usize {
    (0..4).filter(|i| (g >> (32 * i)) as u32 != 0).count() - 1
}

/// Interns tokens so n-grams become integers.
#[derive(Default)]
struct Vocab<'a> {
    ids: FastMap<&'a str, u32>,
}

impl<'a> Vocab<'a> {
    fn ids(&mut self, s: &'a str) -> Vec<u32> {
        py_split(s)
            .map(|w| {
                let n = self.ids.len() as u32 + 1;
                *self.ids.entry(w).or_insert(n)
            })
            .collect()
    }
}

/// Counts of every n-gram, n = 1..4 (pycocoevalcap's `precook`).
fn ngram_counts(words: &[u32]) -> FastMap<Gram, u32> {
    let mut counts = FastMap::default();
    for k in 1..=4 {
        for w in words.windows(k) {
            let mut g: Gram = 0;
            for (i, &t) in w.iter().enumerate() {
                g |= (t as u128) << (32 * i);
            }
            *counts.entry(g).or_insert(0) += 1;
        }
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// BLEU

/// pycocoevalcap's `Bleu(4)` result: the corpus BLEU-1..4, the length totals, and per-image
/// BLEU-1..4 (its second return value).
#[derive(Debug, Clone, PartialEq)]
pub struct BleuResult {
    pub bleu: [f64; 4],
    pub testlen: u64,
    pub reflen: u64,
    pub per_item: Vec<[f64; 4]>,
}

struct BleuCounts {
    testlen: u64,
    reflen: u64,
    guess: [u64; 4],
    correct: [u64; 4],
}

fn bleu_of(c: &BleuCounts) -> [f64; 4] {
    const SMALL: f64 = 1e-9;
    const TINY: f64 = 1e-15;
    let mut out = [0.0; 4];
    let mut prod = 1.0;
    for (k, o) in out.iter_mut().enumerate() {
        prod *= (c.correct[k] as f64 + TINY) / (c.guess[k] as f64 + SMALL);
        *o = prod.powf(1.0 / (k as f64 + 1.0));
    }
    let ratio = (c.testlen as f64 + TINY) / (c.reflen as f64 + SMALL);
    if ratio < 1.0 {
        for v in out.iter_mut() {
            *v *= (1.0 - 1.0 / ratio).exp();
        }
    }
    out
}

/// BLEU with the `closest` reference length (ties to the shorter reference), as
/// `Bleu(4).compute_score` calls it.
pub fn bleu(items: &[Item]) -> BleuResult {
    let mut vocab = Vocab::default();
    let mut total = BleuCounts { testlen: 0, reflen: 0, guess: [0; 4], correct: [0; 4] };
    let mut per_item = Vec::with_capacity(items.len());
    for item in items {
        let mut maxref: FastMap<Gram, u32> = FastMap::default();
        let mut reflens = Vec::with_capacity(item.refs.len());
        for r in &item.refs {
            let ids = vocab.ids(r);
            reflens.push(ids.len() as u64);
            for (g, c) in ngram_counts(&ids) {
                let m = maxref.entry(g).or_insert(0);
                *m = (*m).max(c);
            }
        }
        let hyp = vocab.ids(item.hyp);
        let testlen = hyp.len() as u64;
        let reflen = reflens.iter().map(|&l| (l.abs_diff(testlen), l)).min().map_or(0, |(_, l)| l);
        let mut c = BleuCounts { testlen, reflen, guess: [0; 4], correct: [0; 4] };
        for k in 0..4 {
            c.guess[k] = testlen.saturating_sub(k as u64);
        }
        for (g, n) in ngram_counts(&hyp) {
            c.correct[order(g)] += n.min(maxref.get(&g).copied().unwrap_or(0)) as u64;
        }
        per_item.push(bleu_of(&c));
        total.testlen += c.testlen;
        total.reflen += c.reflen;
        for k in 0..4 {
            total.guess[k] += c.guess[k];
            total.correct[k] += c.correct[k];
        }
    }
    BleuResult { bleu: bleu_of(&total), testlen: total.testlen, reflen: total.reflen, per_item }
}

// ---------------------------------------------------------------------------------------------
// ROUGE-L

fn lcs(a: &[&str], b: &[&str]) -> usize {
    let (long, short) = if a.len() < b.len() { (b, a) } else { (a, b) };
    let mut prev = vec![0usize; short.len() + 1];
    let mut cur = vec![0usize; short.len() + 1];
    for x in long {
        for (j, y) in short.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[short.len()]
}

/// ROUGE-L of one image (β = 1.2; precision and recall maximised separately over references).
pub fn rouge_l_item(item: &Item) -> f64 {
    const BETA2: f64 = 1.2 * 1.2;
    let cand: Vec<&str> = item.hyp.split(' ').collect();
    let (mut pmax, mut rmax) = (f64::MIN, f64::MIN);
    for r in &item.refs {
        let toks: Vec<&str> = r.split(' ').collect();
        let l = lcs(&toks, &cand) as f64;
        pmax = pmax.max(l / cand.len() as f64);
        rmax = rmax.max(l / toks.len() as f64);
    }
    if pmax != 0.0 && rmax != 0.0 {
        ((1.0 + BETA2) * pmax * rmax) / (rmax + BETA2 * pmax)
    } else {
        0.0
    }
}

/// Corpus ROUGE-L (the mean over images) and the per-image scores.
pub fn rouge_l(items: &[Item]) -> (f64, Vec<f64>) {
    let scores: Vec<f64> = items.iter().map(rouge_l_item).collect();
    (mean(&scores), scores)
}

// ---------------------------------------------------------------------------------------------
// CIDEr-D

/// Corpus CIDEr-D (pycocoevalcap's `Cider`: n = 4, σ = 6, document frequencies and N from the
/// evaluated set) and the per-image scores.
pub fn cider_d(items: &[Item]) -> (f64, Vec<f64>) {
    const SIGMA: f64 = 6.0;
    let mut vocab = Vocab::default();
    let mut hyps = Vec::with_capacity(items.len());
    let mut refs = Vec::with_capacity(items.len());
    let mut df: FastMap<Gram, f64> = FastMap::default();
    for item in items {
        hyps.push(ngram_counts(&vocab.ids(item.hyp)));
        let rc: Vec<FastMap<Gram, u32>> =
            item.refs.iter().map(|r| ngram_counts(&vocab.ids(r))).collect();
        let mut seen: FastMap<Gram, ()> = FastMap::default();
        for c in &rc {
            for g in c.keys() {
                if seen.insert(*g, ()).is_none() {
                    *df.entry(*g).or_insert(0.0) += 1.0;
                }
            }
        }
        refs.push(rc);
    }
    let ref_len = (items.len() as f64).ln();
    let vec_of = |counts: &FastMap<Gram, u32>| {
        let mut vec: FastMap<Gram, f64> = FastMap::default();
        let mut norm = [0.0f64; 4];
        let mut length = 0u32;
        for (&g, &tf) in counts {
            let d = df.get(&g).copied().unwrap_or(0.0).max(1.0).ln();
            let n = order(g);
            let w = tf as f64 * (ref_len - d);
            vec.insert(g, w);
            norm[n] += w * w;
            if n == 1 {
                length += tf;
            }
        }
        (vec, norm.map(f64::sqrt), length)
    };
    let mut scores = Vec::with_capacity(items.len());
    for (hyp, rc) in hyps.iter().zip(&refs) {
        let (vh, nh, lh) = vec_of(hyp);
        let mut score = [0.0f64; 4];
        for r in rc {
            let (vr, nr, lr) = vec_of(r);
            let delta = lh as f64 - lr as f64;
            let mut val = [0.0f64; 4];
            for (g, &wh) in &vh {
                let wr = vr.get(g).copied().unwrap_or(0.0);
                val[order(*g)] += wh.min(wr) * wr;
            }
            for n in 0..4 {
                if nh[n] != 0.0 && nr[n] != 0.0 {
                    val[n] /= nh[n] * nr[n];
                }
                val[n] *= std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
                score[n] += val[n];
            }
        }
        let avg = score.iter().sum::<f64>() / 4.0;
        scores.push(avg / rc.len() as f64 * 10.0);
    }
    (mean(&scores), scores)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
