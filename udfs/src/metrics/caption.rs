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
        // A product only mixes upwards; hash tables index by the low bits, so bring the well
        // mixed high bits down.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 59));
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

/// One tokenized sentence as pycocoevalcap's `precook` sees it: its n-grams (n = 1..4) as
/// interned ids with counts, sorted by id, and its word count.
struct Sentence {
    grams: Vec<(u32, u32)>,
    words: usize,
}

/// Every sentence of an evaluation set with n-grams interned to dense ids, so the scorers
/// work on sorted integer vectors (merge joins) instead of hash maps of tuples.
struct Corpus {
    hyps: Vec<Sentence>,
    refs: Vec<Vec<Sentence>>,
    /// The order (0-based: 0 = unigram) of each n-gram id.
    order: Vec<u8>,
}

/// Interns words and n-grams while building sentences. An n-gram's id is looked up from its
/// (n-1)-gram prefix id and its last word, so every key is one integer.
#[derive(Default)]
struct Interner<'a> {
    words: FastMap<&'a str, u32>,
    /// Unigram id per word id.
    unigrams: Vec<u32>,
    /// (prefix id << 32 | word id) -> n-gram id, n = 2..4.
    longer: FastMap<u64, u32>,
    order: Vec<u8>,
    ids: Vec<u32>,
    prev: Vec<u32>,
    tmp: Vec<u32>,
}

impl<'a> Interner<'a> {
    fn new_gram(order: &mut Vec<u8>, k: usize) -> u32 {
        order.push(k as u8);
        order.len() as u32 - 1
    }

    fn sentence(&mut self, s: &'a str) -> Sentence {
        self.ids.clear();
        for w in py_split(s) {
            let n = self.words.len() as u32;
            let id = *self.words.entry(w).or_insert(n);
            if id as usize == self.unigrams.len() {
                self.unigrams.push(Self::new_gram(&mut self.order, 0));
            }
            self.ids.push(id);
        }
        self.tmp.clear();
        // prev[i]: id of the (k-1)-gram starting at word i
        self.prev.clear();
        self.prev.extend(self.ids.iter().map(|&w| self.unigrams[w as usize]));
        self.tmp.extend_from_slice(&self.prev);
        for k in 1..4usize {
            if self.ids.len() <= k {
                break;
            }
            for i in 0..self.ids.len() - k {
                let key = (self.prev[i] as u64) << 32 | self.ids[i + k] as u64;
                let order = &mut self.order;
                let id = *self.longer.entry(key).or_insert_with(|| Self::new_gram(order, k));
                self.prev[i] = id;
                self.tmp.push(id);
            }
            self.prev.truncate(self.ids.len() - k);
        }
        self.tmp.sort_unstable();
        let mut grams: Vec<(u32, u32)> = Vec::with_capacity(self.tmp.len());
        for &g in self.tmp.iter() {
            match grams.last_mut() {
                Some((last, c)) if *last == g => *c += 1,
                _ => grams.push((g, 1)),
            }
        }
        Sentence { grams, words: self.ids.len() }
    }
}

impl Corpus {
    fn new(items: &[Item]) -> Corpus {
        let mut interner = Interner::default();
        let mut hyps = Vec::with_capacity(items.len());
        let mut refs = Vec::with_capacity(items.len());
        for item in items {
            hyps.push(interner.sentence(item.hyp));
            refs.push(item.refs.iter().map(|r| interner.sentence(r)).collect());
        }
        Corpus { hyps, refs, order: interner.order }
    }
}

/// Calls `f(a_value, b_value)` for every id present in both sorted lists.
fn merge_join<A: Copy, B: Copy>(a: &[(u32, A)], b: &[(u32, B)], mut f: impl FnMut(u32, A, B)) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                f(a[i].0, a[i].1, b[j].1);
                i += 1;
                j += 1;
            }
        }
    }
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
    bleu_of_corpus(&Corpus::new(items))
}

