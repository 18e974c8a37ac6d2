//! The recorded cases of every tiny checkpoint (every family) on another device and dtype,
//! against the same code on the CPU in f32. `scripts/gpu_check.sh` runs it on `cuda:0` in f32 and
//! bf16; its dry run runs it on the CPU in bf16. Settings: `VISTA_DEVICE` (default `cpu`),
//! `VISTA_DTYPE` (default `f32`). One JSON line per case on stdout.
//!
//! Tolerances, relative to the largest absolute logit of the case on the CPU:
//! - f32: image tokens and logits within 1e-3; greedy, stop-token and beam outputs identical.
//! - bf16/f16 (8/11-bit mantissas through every layer): within 0.08; outputs are reported (a
//!   near-tie may flip a token), not required equal.

use super::llava::{llava_rows, LLAVA};
use super::llava_next::{next_inputs, NEXT};
use super::qwen3_vl::QWEN;
use super::*;
use vista::model::llava::LlavaModel;
use vista::model::qwen3_vl::Qwen3VlModel;

/// Image tokens [images, T, hidden] and prompt logits [rows, width, vocab] with each row's padding.
struct Forward {
    tokens: Tensor,
    logits: Tensor,
    pads: Vec<usize>,
}

fn case_pixels(tensors: &HashMap<String, Tensor>, case: &Value, key: &str) -> Vec<Tensor> {
    case["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row["images"].as_array().unwrap().iter())
        .map(|n| tensors[&format!("{key}.{}", n.as_str().unwrap())].clone())
        .collect()
}

fn rows_of(case: &Value) -> impl Iterator<Item = (&str, usize)> {
    case["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["instruction"].as_str().unwrap(), r["images"].as_array().unwrap().len()))
}

fn on(t: Tensor, device: &Device, dtype: DType) -> Tensor {
    t.to_device(device).unwrap().to_dtype(dtype).unwrap()
}

fn blip_forward(m: &VistaModel, tensors: &HashMap<String, Tensor>, case: &Value) -> Forward {
    let tmpl = template(case);
    let key = if tmpl == Template::Raw { "pixel_values" } else { "pixel_values_square" };
    let pixels =
        on(Tensor::stack(&case_pixels(tensors, case, key), 0).unwrap(), &m.device, m.dtype);
    let mut prompts = Vec::new();
    let mut qrows = Vec::new();
    for (instruction, n) in rows_of(case) {
        let prompt = m.prompt(tmpl, instruction, n).unwrap();
        qrows.extend(std::iter::repeat_n(m.qformer_ids(&prompt.qformer_text).unwrap(), n));
        prompts.push(prompt);
    }
    let (qids, qmask) = m.qformer_batch(&qrows).unwrap();
    let tokens = m.net.image_tokens(&pixels, &qids, &qmask).unwrap();
    let (logits, pads) = padded_logits(&m.net.llm, &blip_rows(m, &prompts, &tokens));
    Forward { tokens, logits, pads }
}

fn llava_forward(m: &LlavaModel, tensors: &HashMap<String, Tensor>, case: &Value) -> Forward {
    let pixels = Tensor::stack(&case_pixels(tensors, case, "pixel_values"), 0).unwrap();
    let pixels = on(pixels, &m.device, m.dtype);
    let prompts: Vec<Prompt> =
        rows_of(case).map(|(i, n)| m.prompt(Template::Llava, i, n).unwrap()).collect();
    let tokens = m.net.image_tokens(&pixels).unwrap();
    let (logits, pads) = padded_logits(&m.net.llm, &llava_rows(m, &prompts, &tokens));
    Forward { tokens, logits, pads }
}

/// Largest absolute difference over the unpadded positions, and the largest absolute reference
/// logit there.
fn logit_gap(reference: &Forward, other: &Forward) -> (f32, f32) {
    let width = reference.logits.dim(1).unwrap();
    let mut gap = 0f32;
    let mut scale = 0f32;
    for (r, &p) in reference.pads.iter().enumerate() {
        let a = reference.logits.get(r).unwrap().narrow(0, p, width - p).unwrap();
        let b = other.logits.get(r).unwrap().narrow(0, p, width - p).unwrap();
        gap = gap.max(max_abs_diff(&a, &b.to_device(&Device::Cpu).unwrap()));
        let zero = a.zeros_like().unwrap();
        scale = scale.max(max_abs_diff(&a, &zero));
    }
    (gap, scale)
}

/// (image tokens, logits), each (max abs difference, max abs reference value).
type Gaps = Option<((f32, f32), (f32, f32))>;

/// One checkpoint's recorded cases, on the CPU in f32 and on `on` (device, dtype): each case's
/// key, the forward-pass gaps where the fixture records that pass (`recorded`), and whether
/// `outputs` are identical.
fn compare<M>(
    expected: &Value,
    recorded: impl Fn(&str) -> bool,
    load: impl Fn(&str, &str) -> M,
    on: (&str, &str),
    outputs: impl Fn(&M, &Value, &[GenerateRequest]) -> Vec<Result<Vec<u32>, String>>,
    forward: impl Fn(&M, &Value, &[GenerateRequest]) -> Forward,
) -> Vec<(String, Gaps, bool)> {
    let (cpu, dev) = (load("cpu", "f32"), load(on.0, on.1));
    let scale_of = |t: &Tensor| max_abs_diff(t, &t.zeros_like().unwrap());
    expected["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, case)| {
            let reqs = requests(case);
            let same = outputs(&cpu, case, &reqs) == outputs(&dev, case, &reqs);
            let gaps = recorded(key).then(|| {
                let (a, b) = (forward(&cpu, case, &reqs), forward(&dev, case, &reqs));
                let gap = max_abs_diff(&a.tokens, &b.tokens.to_device(&Device::Cpu).unwrap());
                ((gap, scale_of(&a.tokens)), logit_gap(&a, &b))
            });
            (key.clone(), gaps, same)
        })
        .collect()
}

#[test]
#[ignore]
fn device_parity() {
    let device = std::env::var("VISTA_DEVICE").unwrap_or_else(|_| "cpu".into());
    let dtype = std::env::var("VISTA_DTYPE").unwrap_or_else(|_| "f32".into());
    let exact = vista::model::parse_dtype(&dtype).unwrap() == DType::F32;
    let tolerance = if exact { 1e-3 } else { 0.08 };
    let mut failures = Vec::new();
    let mut report = |model: &str, key: &str, gaps: Gaps, same: bool| {
        let within = |(gap, scale): (f32, f32)| gap <= tolerance * scale.max(1.0);
        let ok = gaps.is_none_or(|(t, l)| within(t) && within(l)) && (same || !exact);
        println!(
            "{}",
            serde_json::json!({
                "check": "parity", "model": model, "case": key, "device": device, "dtype": dtype,
                "image_tokens_max_abs_diff": gaps.map(|g| g.0.0),
                "logits_max_abs_diff": gaps.map(|g| g.1.0),
                "logits_max_abs": gaps.map(|g| g.1.1), "tolerance_relative": tolerance,
                "outputs_identical": same, "ok": ok,
            })
        );
        if !ok {
            failures.push(format!("{model} {key}"));
        }
    };
    let on = (device.as_str(), dtype.as_str());
    let results = [
        CHECKPOINTS
            .iter()
            .flat_map(|&name| {
                let f = fixture(name);
                compare(
                    &f.expected,
                    |key| f.tensors.contains_key(&format!("{key}.logits")),
                    |device, dtype| VistaModel::load(&root().join(name), device, dtype).unwrap(),
                    on,
                    |m, case, reqs| {
                        let opts = options(case, m.decode_options(&GenerateSettings::default()));
                        m.generate_ids(reqs, template(case), &opts)
                    },
                    |m, case, _| blip_forward(m, &f.tensors, case),
                )
                .into_iter()
                .map(move |r| (name, r))
            })
            .collect::<Vec<_>>(),
        LLAVA
            .iter()
            .chain(&NEXT)
            .flat_map(|&name| {
                let f = super::llava::llava(name);
                compare(
                    &f.expected,
                    |key| f.tensors.contains_key(&format!("{key}.logits")),
                    |device, dtype| LlavaModel::load(&root().join(name), device, dtype).unwrap(),
                    on,
                    |m, case, reqs| {
                        let opts =
                            options(case, m.text.decode_options(&GenerateSettings::default()));
                        m.generate_ids(reqs, Template::Llava, &opts)
                    },
                    |m, case, _| {
                        if m.anyres.is_none() {
                            return llava_forward(m, &f.tensors, case);
                        }
                        let (tokens, rows) = next_inputs(m, &f, case);
                        let (logits, pads) = padded_logits(&m.net.llm, &rows);
                        Forward { tokens, logits, pads }
                    },
                )
                .into_iter()
                .map(move |r| (name, r))
            })
            .collect(),
        QWEN.iter()
            .flat_map(|&name| {
                let f = super::qwen3_vl::qwen(name);
                compare(
                    &f.expected,
                    |key| f.tensors.contains_key(&format!("{key}.logits")),
                    |device, dtype| Qwen3VlModel::load(&root().join(name), device, dtype).unwrap(),
                    on,
                    |m, case, reqs| {
                        let opts =
                            options(case, m.text.decode_options(&GenerateSettings::default()));
                        m.generate_ids(reqs, Template::Qwen, &opts)
                    },
                    |m, _, reqs| {
                        let patches: Vec<_> = reqs
                            .iter()
                            .flat_map(|r| r.images.iter().map(|b| m.patches(b, u64::MAX).unwrap()))
                            .collect();
                        let tokens = m.vision.forward(&patches, &m.device, m.dtype).unwrap().0;
                        let (logits, pads) = m.prompt_logits(reqs, Template::Qwen).unwrap();
                        Forward { tokens, logits, pads }
                    },
                )
                .into_iter()
                .map(move |r| (name, r))
            })
            .collect(),
    ];
    for (name, (key, gaps, same)) in results.into_iter().flatten() {
        report(name, &key, gaps, same);
    }
    assert!(failures.is_empty(), "outside the tolerance on {device} {dtype}: {failures:?}");
}
