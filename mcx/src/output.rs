//! Writing output: stdout lines and JSON, output files.

use std::io::Write;

use clap::Args;
use serde::Serialize;

use crate::error::CliError;

/// Where a command writes its JSON: `--out FILE` or stdout.
#[derive(Debug, Args)]
pub(crate) struct OutArgs {
    /// Write to FILE instead of stdout ('-' for stdout). A new file is
    /// created readable by its owner only (mode 0600): it may hold secrets.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<String>,
    /// Overwrite FILE if it already exists.
    #[arg(long, requires = "out")]
    pub(crate) force: bool,
}

/// Writes `text` and a newline to stdout.
pub(crate) fn line(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|source| CliError::Write {
            path: "<stdout>".to_owned(),
            source,
        })
}

/// Pretty-printed JSON of `value`, with a final newline.
pub(crate) fn json_text<T: Serialize>(value: &T) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| CliError::Json {
        path: "<output>".to_owned(),
        source,
    })?;
    text.push('\n');
    Ok(text)
}

/// Writes `value` as JSON to stdout.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<(), CliError> {
    line(json_text(value)?.trim_end())
}

/// Writes `value` as JSON where `out` says.
pub(crate) fn json_to<T: Serialize>(value: &T, out: &OutArgs) -> Result<(), CliError> {
    match out.out.as_deref() {
        None | Some("-") => json(value),
        Some(path) => write_file(path, json_text(value)?.as_bytes(), out.force),
    }
}

/// Writes `contents` to a file created with mode 0600, refusing to replace
/// an existing file unless `force`.
fn write_file(path: &str, contents: &[u8], force: bool) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write_error = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(|source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_error(source)
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}
