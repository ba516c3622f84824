//! Where an output goes, decided from what its path is: standard output, one of our
//! descriptors, something to write straight into (a FIFO, a device), or a regular file to
//! replace whole. The same rules check a path before the run and pick the writer after it.

use std::fs;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// How many symlinks are followed before a path is refused as a loop (the kernel's limit).
const MAX_LINKS: usize = 40;

/// What an output path turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// `-`, or a path naming our descriptor 1 (`/dev/stdout`, `/proc/self/fd/1`).
    Stdout,
    /// A path naming another of our open descriptors (`/dev/fd/63` from `>(…)`): written
    /// through a copy of it, so its offset is shared with whoever opened it.
    Fd(RawFd),
    /// Not a regular file (FIFO, character device such as /dev/null or /dev/full):
    /// opened write-only, never created or truncated, and written straight.
    Straight(PathBuf),
    /// A regular file or a missing path (symlinks already followed to their target): written
    /// to a temp file in its folder, then renamed over it.
    Replace(PathBuf),
    /// A folder of files (`--hgrm`), created if missing; each file in it is replaced whole.
    Folder(PathBuf),
}

/// Files or a folder: what the flag asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    File,
    Folder,
}

/// Decides where `path` (given to `flag`) goes, or says in one line why it cannot be written:
/// its folder is missing or not writable, it is a folder, an existing file is not writable.
pub fn resolve(flag: &str, path: &Path, shape: Shape) -> Result<Dest, String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err(format!(
            "{flag}: the path is empty; give a path, or - for standard output"
        ));
    }
    if path.as_os_str() == "-" {
        return match shape {
            Shape::File => Ok(Dest::Stdout),
            Shape::Folder => Err(format!(
                "{flag} -: it writes a folder of files, which cannot go to standard output; give a folder"
            )),
        };
    }
    if let Some(fd) = descriptor(path) {
        if shape == Shape::Folder {
            return Err(format!(
                "{flag} {shown}: a descriptor is not a folder; give a folder"
            ));
        }
        return match fd {
            1 => Ok(Dest::Stdout),
            fd if writable_fd(fd) => Ok(Dest::Fd(fd)),
            fd => Err(format!(
                "{flag} {shown}: descriptor {fd} is not open for writing; give a file path"
            )),
        };
    }
    let stripped = trim_slashes(path);
    if shape == Shape::File && stripped.as_os_str().len() < path.as_os_str().len() {
        return match fs::metadata(stripped) {
            Ok(m) if m.is_dir() => Err(format!(
                "{flag} {shown}: is a folder; give a file path in it, e.g. {}",
                stripped.join(example_name(flag)).display()
            )),
            _ => Err(format!(
                "{flag} {shown}: a path ending in / names a folder; give a file path (drop the /)"
            )),
        };
    }
    let path = stripped;
    let target = follow_links(path).map_err(|e| format!("{flag} {shown}: {e}"))?;
    let meta = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if missing(&e) => None,
        Err(e) => return Err(format!("{flag} {shown}: {e}")),
    };
    let via = if target == path {
        String::new()
    } else {
        format!(" (the link's target {})", target.display())
    };
    match (meta, shape) {
        (None, _) => {
            folder_writable(&target).map_err(|why| format!("{flag} {shown}{via}: {why}"))?;
            Ok(match shape {
                Shape::File => Dest::Replace(target),
                Shape::Folder => Dest::Folder(target),
            })
        }
        (Some(m), Shape::File) if m.is_dir() => Err(format!(
            "{flag} {shown}{via}: is a folder; give a file path in it, e.g. {}",
            path.join(example_name(flag)).display()
        )),
        (Some(m), Shape::Folder) if m.is_dir() => {
            writable(&target)
                .map_err(|e| format!("{flag} {shown}{via}: folder is not writable ({e})"))?;
            Ok(Dest::Folder(target))
        }
        (Some(_), Shape::Folder) => Err(format!(
            "{flag} {shown}{via}: is not a folder; give a folder (created if missing)"
        )),
        (Some(m), Shape::File) if m.file_type().is_socket() => Err(format!(
            "{flag} {shown}{via}: is a Unix socket, which cannot be opened as a file; give a file path"
        )),
        (Some(m), Shape::File) => {
            writable(&target)
                .map_err(|e| format!("{flag} {shown}{via}: cannot be written ({e})"))?;
            if m.file_type().is_file() {
                folder_writable(&target).map_err(|why| format!("{flag} {shown}{via}: {why}"))?;
                Ok(Dest::Replace(target))
            } else {
                let t = m.file_type();
                debug_assert!(t.is_fifo() || t.is_char_device() || t.is_block_device());
                Ok(Dest::Straight(target))
            }
        }
    }
}

