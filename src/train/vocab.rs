//! The tokenizers of a freshly trained model, learned from its own training texts: a LLaMA-style
//! byte-fallback BPE for the decoder, with VistaLLM's task and coordinate tokens (`<bin_0>` ..
//! `<bin_1000>`, `<b_st>`, `<m_sep>`, ...) as special tokens, and a BERT WordPiece for the
//! Q-Former. Both are saved as `tokenizer.json` files that transformers reads.
//!
//! A Metaspace pre-tokenizer that adds `▁` only at the start of the text keeps the space between
//! two coordinate tokens a single token (the normaliser-based LLaMA layout makes it two), which
//! is a third of every mask answer.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::{BertNormalizer, Replace};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, Tokenizer};

/// VistaLLM's special tokens besides the coordinate bins, in the order of its tokenizer.
pub const TASK_TOKENS: &[&str] = &[
    "<image>",
    "<im_patch>",
    "<im_start>",
    "<im_end>",
    "<b_st>",
    "<b_sep>",
    "<b_ed>",
    "<p_st>",
    "<p_sep>",
    "<p_ed>",
    "<m_st>",
    "<m_sep>",
    "<m_ed>",
];

/// Coordinate bins `<bin_0>` ..= `<bin_{BINS}>`.
pub const BINS: usize = 1000;

const QFORMER_SPECIALS: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

fn err(e: impl std::fmt::Display) -> String {
    format!("tokenizer training: {e}")
}

fn special(t: &str) -> AddedToken {
    AddedToken::from(t.to_string(), true)
}

/// The decoder's tokenizer: `<unk>`, `<s>`, `</s>`, the 256 byte tokens, `merges` learned BPE
/// tokens, then the task and bin tokens.
pub fn train_text_tokenizer(texts: &[String], vocab_size: usize) -> Result<Tokenizer, String> {
    let mut specials: Vec<AddedToken> =
        ["<unk>", "<s>", "</s>"].iter().map(|t| special(t)).collect();
    // Byte tokens make every string encodable, as in LLaMA's vocabulary.
    specials.extend((0..=255u8).map(|b| AddedToken::from(format!("<0x{b:02X}>"), true)));
    let bpe = BPE::builder()
        .unk_token("<unk>".into())
        .byte_fallback(true)
        .fuse_unk(true)
        .build()
        .map_err(err)?;
    let mut tok = Tokenizer::new(bpe);
    let metaspace = Metaspace::new('▁', PrependScheme::First, true);
    tok.with_pre_tokenizer(Some(metaspace));
    let mut trainer = TrainerWrapper::from(
        BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .build(),
    );
    // Task and bin tokens are not words: strip them so that BPE does not learn their pieces.
    let plain: Vec<String> = texts.iter().map(|t| strip_markup(t)).collect();
    tok.train(&mut trainer, plain.iter()).map_err(err)?;
    let mut added: Vec<AddedToken> = TASK_TOKENS.iter().map(|t| special(t)).collect();
    added.extend((0..=BINS).map(|k| special(&format!("<bin_{k}>"))));
    tok.add_special_tokens(added).map_err(err)?;
    let bos = tok.token_to_id("<s>").ok_or_else(|| err("no <s>"))?;
    tok.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("<s> $A")
            .map_err(err)?
            .try_pair("<s> $A <s> $B")
            .map_err(err)?
            .special_tokens(vec![("<s>", bos)])
            .build()
            .map_err(err)?,
    ));
    tok.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(vec![
        DecoderWrapper::Replace(Replace::new("▁", " ").map_err(err)?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
        DecoderWrapper::Strip(Strip::new(' ', 1, 0)),
    ]))));
    Ok(tok)
}

