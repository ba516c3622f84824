//! Every command's outputs, in one place: the formats a result can be written in
//! ([`Export`], one impl per result type in [`exports`]), the [`Outputs`] a command builds
//! once from its flags (every path checked before the run, by [`dest`]), and the safe
//! writer ([`mod@write`]) that writes them after it.
//!
//! The rules, once: `-` is standard output for every output flag (the summary then goes to
//! standard error); a symlink is written through to its target; anything that is not a
//! regular file (FIFO, device, `/dev/stdout`, `/dev/fd/N`) is written straight; a regular
//! file is replaced whole. After the run the files are written first, each on its own (one
//! that fails does not stop the others), then the summary is printed; a reader that left
//! standard output (EPIPE) ends the summary, not the run. When a write fails, the JSON is
//! kept in a fallback file named on standard error.

pub mod dest;
pub mod exports;
pub mod write;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::UsageError;
pub use dest::{Dest, Shape};
pub use exports::{Compared, RunOutcome};

/// The forms a result can take. A new format is one variant here, its renderer's file, and
/// one arm in each result type's [`Export`] impl that has it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Html,
    /// A picture (a traced connection's ladder).
    Svg,
    /// HdrHistogram percentile distributions, one `.hgrm` file per phase.
    Hgrm,
}

/// A result rendered in one format.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// One document.
    Text(String),
    /// Named files for a folder (`--hgrm`).
    Files(Vec<(String, String)>),
}

/// A result that can be written out: each result type says which formats it has.
pub trait Export {
    /// The result in `format`; `None` when it has no such form (or nothing to show in it).
    fn export(&self, format: Format) -> Option<Body>;
}

/// One file (or folder) a flag asked for.
#[derive(Clone, Debug)]
struct Output {
    /// The flag, as the user typed it (`--json`), to name it in messages.
    flag: &'static str,
    format: Format,
    /// The path as given; resolved again when written, in case it changed during the run.
    path: PathBuf,
    shape: Shape,
}

/// What a command writes: the files its flags name, checked when added, and the summary it
/// prints. Built once, before the run; [`Outputs::write`] writes them all after it.
#[derive(Clone, Debug)]
pub struct Outputs {
    files: Vec<Output>,
    /// What is printed at the end: on standard output, or standard error when a flag took it.
    summary: Format,
}

/// How the writing went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Written {
    /// Outputs that could not be written (each already named on standard error).
    pub failed: usize,
    /// Where the JSON was kept instead, when a write failed.
    pub fallback: Option<PathBuf>,
}

impl Written {
    /// Every output was written.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

impl Outputs {
    /// Outputs that print `summary` and write no file yet.
    pub fn new(summary: Format) -> Outputs {
        Outputs {
            files: Vec::new(),
            summary,
        }
    }

    /// Adds the file `flag` names (nothing when `path` is `None`), checked now: its folder
    /// exists and is writable, it is not a folder, an existing file is writable, and at most
    /// one output is standard output. The error is the one line to show (exit 2).
    pub fn file(
        self,
        flag: &'static str,
        format: Format,
        path: Option<&Path>,
    ) -> Result<Outputs, UsageError> {
        self.add(flag, format, path, Shape::File)
    }

    /// Adds the folder `flag` names (`--hgrm DIR`), created when written if missing: its
    /// parent must exist and be writable.
    pub fn folder(
        self,
        flag: &'static str,
        format: Format,
        path: Option<&Path>,
    ) -> Result<Outputs, UsageError> {
        self.add(flag, format, path, Shape::Folder)
    }

    fn add(
        mut self,
        flag: &'static str,
        format: Format,
        path: Option<&Path>,
        shape: Shape,
    ) -> Result<Outputs, UsageError> {
        let Some(path) = path else {
            return Ok(self);
        };
        let dest = dest::resolve(flag, path, shape).map_err(UsageError)?;
        for o in &self.files {
            let other = dest::resolve(o.flag, &o.path, o.shape).ok();
            let same = match (&dest, &other) {
                (Dest::Stdout, Some(Dest::Stdout)) => Some("standard output"),
                (Dest::Replace(a), Some(Dest::Replace(b))) if a == b => Some("the same file"),
                _ => None,
            };
            if let Some(what) = same {
                return Err(UsageError(format!(
                    "{flag} {}: {} already writes to {what}; give each output its own path",
                    path.display(),
                    o.flag
                )));
            }
        }
        self.files.push(Output {
            flag,
            format,
            path: path.to_path_buf(),
            shape,
        });
        Ok(self)
    }

    /// Writes every file, then prints the summary. A file that cannot be written is named
    /// on standard error and the others are still written; the JSON is then kept in a
    /// fallback file unless it was written where asked.
    pub fn write(&self, value: &dyn Export) -> Written {
        let mut written = Written::default();
        let mut json_kept = false;
        let mut stdout_taken = false;
        for o in &self.files {
            let Some(body) = value.export(o.format) else {
                continue;
            };
            // Resolved again: the path may have changed during the run.
            let result = dest::resolve(o.flag, &o.path, o.shape).and_then(|d| {
                stdout_taken |= d == Dest::Stdout;
                write_body(&d, &body)
                    .map_err(|e| format!("{} {}: cannot write: {e}", o.flag, o.path.display()))
            });
            match result {
                Ok(()) => json_kept |= o.format == Format::Json,
                Err(line) => {
                    written.failed += 1;
                    say(&format!("tcpbench: error: {line}"));
                }
            }
        }
        if !written.ok() && !json_kept {
            written.fallback = keep_json(value);
        }
        if let Some(Body::Text(text)) = value.export(self.summary) {
            if stdout_taken {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            } else if let Err(e) = write::stdout(text.as_bytes()) {
                written.failed += 1;
                say(&format!(
                    "tcpbench: error: standard output: cannot write: {e}"
                ));
            }
        }
        written
    }
}

/// Writes one rendered result where it goes: a folder takes files, anything else a document.
fn write_body(dest: &Dest, body: &Body) -> std::io::Result<()> {
    match (dest, body) {
        (Dest::Folder(dir), Body::Files(files)) => write::write_files(dir, files),
        (Dest::Folder(_), Body::Text(_)) | (_, Body::Files(_)) => Err(std::io::Error::other(
            "this format and this kind of path do not fit",
        )),
        (d, Body::Text(text)) => write::write(d, text.as_bytes()),
    }
}

/// The width of the terminal standard output is, or `None` when it is not one (a file, a
/// pipe): the text summary fits a narrow terminal and keeps its wide layout elsewhere.
pub fn terminal_columns() -> Option<usize> {
    // SAFETY: isatty and TIOCGWINSZ on fd 1 only read; `ws` is a whole winsize.
    unsafe {
        if libc::isatty(1) != 1 {
            return None;
        }
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some(usize::from(ws.ws_col))
    }
}

/// One line on standard error; a closed standard error loses it, nothing else.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Keeps the JSON form of `value` in `./tcpbench-report-PID.json`, or in the temp folder
/// when the current one cannot take it, and names the file on standard error.
fn keep_json(value: &dyn Export) -> Option<PathBuf> {
    let Some(Body::Text(json)) = value.export(Format::Json) else {
        return None;
    };
    let name = format!("tcpbench-report-{}.json", std::process::id());
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for dir in [here, std::env::temp_dir()] {
        let path = dir.join(&name);
        if write::replace(&path, json.as_bytes()).is_ok() {
            say(&format!(
                "tcpbench: the JSON report is kept in {}",
                path.display()
            ));
            return Some(path);
        }
    }
    say("tcpbench: error: the JSON report could not be kept anywhere either");
    None
}
