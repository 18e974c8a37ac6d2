//! Prompt assembly: where each image's query tokens go among the language model's tokens.
//!
//! - `vicuna_v1` (VistaLLM): `{system} USER: {instruction} ASSISTANT:` with one `<image>` marker
//!   per image in the instruction (images without markers go first in the user turn); each
//!   marker is replaced by that image's query tokens. The Q-Former sees the instruction without
//!   markers.
//! - `raw` (InstructBLIP exactly): every image's query tokens, then the tokenized instruction
//!   (with BOS); the Q-Former sees the instruction verbatim. InstructBLIP has no image marker:
//!   `<image>` markers (which `vista_prompt` writes) are removed first, so the eval jobs' prompts
//!   serve both templates.
//! - `llava` (llava-hf's chat template): `USER: {instruction} ASSISTANT:`, each image without a
//!   marker first as `<image>` and a newline; a LLaVA checkpoint also reads `vicuna_v1` this way
//!   and `raw` as the same text without the chat turn.

use tokenizers::Tokenizer;

pub const SYSTEM: &str = "A chat between a curious user and an artificial intelligence assistant. \
The assistant gives helpful, detailed, and polite answers to the user's questions.";

pub const IMAGE_MARKER: &str = "<image>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    VicunaV1,
    Raw,
    Llava,
    Qwen,
}

impl Template {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "vicuna_v1" | "vicuna_v1.1" => Ok(Template::VicunaV1),
            "raw" => Ok(Template::Raw),
            "llava" => Ok(Template::Llava),
            "qwen" => Ok(Template::Qwen),
            other => Err(format!(
                "unknown prompt template `{other}` (expected `vicuna_v1`, `raw`, `llava` or `qwen`)"
            )),
        }
    }

    /// VistaLLM pads images to a white square first; InstructBLIP resizes them as they are.
    pub fn pads_to_square(self) -> bool {
        self == Template::VicunaV1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Tokens(Vec<u32>),
    /// The query tokens of the row's image with this index.
    Image(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub pieces: Vec<Piece>,
    pub qformer_text: String,
}

impl Prompt {
    /// Token ids with each image expanded to `queries` copies of `placeholder` (the layout
    /// transformers' processor produces).
    pub fn flat_ids(&self, queries: usize, placeholder: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Tokens(t) => out.extend_from_slice(t),
                Piece::Image(_) => out.extend(std::iter::repeat_n(placeholder, queries)),
            }
        }
        out
    }

    pub fn len(&self, queries: usize) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Tokens(t) => t.len(),
                Piece::Image(_) => queries,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// The Vicuna v1.1 text of one turn, with one marker per image.
pub fn vicuna_text(instruction: &str, images: usize) -> Result<String, String> {
    let markers = instruction.matches(IMAGE_MARKER).count();
    let instruction = if markers == 0 && images > 0 {
        format!("{} {instruction}", IMAGE_MARKER.repeat(images))
    } else if markers != images {
        return Err(format!(
            "the instruction has {markers} {IMAGE_MARKER} markers but the row has {images} images"
        ));
    } else {
        instruction.to_string()
    };
    Ok(format!("{SYSTEM} USER: {instruction} ASSISTANT:"))
}

/// The instruction as the Q-Former reads it in `vicuna_v1` mode: markers removed.
/// The instruction with one marker per image: images without markers go first, each on its own
/// line (LLaVA's layout).
pub fn llava_instruction(instruction: &str, images: usize) -> Result<String, String> {
    let markers = instruction.matches(IMAGE_MARKER).count();
    if markers == 0 {
        Ok(format!("{}{instruction}", format!("{IMAGE_MARKER}\n").repeat(images)))
    } else if markers != images {
        Err(format!(
            "the instruction has {markers} {IMAGE_MARKER} markers but the row has {images} images"
        ))
    } else {
        Ok(instruction.to_string())
    }
}

/// Qwen-VL's image: its marker token between the vision delimiters.
pub const QWEN_IMAGE: &str = "<|vision_start|><|image_pad|><|vision_end|>";

/// The instruction with Qwen-VL's image blocks: one per `<image>` marker, those without a marker
/// first; in Qwen3-VL's chat template for one user turn when `chat`.
pub fn qwen_text(instruction: &str, images: usize, chat: bool) -> Result<String, String> {
    let markers = instruction.matches(IMAGE_MARKER).count();
    let body = if markers == 0 {
        format!("{}{instruction}", QWEN_IMAGE.repeat(images))
    } else if markers != images {
        return Err(format!(
            "the instruction has {markers} {IMAGE_MARKER} markers but the row has {images} images"
        ));
    } else {
        instruction.replace(IMAGE_MARKER, QWEN_IMAGE)
    };
    Ok(if chat {
        format!("<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n")
    } else {
        body
    })
}

pub fn llava_text(instruction: &str, images: usize) -> Result<String, String> {
    Ok(format!("USER: {} ASSISTANT:", llava_instruction(instruction, images)?))
}