/// The Q-Former's BERT tokenizer (lower-cased WordPiece): the `vocab_size` most frequent words
/// of the texts, plus every character alone and as a `##` continuation, so any word still
/// encodes. (tokenizers' WordPiece trainer breaks ties in hash-map order, so its vocabulary
/// differs from run to run; a closed synthetic vocabulary needs no learned merges anyway.)
pub fn train_qformer_tokenizer(texts: &[String], vocab_size: usize) -> Result<Tokenizer, String> {
    use tokenizers::{
        NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
        PreTokenizer,
    };
    let normalizer = BertNormalizer::new(true, true, None, true);
    let mut words: HashMap<String, usize> = HashMap::new();
    let mut chars: BTreeSet<String> = BTreeSet::new();
    for text in texts {
        let mut n = NormalizedString::from(strip_markup(text));
        normalizer.normalize(&mut n).map_err(err)?;
        let mut pre = PreTokenizedString::from(n.get());
        BertPreTokenizer.pre_tokenize(&mut pre).map_err(err)?;
        for (word, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *words.entry(word.to_string()).or_default() += 1;
            for c in word.chars() {
                chars.insert(c.to_string());
                chars.insert(format!("##{c}"));
            }
        }
    }
    let mut ranked: Vec<(String, usize)> = words.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut tokens: Vec<String> = QFORMER_SPECIALS.iter().map(|t| t.to_string()).collect();
    tokens.extend(chars);
    let room = vocab_size.saturating_sub(tokens.len());
    let mut common: Vec<String> =
        ranked.into_iter().map(|(w, _)| w).filter(|w| w.chars().count() > 1).take(room).collect();
    common.sort();
    tokens.extend(common);
    // WordPiece's vocabulary map type is private to tokenizers; its vocab.txt reader is not.
    let file = std::env::temp_dir().join(format!(
        "vista-qformer-vocab-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&file, tokens.join("\n") + "\n").map_err(err)?;
    let wp = WordPiece::from_file(&file.to_string_lossy()).unk_token("[UNK]".into()).build();
    let _ = std::fs::remove_file(&file);
    let mut tok = Tokenizer::new(wp.map_err(err)?);
    tok.with_normalizer(Some(normalizer)).map_err(err)?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.add_special_tokens(QFORMER_SPECIALS.iter().map(|t| special(t)).collect::<Vec<_>>())
        .map_err(err)?;
    let id = |t: &str| tok.token_to_id(t).ok_or_else(|| err(format!("no {t}")));
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    Ok(tok)
}

/// The text with VistaLLM's `<...>` tokens replaced by spaces.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => {
                out.push(' ');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Writes `tokenizer.json` and the `tokenizer_config.json` naming its special tokens.
pub fn save_text_tokenizer(tok: &Tokenizer, dir: &Path) -> Result<(), String> {
    tok.save(dir.join("tokenizer.json"), false).map_err(err)?;
    let config = serde_json::json!({
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<unk>",
        "add_bos_token": true,
        "add_eos_token": false,
        "extra_special_tokens": TASK_TOKENS,
        "model_max_length": 2048,
        "tokenizer_class": "LlamaTokenizerFast",
        "processor_class": "InstructBlipProcessor",
    });
    write_json(&dir.join("tokenizer_config.json"), &config)
}

/// Writes `qformer_tokenizer/tokenizer.json` and its `tokenizer_config.json`.
pub fn save_qformer_tokenizer(tok: &Tokenizer, dir: &Path) -> Result<(), String> {
    let sub = dir.join("qformer_tokenizer");
    std::fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
    tok.save(sub.join("tokenizer.json"), false).map_err(err)?;
    let config = serde_json::json!({
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]", "do_lower_case": true,
        "model_max_length": 512, "tokenizer_class": "BertTokenizerFast",
    });
    write_json(&sub.join("tokenizer_config.json"), &config)
}

/// Pretty JSON with a final newline (the layout of the shipped model's files), atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n";
    crate::output::write_bytes_atomic(path, text.as_bytes()).map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let mut t = Vec::new();
        for c in ["red", "green", "blue"] {
            for s in ["circle", "square", "star"] {
                t.push(format!("Find the {c} {s} in <image>. Output [x0, y0, x1, y1]."));
                t.push(format!("<b_st><bin_12> <bin_300> <bin_999> <bin_0><b_ed> a {c} {s}"));
            }
        }
        t
    }

    #[test]
    fn coordinates_round_trip_with_one_token_per_space() {
        let tok = train_text_tokenizer(&corpus(), 400).unwrap();
        let text = "<m_st><bin_1> <bin_2><m_sep><bin_1000> <bin_0><m_ed>";
        let enc = tok.encode(text, false).unwrap();
        assert_eq!(enc.get_ids().len(), 9, "{:?}", enc.get_tokens());
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);
        let words = tok.encode("a blue star", false).unwrap();
        assert_eq!(tok.decode(words.get_ids(), false).unwrap(), "a blue star");
        assert!(words.get_ids().len() <= 3, "{:?}", words.get_tokens());
        // Anything outside the training text still encodes, through the byte tokens.
        let odd = tok.encode("ünseen", false).unwrap();
        assert_eq!(tok.decode(odd.get_ids(), false).unwrap(), "ünseen");
    }

    #[test]
    fn training_is_deterministic() {
        let a = train_text_tokenizer(&corpus(), 400).unwrap().to_string(false).unwrap();
        let b = train_text_tokenizer(&corpus(), 400).unwrap().to_string(false).unwrap();
        assert_eq!(a, b);
        let a = train_qformer_tokenizer(&corpus(), 200).unwrap().to_string(false).unwrap();
        let b = train_qformer_tokenizer(&corpus(), 200).unwrap().to_string(false).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn qformer_tokenizer_keeps_words_whole_and_spells_the_rest() {
        let tok = train_qformer_tokenizer(&corpus(), 200).unwrap();
        let enc = tok.encode("Find the Blue star", true).unwrap();
        assert_eq!(enc.get_tokens(), ["[CLS]", "find", "the", "blue", "star", "[SEP]"]);
        let enc = tok.encode("bluer", false).unwrap();
        assert_eq!(enc.get_tokens(), ["blue", "##r"]);
    }
}