/// `path` without trailing slashes (`/` itself stays): `--hgrm hh/` is the folder `hh`.
fn trim_slashes(path: &Path) -> &Path {
    let b = path.as_os_str().as_bytes();
    let mut end = b.len();
    while end > 1 && b[end - 1] == b'/' {
        end -= 1;
    }
    Path::new(std::ffi::OsStr::from_bytes(&b[..end]))
}

/// What a file is, to tell two spellings of one file apart from two files: the same
/// (device, inode) for files that exist, the same canonical folder and name for missing ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Stdout,
    Inode { dev: u64, ino: u64 },
    Name(PathBuf),
}

impl Identity {
    /// The identity of the file at `path` (symlinks followed), existing or not.
    pub fn of_path(path: &Path) -> Identity {
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(path) {
            Ok(m) => Identity::Inode {
                dev: m.dev(),
                ino: m.ino(),
            },
            Err(_) => Identity::Name(canonical_name(path, MAX_LINKS)),
        }
    }

    /// The identity of what `dest` writes, with `names` the files a folder gets.
    pub fn of_dest(dest: &Dest, names: &[String]) -> Vec<Identity> {
        match dest {
            Dest::Stdout => vec![Identity::Stdout],
            Dest::Fd(fd) => {
                // SAFETY: fstat only fills `st` from our descriptor `fd`.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                if unsafe { libc::fstat(*fd, &mut st) } == 0 {
                    vec![Identity::Inode {
                        dev: st.st_dev,
                        ino: st.st_ino,
                    }]
                } else {
                    Vec::new()
                }
            }
            Dest::Straight(p) | Dest::Replace(p) => vec![Identity::of_path(p)],
            Dest::Folder(d) => std::iter::once(Identity::of_path(d))
                .chain(names.iter().map(|n| Identity::of_path(&d.join(n))))
                .collect(),
        }
    }
}

/// A missing path's canonical form: its nearest existing folder canonicalized, then the
/// rest of its names.
fn canonical_name(path: &Path, depth: usize) -> PathBuf {
    if let Ok(c) = fs::canonicalize(path) {
        return c;
    }
    match path.file_name() {
        Some(name) if depth > 0 => canonical_name(folder_of(path), depth - 1).join(name),
        _ => path.to_path_buf(),
    }
}

/// A file name to suggest inside a folder given by mistake.
fn example_name(flag: &str) -> &'static str {
    match flag {
        "--markdown" => "report.md",
        "--html" => "report.html",
        "--svg" => "trace.svg",
        _ => "report.json",
    }
}

/// The descriptor a path names by itself: /dev/stdout, /dev/stderr, /dev/fd/N,
/// /proc/self/fd/N, /proc/thread-self/fd/N, /proc/<our pid>/fd/N.
fn descriptor(path: &Path) -> Option<RawFd> {
    let s = std::str::from_utf8(path.as_os_str().as_bytes()).ok()?;
    match s {
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => {}
    }
    let own = format!("/proc/{}/fd/", std::process::id());
    let n = ["/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/", &own]
        .iter()
        .find_map(|prefix| s.strip_prefix(prefix))?;
    n.parse::<RawFd>().ok().filter(|fd| *fd >= 0)
}

/// Whether our descriptor `fd` is open with write access.
fn writable_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFL only reads the descriptor's flags; a closed one gives -1.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags >= 0 && matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
}

