//! Every command's outputs, in one place: the formats a result can be written in
//! ([`Export`], one impl per result type in [`exports`]), the [`Outputs`] a command builds
//! once from its flags (every path checked before the run, by [`dest`]), and the safe
//! writer ([`mod@write`]) that writes them after it.
//!
//! The rules, once: `-` is standard output for every output flag (the summary then goes to
//! standard error); a symlink is written through to its target; anything that is not a
//! regular file (FIFO, device, `/dev/stdout`, `/dev/fd/N`) is written straight; a regular
//! file is replaced whole. No two outputs, and no output and input, are one file (compared
//! by [`Identity`]); a FIFO needs its reader before the run. After the run the files are
//! written first, each on its own (one that fails does not stop the others), then the
//! summary is printed; a reader that left standard output (EPIPE) ends the summary, not the
//! run, but fails an output whose body it did not take. When a write fails, the JSON is
//! kept in a fallback file named on standard error.

pub mod dest;
pub mod exports;
pub mod write;

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::UsageError;
pub use dest::{Dest, Identity, Shape};
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
    /// The HdrHistogram interval log: the latency over time, one tag per phase.
    Hlog,
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
#[derive(Debug)]
struct Output {
    /// The flag, as the user typed it (`--json`), to name it in messages.
    flag: &'static str,
    format: Format,
    /// The path as given; resolved again when written, in case it changed during the run.
    path: PathBuf,
    shape: Shape,
    /// What it writes, resolved when it was added: the file, or a folder and its files.
    ids: Vec<Identity>,
    /// A FIFO's write end, opened by the check and held until the output is written, so
    /// that its reader does not see an end of file during the run.
    held: Mutex<Option<File>>,
}

/// What a command writes: the files its flags name, checked when added, and the summary it
/// prints. Built once, before the run; [`Outputs::write`] writes them all after it.
#[derive(Debug)]
pub struct Outputs {
    files: Vec<Output>,
    /// The files the command reads (`compare`'s reports, `matrix`'s scenarios), which no
    /// output may be.
    inputs: Vec<(PathBuf, Identity)>,
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
            inputs: Vec::new(),
            summary,
        }
    }

    /// Names a file the command reads: an output that is the same file (however spelled,
    /// through a link, or a hard link to it) is refused, before or after this call.
    pub fn input(mut self, path: &Path) -> Result<Outputs, UsageError> {
        let Ok(meta) = std::fs::metadata(path) else {
            // A missing input is the reader's error to report.
            return Ok(self);
        };
        if !meta.is_file() {
            return Ok(self);
        }
        let id = Identity::of_path(path);
        if let Some(o) = self.files.iter().find(|o| o.ids.contains(&id)) {
            return Err(clobbers(o.flag, &o.path, path));
        }
        self.inputs.push((path.to_path_buf(), id));
        Ok(self)
    }

    /// Adds the file `flag` names (nothing when `path` is `None`), checked now: its folder
    /// exists and is writable, it is not a folder, an existing file is writable, a FIFO has
    /// a reader, and no other output or input is the same file. The error is the one line to
    /// show (exit 2).
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
        let held = match &dest {
            Dest::Straight(p) if is_fifo(p) => Some(write::straight(p).map_err(|e| {
                UsageError(if e.raw_os_error() == Some(libc::ENXIO) {
                    format!(
                        "{flag} {}: a FIFO with no reader yet; start the reader first",
                        path.display()
                    )
                } else {
                    format!("{flag} {}: cannot be opened ({e})", path.display())
                })
            })?),
            _ => None,
        };
        // A device (/dev/null) takes any number of outputs; nothing else takes two.
        let ids = match &dest {
            Dest::Straight(p) if is_char_device(p) => Vec::new(),
            d => Identity::of_dest(d, &names_in(format)),
        };
        for o in &self.files {
            if let Some(id) = ids.iter().find(|id| o.ids.contains(id)) {
                let what = match id {
                    Identity::Stdout => "standard output".to_string(),
                    _ => "the same file".to_string(),
                };
                return Err(UsageError(format!(
                    "{flag} {}: {} {} already writes to {what}; give each output its own path",
                    path.display(),
                    o.flag,
                    o.path.display()
                )));
            }
        }
        if let Some((input, _)) = self.inputs.iter().find(|(_, i)| ids.contains(i)) {
            return Err(clobbers(flag, path, input));
        }
        self.files.push(Output {
            flag,
            format,
            path: path.to_path_buf(),
            shape,
            ids,
            held: Mutex::new(held),
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
            // The reader has what it gets: our end of the FIFO closes with the written one.
            drop(o.held.lock().map(|mut h| h.take()));
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

/// The refusal of an output `flag path` that is the input `input`.
fn clobbers(flag: &str, path: &Path, input: &Path) -> UsageError {
    UsageError(format!(
        "{flag} {}: is the input {} (writing it would destroy it); give the output its own path",
        path.display(),
        input.display()
    ))
}

/// The files a folder output of `format` holds (none for other formats).
fn names_in(format: Format) -> Vec<String> {
    match format {
        Format::Hgrm => crate::report::hgrm::names(),
        _ => Vec::new(),
    }
}

fn is_fifo(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

fn is_char_device(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
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
    terminal_columns_of(1)
}

/// The width of the terminal on descriptor `fd`, when it is one.
pub fn terminal_columns_of(fd: libc::c_int) -> Option<usize> {
    // SAFETY: isatty and TIOCGWINSZ on `fd` only read; `ws` is a whole winsize.
    unsafe {
        if libc::isatty(fd) != 1 {
            return None;
        }
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
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