pub fn qformer_text(instruction: &str) -> String {
    instruction.replace(IMAGE_MARKER, " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The instruction in `raw` mode: verbatim, or without its `<image>` markers when it has some.
pub fn raw_text(instruction: &str) -> String {
    if instruction.contains(IMAGE_MARKER) {
        qformer_text(instruction)
    } else {
        instruction.to_string()
    }
}

fn encode(tok: &Tokenizer, text: &str, special: bool) -> Result<Vec<u32>, String> {
    tok.encode(text, special)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| format!("cannot tokenize the prompt: {e}"))
}

pub fn build(
    template: Template,
    instruction: &str,
    images: usize,
    tok: &Tokenizer,
) -> Result<Prompt, String> {
    match template {
        Template::Raw => {
            let text = raw_text(instruction);
            let mut pieces: Vec<Piece> = (0..images).map(Piece::Image).collect();
            pieces.push(Piece::Tokens(encode(tok, &text, true)?));
            Ok(Prompt { pieces, qformer_text: text })
        }
        Template::VicunaV1 => marked(&vicuna_text(instruction, images)?, instruction, images, tok),
        // Templates of other families: an InstructBLIP/VistaLLM checkpoint reads both as LLaVA's
        // layout (its image tokens at the markers).
        Template::Llava | Template::Qwen => {
            marked(&llava_text(instruction, images)?, instruction, images, tok)
        }
    }
}

/// The prompt of `text`, whose `<image>` markers stand for the row's images in order.
pub fn marked(
    text: &str,
    instruction: &str,
    images: usize,
    tok: &Tokenizer,
) -> Result<Prompt, String> {
    let pieces = match tok.token_to_id(IMAGE_MARKER) {
        Some(marker) => split_on_marker(encode(tok, text, true)?, marker),
        // A vocabulary without the marker: tokenize the text between markers apart.
        None => {
            let mut pieces = Vec::new();
            for (i, part) in text.split(IMAGE_MARKER).enumerate() {
                if i > 0 {
                    pieces.push(Piece::Image(i - 1));
                }
                let ids = encode(tok, part, i == 0)?;
                if !ids.is_empty() {
                    pieces.push(Piece::Tokens(ids));
                }
            }
            pieces
        }
    };
    let found = pieces.iter().filter(|p| matches!(p, Piece::Image(_))).count();
    if found != images {
        return Err(format!(
                    "the tokenized prompt has {found} {IMAGE_MARKER} tokens but the row has {images} images"
                ));
    }
    Ok(Prompt { pieces, qformer_text: qformer_text(instruction) })
}

/// Token ids with each `marker` token standing for the next image.
pub fn split_on_marker(ids: Vec<u32>, marker: u32) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut run = Vec::new();
    let mut image = 0;
    for id in ids {
        if id == marker {
            if !run.is_empty() {
                pieces.push(Piece::Tokens(std::mem::take(&mut run)));
            }
            pieces.push(Piece::Image(image));
            image += 1;
        } else {
            run.push(id);
        }
    }
    if !run.is_empty() {
        pieces.push(Piece::Tokens(run));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_without_markers_go_first() {
        let t = vicuna_text("What is it?", 2).unwrap();
        assert!(t.ends_with("USER: <image><image> What is it? ASSISTANT:"), "{t}");
        assert!(t.starts_with(SYSTEM));
    }

    #[test]
    fn marker_count_must_match_images() {
        let err = vicuna_text("Compare <image> and <image>.", 3).unwrap_err();
        assert!(err.contains("2 <image> markers but the row has 3 images"), "{err}");
    }

    #[test]
    fn qformer_text_drops_markers() {
        assert_eq!(
            qformer_text("Describe this image <image> as simply as possible."),
            "Describe this image as simply as possible."
        );
    }

    #[test]
    fn raw_drops_markers_and_keeps_plain_instructions_verbatim() {
        assert_eq!(
            raw_text("Describe this image <image> briefly."),
            "Describe this image briefly."
        );
        assert_eq!(
            raw_text("Question: what is it?  Short answer:"),
            "Question: what is it?  Short answer:"
        );
    }

    #[test]
    fn templates_parse() {
        assert_eq!(Template::parse("raw").unwrap(), Template::Raw);
        assert_eq!(Template::parse("llava").unwrap(), Template::Llava);
        let err = Template::parse("chatml").unwrap_err();
        assert_eq!(
            err,
            "unknown prompt template `chatml` (expected `vicuna_v1`, `raw`, `llava` or `qwen`)"
        );
    }

    #[test]
    fn llava_puts_unmarked_images_first_on_their_own_lines() {
        assert_eq!(
            llava_text("What is it?", 2).unwrap(),
            "USER: <image>\n<image>\nWhat is it? ASSISTANT:"
        );
        assert_eq!(
            llava_text("Is <image> a cat?", 1).unwrap(),
            "USER: Is <image> a cat? ASSISTANT:"
        );
        let err = llava_text("<image> or <image>", 1).unwrap_err();
        assert_eq!(err, "the instruction has 2 <image> markers but the row has 1 images");
    }
}