/// `path` with its symlinks followed to what they name (which may not exist yet): writing
/// goes to the link's target and the link stays.
pub fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&p)?;
                p = if to.is_absolute() {
                    to
                } else {
                    folder_of(&p).join(to)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if missing(&e) => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symlinks in a row (a loop?)"
    )))
}

/// Nothing is at the path: it is missing, or a part of its folder is a file (ENOTDIR).
fn missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The folder a file path is in (`.` for a bare name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Why a file cannot be created at `path`, if it cannot: its folder is missing, is not a
/// folder, or is not writable.
fn folder_writable(path: &Path) -> Result<(), String> {
    let dir = folder_of(path);
    match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("folder {} does not exist", dir.display()))
        }
        Err(e) => Err(format!("folder {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => Err(format!("{} is not a folder", dir.display())),
        Ok(_) => {
            writable(dir).map_err(|e| format!("folder {} is not writable ({e})", dir.display()))
        }
    }
}

/// access(W_OK): whether this process may write `path` (a read-only file system included).
fn writable(path: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("the path holds a NUL byte"))?;
    // SAFETY: a valid NUL-terminated path; access only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, "old").unwrap();
        p
    }

    #[test]
    fn dash_and_descriptors() {
        let r = |p: &str| resolve("--json", Path::new(p), Shape::File);
        assert_eq!(r("-"), Ok(Dest::Stdout));
        assert_eq!(r("/dev/stdout"), Ok(Dest::Stdout));
        assert_eq!(r("/proc/self/fd/1"), Ok(Dest::Stdout));
        assert_eq!(r("/dev/fd/2"), Ok(Dest::Fd(2)));
        assert!(
            r("/dev/fd/987654")
                .unwrap_err()
                .contains("not open for writing")
        );
        let e = resolve("--hgrm", Path::new("-"), Shape::Folder).unwrap_err();
        assert!(e.starts_with("--hgrm -:"), "{e}");
    }

    #[test]
    fn devices_are_written_straight() {
        for dev in ["/dev/null", "/dev/full"] {
            let d = resolve("--json", Path::new(dev), Shape::File).unwrap();
            assert_eq!(d, Dest::Straight(dev.into()));
        }
    }

    #[test]
    fn missing_folders_directories_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let e = resolve("--json", Path::new("/nonexistent/x.json"), Shape::File).unwrap_err();
        assert_eq!(
            e,
            "--json /nonexistent/x.json: folder /nonexistent does not exist"
        );
        let e = resolve("--markdown", dir.path(), Shape::File).unwrap_err();
        assert!(e.contains("is a folder") && e.contains("report.md"), "{e}");
        let plain = file(dir.path(), "plain");
        let e = resolve("--json", &plain.join("x.json"), Shape::File).unwrap_err();
        assert!(e.ends_with("is not a folder"), "{e}");
        let e = resolve("--hgrm", &plain, Shape::Folder).unwrap_err();
        assert!(e.contains("is not a folder"), "{e}");

        let target = file(dir.path(), "target.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("target.json", &link).unwrap();
        assert_eq!(
            resolve("--json", &link, Shape::File),
            Ok(Dest::Replace(dir.path().join("target.json")))
        );
        assert!(target.exists());
        // A dangling link: its target is created, the link stays.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("new.json"), &dangling).unwrap();
        assert_eq!(
            resolve("--json", &dangling, Shape::File),
            Ok(Dest::Replace(dir.path().join("new.json")))
        );
        let lp = dir.path().join("loop");
        std::os::unix::fs::symlink(&lp, &lp).unwrap();
        assert!(
            resolve("--json", &lp, Shape::File)
                .unwrap_err()
                .contains("loop")
        );
    }

    #[test]
    fn a_bare_name_is_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("r.json")), Path::new("."));
        assert_eq!(
            resolve("--json", Path::new("r.json"), Shape::File),
            Ok(Dest::Replace("r.json".into()))
        );
    }
}
