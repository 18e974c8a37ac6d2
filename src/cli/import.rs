//! `vista import`: public annotation formats to the samples layout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ImportCommand {
    /// COCO captions (captions_*.json) -> one caption sample per image.
    CocoCaptions {
        annotations: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// VQAv2 questions (+ annotations) -> one vqa sample per question.
    Vqav2 {
        questions: PathBuf,
        #[arg(long)]
        annotations: Option<PathBuf>,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// COCO instances (instances_*.json) -> images, categories and instances tables (Parquet,
    /// streamed), for the curation queries; malformed records are skipped and counted.
    CocoInstances {
        annotations: PathBuf,
        /// Directory of the image files (COCO file names are relative to it).
        #[arg(long)]
        images: Option<PathBuf>,
        /// A COCO captions file of the same images, written as captions.parquet.
        #[arg(long)]
        captions: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Print nothing about skipped records (they are still counted in import_report.json).
        #[arg(long)]
        quiet: bool,
    },
    /// RefCOCO/+/g refs (JSON conversion of refs(unc).p) or gRefCOCO grefs JSON, with the COCO
    /// instances file they index -> rec/res/grec/gres samples.
    Refs {
        refs: PathBuf,
        #[arg(long)]
        instances: PathBuf,
        /// rec | res | grec | gres
        #[arg(long)]
        task: String,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// POPE question file (JSON lines: question_id, image, text, label) -> one vqa sample per
    /// question, for queries/eval_pope.sql; malformed lines are skipped and counted.
    Pope {
        questions: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// PointQA Local / LookTwice-QA / Visual7W pointing (Shikra's JSON lines: file_path,
    /// question(s), answer, bbox, point, candidates) -> pointqa samples (a question about a
    /// point or box) and pointing samples (pick one of the candidate boxes), for
    /// queries/eval_pointqa.sql; malformed lines are skipped and counted.
    Pointqa {
        questions: PathBuf,
        /// point | box: the region a PointQA question is asked about
        #[arg(long, default_value = "point")]
        query: vista::import::Query,
        /// object | super | general: which LookTwice-QA phrasing to ask
        #[arg(long, default_value = "general")]
        question: vista::import::Phrasing,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// Karpathy split file (dataset_coco.json, dataset_flickr30k.json) -> one caption sample per
    /// image (--split test keeps the Karpathy test split); malformed images skipped and counted.
    Karpathy {
        dataset: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// NLVR2 statements (dev.json, test1.json, train.json) + their image pairs under --images ->
    /// one nlvr sample per statement, images embedded; malformed lines skipped and counted.
    Nlvr2 {
        statements: PathBuf,
        #[arg(long)]
        images: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// Visual Genome region_descriptions.json -> one region_caption sample per region
    /// (streamed); malformed regions skipped and counted.
    VgRegions {
        regions: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// Co-segmentation groups: --images DIR/<group>/<image> with --masks DIR/<group>/<stem>.png
    /// (iCoSeg's layout) -> coseg samples of --group-size images; unusable images skipped.
    Coseg {
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        masks: PathBuf,
        #[arg(long, default_value_t = 2)]
        group_size: usize,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// RefCOCOg refs (JSON dump of refs(umd).p) + COCO instances -> one region_caption sample
    /// per ref, its sentences as references.
    RefsRegions {
        refs: PathBuf,
        #[arg(long)]
        instances: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
}

#[derive(clap::Args)]
pub(crate) struct ImportCommon {
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// Prefix put before COCO file names in image_path (e.g. `val2014/`).
    #[arg(long, default_value = "")]
    images_prefix: String,
    /// Keep only this split (refs) / value of the split column.
    #[arg(long)]
    split: Option<String>,
    /// Value of the source column and sample id prefix.
    #[arg(long)]
    source: Option<String>,
}

pub(crate) fn import(cmd: ImportCommand) -> Result<ExitCode> {
    use vista::import::{self, ImportOptions, RefTask};
    let opts = |c: &ImportCommon| ImportOptions {
        images_prefix: c.images_prefix.clone(),
        split: c.split.clone(),
        source: c.source.clone(),
    };
    if let ImportCommand::CocoInstances { annotations, images, captions, out, quiet } = &cmd {
        let opts = import::InstancesOptions {
            images_dir: images.clone(),
            captions: captions.clone(),
            verbose: !quiet,
        };
        let report = import::import_coco_instances(annotations, &opts, out)?;
        println!("{report}; written to {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Importers that skip malformed lines list them before the count.
    let reported = |r: import::SamplesReport| {
        r.print_skipped();
        r.samples
    };
    let (n, out) = match &cmd {
        ImportCommand::CocoCaptions { annotations, common } => {
            (import::import_coco_captions(annotations, &opts(common), &common.out)?, &common.out)
        }
        ImportCommand::Vqav2 { questions, annotations, common } => (
            import::import_vqav2(questions, annotations.as_deref(), &opts(common), &common.out)?,
            &common.out,
        ),
        ImportCommand::CocoInstances { .. } => unreachable!("handled above"),
        ImportCommand::Pope { questions, common } => {
            (reported(import::import_pope(questions, &opts(common), &common.out)?), &common.out)
        }
        ImportCommand::Pointqa { questions, query, question, common } => {
            let pq = import::PointQaOptions { query: *query, phrasing: *question };
            (
                reported(import::import_pointqa(questions, pq, &opts(common), &common.out)?),
                &common.out,
            )
        }
        ImportCommand::Karpathy { dataset, common } => {
            (reported(import::import_karpathy(dataset, &opts(common), &common.out)?), &common.out)
        }
        ImportCommand::Nlvr2 { statements, images, common } => (
            reported(import::import_nlvr2(statements, images, &opts(common), &common.out)?),
            &common.out,
        ),
        ImportCommand::VgRegions { regions, common } => {
            (reported(import::import_vg_regions(regions, &opts(common), &common.out)?), &common.out)
        }
        ImportCommand::Coseg { images, masks, group_size, common } => (
            reported(import::import_coseg(images, masks, *group_size, &opts(common), &common.out)?),
            &common.out,
        ),
        ImportCommand::RefsRegions { refs, instances, common } => {
            (import::import_refs_regions(refs, instances, &opts(common), &common.out)?, &common.out)
        }
        ImportCommand::Refs { refs, instances, task, common } => (
            import::import_refs(
                refs,
                instances,
                RefTask::parse(task)?,
                &opts(common),
                &common.out,
            )?,
            &common.out,
        ),
    };
    println!("{n} samples written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
