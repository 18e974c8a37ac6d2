//! Image functions: read files, read sizes and formats from encoded bytes, perceptual hashes,
//! and the colour of a masked object.

mod hamming;
#[cfg(test)]
mod hf_struct_tests;
mod image_format;
mod image_size;
mod mask_color;
pub mod phash;
pub mod pixels;
mod read_bytes;
mod remote;

use datafusion::logical_expr::ScalarUDF;

pub use hamming::HammingDistanceFunc;
pub use image_format::ImageFormatFunc;
pub use image_size::{ImageSizeFunc, Side};
pub use mask_color::{color_name, MaskColorFunc};
pub use phash::ImagePhashFunc;
pub use read_bytes::ReadBytesFunc;
pub use remote::{block_on_io, locate, remote_url};

pub(crate) const SECTION: datafusion::logical_expr::DocSection =
    datafusion::logical_expr::DocSection {
        include: true,
        label: "Vista image functions",
        description: Some(
            "Read image files, inspect encoded images, hash them, and name masked colours.",
        ),
    };

/// The documentation of an `image` argument: what every function reading encoded images takes.
pub(crate) const IMAGE_ARG: &str = "Encoded image bytes (binary), or a Hugging Face `datasets` \
     image struct<bytes, path>, read through its `bytes` (a row with only a `path` is a row \
     error: read the file with read_bytes(image['path'])).";

pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ReadBytesFunc::new()),
        ScalarUDF::new_from_impl(ImageSizeFunc::new(Side::Width)),
        ScalarUDF::new_from_impl(ImageSizeFunc::new(Side::Height)),
        ScalarUDF::new_from_impl(ImageFormatFunc::new()),
        ScalarUDF::new_from_impl(ImagePhashFunc::new()),
        ScalarUDF::new_from_impl(HammingDistanceFunc::new()),
        ScalarUDF::new_from_impl(MaskColorFunc::new()),
    ]
}

/// Reads the dimensions of an encoded image from its header, without decoding pixels.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| format!("not a readable image ({} bytes): {e}", bytes.len()))
}

/// The format of encoded image bytes, from their magic number.
pub fn format_of(bytes: &[u8]) -> Result<image::ImageFormat, String> {
    image::guess_format(bytes).map_err(|_| {
        format!(
            "not a recognised image format ({} bytes, starts {:02x?})",
            bytes.len(),
            &bytes[..bytes.len().min(4)]
        )
    })
}
