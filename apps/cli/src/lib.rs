//! What the applications' command lines share, so that every binary refuses bad input the same
//! way: value parsers whose messages say what is wrong with the value (clap adds the flag's
//! name), the image size limit every binary that reads images takes (`--max-image-pixels`),
//! and the exit convention (a message on stderr naming the problem, status 1, nothing written;
//! clap's own usage errors exit with 2).
//!
//! Numeric flags take `allow_negative_numbers = true` with these parsers, so that `--size -1`
//! reaches the parser ("must be at least 1") instead of being read as an unknown flag.

use std::path::PathBuf;
use std::process::ExitCode;

use wgnn_models::imaging::io;

/// A whole number >= 1.
pub fn positive(text: &str) -> Result<usize, String> {
    at_least(text, 1)
}

/// A whole number >= 0.
pub fn count(text: &str) -> Result<usize, String> {
    at_least(text, 0)
}

fn at_least(text: &str, min: usize) -> Result<usize, String> {
    let value: i128 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if value < min as i128 {
        return Err(format!("must be at least {min}, not {value}"));
    }
    usize::try_from(value).map_err(|_| format!("{value} is too large"))
}

/// A finite number > 0.
pub fn positive_number(text: &str) -> Result<f32, String> {
    let value = finite_number(text)?;
    if value <= 0.0 {
        return Err(format!("must be greater than 0, not {value}"));
    }
    Ok(value)
}

/// A finite number >= 0.
pub fn non_negative_number(text: &str) -> Result<f32, String> {
    let value = finite_number(text)?;
    if value < 0.0 {
        return Err(format!("must be at least 0, not {value}"));
    }
    Ok(value)
}

/// A finite number.
pub fn finite_number(text: &str) -> Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !value.is_finite() {
        return Err(format!("must be a finite number, not {text}"));
    }
    Ok(value)
}

/// A path that is not empty (an empty item of a comma-separated list is two commas in a row).
pub fn path(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("an empty path (two commas in a row, or a trailing comma?)".into());
    }
    Ok(PathBuf::from(text))
}

/// An item of a comma-separated list of names that is not empty.
pub fn name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("an empty name (two commas in a row, or a trailing comma?)".into());
    }
    Ok(text.to_string())
}

/// The largest image a run decodes: pictures above it are refused from their header, before
/// their pixels take memory.
#[derive(clap::Args, Clone, Debug)]
pub struct ImageLimit {
    /// Largest image to decode, in pixels (width x height); larger ones are refused before
    /// they are read [default: 67108864, 64 megapixels].
    #[arg(long, value_name = "PIXELS", value_parser = positive, allow_negative_numbers = true)]
    pub max_image_pixels: Option<usize>,
}

impl ImageLimit {
    /// Sets the limit for every image this process decodes.
    pub fn apply(&self) {
        io::set_max_pixels(
            self.max_image_pixels
                .map_or(io::DEFAULT_MAX_PIXELS, |p| p as u64),
        );
    }
}

/// The exit of a binary's work: on error, `error: <message>` on stderr (as clap writes its
/// own) and status 1; clap's usage errors exit with 2.
pub fn exit_status(result: wgnn::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_say_what_is_wrong() {
        assert_eq!(positive("3"), Ok(3));
        assert_eq!(positive("-1"), Err("must be at least 1, not -1".into()));
        assert_eq!(positive("0"), Err("must be at least 1, not 0".into()));
        assert_eq!(count("0"), Ok(0));
        assert!(positive("2.5").unwrap_err().contains("whole number"));
        assert!(positive_number("nan").unwrap_err().contains("finite"));
        assert!(positive_number("0").unwrap_err().contains("greater than 0"));
        assert_eq!(non_negative_number("0"), Ok(0.0));
        assert!(non_negative_number("-0.5")
            .unwrap_err()
            .contains("at least 0"));
        assert!(path("").unwrap_err().contains("two commas"));
        assert!(name(" ").unwrap_err().contains("two commas"));
    }
}
