//! `vista generate`: one question about one or more images.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    /// Model directory (Hugging Face InstructBLIP layout).
    #[arg(long)]
    model: PathBuf,
    /// An image file; repeat for multi-image prompts (one `<image>` marker each).
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// End tokens are not chosen before this many tokens.
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// argmax | median: how greedy decoding picks a coordinate token `<bin_k>`
    #[arg(long, default_value = "argmax")]
    coord_decode: String,
    /// vicuna_v1 | raw | llava | qwen (LLaVA and Qwen3-VL read vicuna_v1 as their own chat turn)
    #[arg(long, default_value = "vicuna_v1")]
    template: String,
}

/// Checks the settings as `SET vista.*` would, runs the model and prints its answer.
pub(crate) async fn generate(a: GenerateArgs) -> Result<ExitCode> {
    // The same checks as `SET vista.*` (a beam width of 0, a top_p of 2 are refused).
    let mut config = vista_udfs::VistaConfig::default();
    for (k, v) in [
        ("max_new_tokens", a.max_new_tokens.to_string()),
        ("min_new_tokens", a.min_new_tokens.to_string()),
        ("num_beams", a.num_beams.to_string()),
        ("temperature", a.temperature.to_string()),
        ("top_p", a.top_p.to_string()),
        ("seed", a.seed.to_string()),
        ("prompt_template", a.template.clone()),
        ("coord_decode", a.coord_decode.clone()),
    ] {
        datafusion::config::ExtensionOptions::set(&mut config, k, &v)
            .map_err(|e| anyhow::anyhow!("{}", e.strip_backtrace()))?;
    }
    let settings = vista_udfs::generate::settings(&config)
        .map_err(|e| anyhow::anyhow!("{}", e.strip_backtrace()))?;
    let text = tokio::task::spawn_blocking(move || {
        vista::model::generate_cli(&a.model, &a.device, &a.dtype, &a.images, &a.prompt, &settings)
    })
    .await??;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