fn bleu_of_corpus(corpus: &Corpus) -> BleuResult {
    let mut total = BleuCounts { testlen: 0, reflen: 0, guess: [0; 4], correct: [0; 4] };
    let mut per_item = Vec::with_capacity(corpus.hyps.len());
    let mut all: Vec<(u32, u32)> = Vec::new();
    for (hyp, refs) in corpus.hyps.iter().zip(&corpus.refs) {
        // maxref(g): the largest count of g in any single reference
        all.clear();
        for r in refs {
            all.extend_from_slice(&r.grams);
        }
        all.sort_unstable();
        let mut maxref: Vec<(u32, u32)> = Vec::with_capacity(all.len());
        for &(g, c) in &all {
            match maxref.last_mut() {
                Some((last, m)) if *last == g => *m = (*m).max(c),
                _ => maxref.push((g, c)),
            }
        }
        let testlen = hyp.words as u64;
        let reflen = refs
            .iter()
            .map(|r| (r.words as u64).abs_diff(testlen) * (1 << 32) + r.words as u64)
            .min()
            .map_or(0, |key| key & 0xffff_ffff);
        let mut c = BleuCounts { testlen, reflen, guess: [0; 4], correct: [0; 4] };
        for (k, g) in c.guess.iter_mut().enumerate() {
            *g = testlen.saturating_sub(k as u64);
        }
        merge_join(&hyp.grams, &maxref, |g, n, m| {
            c.correct[corpus.order[g as usize] as usize] += n.min(m) as u64;
        });
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
    cider_d_of_corpus(&Corpus::new(items))
}

fn cider_d_of_corpus(corpus: &Corpus) -> (f64, Vec<f64>) {
    const SIGMA: f64 = 6.0;
    // document frequency: in how many images' reference sets each n-gram occurs
    let mut df = vec![0u32; corpus.order.len()];
    let mut seen: Vec<u32> = Vec::new();
    for refs in &corpus.refs {
        seen.clear();
        for r in refs {
            seen.extend(r.grams.iter().map(|g| g.0));
        }
        seen.sort_unstable();
        seen.dedup();
        for &g in &seen {
            df[g as usize] += 1;
        }
    }
    let ref_len = (corpus.hyps.len() as f64).ln();
    let idf: Vec<f64> = df.iter().map(|&d| ref_len - (d as f64).max(1.0).ln()).collect();
    let order = &corpus.order;
    // pycocoevalcap's `counts2vec`: tf-idf weights, their norm per order, and the bigram count
    let vec_of = |s: &Sentence| {
        let mut norm = [0.0f64; 4];
        let mut length = 0u32;
        let vec: Vec<(u32, f64)> = s
            .grams
            .iter()
            .map(|&(g, tf)| {
                let w = tf as f64 * idf[g as usize];
                let n = order[g as usize] as usize;
                norm[n] += w * w;
                if n == 1 {
                    length += tf;
                }
                (g, w)
            })
            .collect();
        (vec, norm.map(f64::sqrt), length)
    };
    let mut scores = Vec::with_capacity(corpus.hyps.len());
    for (hyp, refs) in corpus.hyps.iter().zip(&corpus.refs) {
        let (vh, nh, lh) = vec_of(hyp);
        let mut score = [0.0f64; 4];
        for r in refs {
            let (vr, nr, lr) = vec_of(r);
            let delta = lh as f64 - lr as f64;
            let mut val = [0.0f64; 4];
            merge_join(&vh, &vr, |g, wh, wr| val[order[g as usize] as usize] += wh.min(wr) * wr);
            for n in 0..4 {
                if nh[n] != 0.0 && nr[n] != 0.0 {
                    val[n] /= nh[n] * nr[n];
                }
                val[n] *= std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
                score[n] += val[n];
            }
        }
        let avg = score.iter().sum::<f64>() / 4.0;
        scores.push(avg / refs.len() as f64 * 10.0);
    }
    (mean(&scores), scores)
}

/// All three metrics of one evaluation set, as `COCOEvalCap.evaluate` runs them (minus METEOR
/// and SPICE): the n-gram tables are built once and ROUGE-L runs on a second thread.
pub struct AllScores {
    pub bleu: BleuResult,
    pub rouge_l: (f64, Vec<f64>),
    pub cider_d: (f64, Vec<f64>),
}

pub fn all_scores(items: &[Item]) -> AllScores {
    std::thread::scope(|scope| {
        let rouge = scope.spawn(|| rouge_l(items));
        let corpus = Corpus::new(items);
        let (cider_d, bleu) = std::thread::scope(|inner| {
            let cider = inner.spawn(|| cider_d_of_corpus(&corpus));
            let bleu = bleu_of_corpus(&corpus);
            (cider.join().expect("CIDEr-D does not panic"), bleu)
        });
        AllScores { bleu, rouge_l: rouge.join().expect("ROUGE-L does not panic"), cider_d }
    })
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
