//! The safe writer: bytes to a [`Dest`] so that nothing is clobbered and nothing is left
//! half-written. A regular file is replaced whole, through a temp file that cannot outlive
//! the process where the file system allows it (O_TMPFILE, linked in with linkat); anything
//! else is written straight, never created, truncated or replaced.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::dest::{Dest, folder_of};

/// Writes the output `bytes` to `dest`. A reader that went away (EPIPE) before the whole
/// output was written is a failed write: the output is lost, unlike the summary's tail.
pub fn write(dest: &Dest, bytes: &[u8]) -> io::Result<()> {
    match dest {
        Dest::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        Dest::Fd(fd) => descriptor(*fd, bytes),
        Dest::Straight(path) => straight(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENXIO) => io::Error::new(e.kind(), "the FIFO has no reader (any more)"),
                _ => e,
            })?
            .write_all(bytes),
        Dest::Replace(path) => replace(path, bytes),
        Dest::Folder(_) => Err(io::Error::other("a folder takes named files")),
    }
}

/// Writes each `(name, bytes)` into `dir` (created if missing), each file replaced whole.
pub fn write_files(dir: &Path, files: &[(String, String)]) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    for (name, text) in files {
        let path = dir.join(name);
        replace(&path, text.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Opens a FIFO or a device to write into it, never blocking in open(): a FIFO with no
/// reader fails at once (ENXIO) instead of waiting for one forever. O_NONBLOCK is cleared
/// once it is open, so the write itself waits for a slow reader as any pipe writer does.
pub fn straight(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let fd = f.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on our own open descriptor only change its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(f)
}

/// The summary on our standard output, locked; EPIPE ends it quietly (the reader took
/// what it wanted).
pub fn stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// One of our descriptors, written through a duplicate so the original stays open.
fn descriptor(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: dup only reads `fd`; the new descriptor is ours and the File closes it.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor owned by nobody else.
    let mut f = unsafe { File::from_raw_fd(copy) };
    f.write_all(bytes)
}

/// Replaces the regular file (or missing path) `path` with `bytes`: a reader sees the old
/// file or the whole new one. The old file's permission bits and owner are kept (the owner
/// where we may set it: as root, or a group we are in).
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = folder_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    remove_stale(dir, name);
    let old = fs::metadata(path).ok();
    let keep = old.map(|m| Keep {
        mode: m.permissions().mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    });
    match unnamed(dir) {
        Ok(mut f) => {
            fill(&mut f, bytes, keep)?;
            if link(&f, dir, name, path).is_err() {
                // linkat refused (no /proc): the named temp file writes it instead.
                named(dir, name, path, bytes, keep)?;
            }
        }
        Err(e) if tmpfile_unsupported(&e) => named(dir, name, path, bytes, keep)?,
        Err(e) => return Err(e),
    }
    File::open(dir)?.sync_all()
}

/// The temp file's name in the folder (the fallback, and the instant of linkat + rename).
fn temp_name(name: &OsStr, pid: u32) -> String {
    format!(".{}.tmp.{pid}", name.to_string_lossy())
}

/// What the replaced file keeps of the old one.
#[derive(Copy, Clone, Debug)]
struct Keep {
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Writes the temp file and gives it the old file's owner, then its mode (chown clears the
/// set-id bits, so the mode comes second). An owner we may not give (EPERM: not root) stays
/// ours, as it would with any editor.
fn fill(f: &mut File, bytes: &[u8], keep: Option<Keep>) -> io::Result<()> {
    f.write_all(bytes)?;
    if let Some(k) = keep {
        let m = f.metadata()?;
        if (m.uid(), m.gid()) != (k.uid, k.gid) {
            match std::os::unix::fs::fchown(&*f, Some(k.uid), Some(k.gid)) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                r => r?,
            }
        }
        f.set_permissions(fs::Permissions::from_mode(k.mode))?;
    }
    f.sync_all()
}

/// An unnamed file in `dir` (O_TMPFILE): the kernel frees it if the process dies before
/// it is linked in.
#[cfg(target_os = "linux")]
fn unnamed(dir: &Path) -> io::Result<File> {
    let c = cstring(dir.as_os_str())?;
    // SAFETY: a valid path; the returned descriptor is owned by the File below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
            0o666 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Elsewhere than Linux there is no O_TMPFILE: the named temp file is used.
#[cfg(not(target_os = "linux"))]
fn unnamed(_dir: &Path) -> io::Result<File> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The file system (or kernel) has no O_TMPFILE.
fn tmpfile_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS)
        )
}

/// Gives the unnamed file `f` its name: linked in directly where `path` is missing, else
/// linked to the temp name and renamed over `path`.
fn link(f: &File, dir: &Path, name: &OsStr, path: &Path) -> io::Result<()> {
    let from = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("no NUL");
    let linkat = |to: &Path| -> io::Result<()> {
        let to = cstring(to.as_os_str())?;
        // SAFETY: valid paths; linkat only reads them.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    match linkat(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    let tmp = dir.join(temp_name(name, std::process::id()));
    let _ = fs::remove_file(&tmp);
    linkat(&tmp)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The fallback: a named temp file, synced, renamed over `path`; removed on failure.
fn named(
    dir: &Path,
    name: &OsStr,
    path: &Path,
    bytes: &[u8],
    keep: Option<Keep>,
) -> io::Result<()> {
    let tmp = dir.join(temp_name(name, std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        fill(&mut f, bytes, keep)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `.NAME.tmp.PID` files in `dir` that a process killed mid-write left behind: only
/// for this `name`, and only when that PID is no longer running.
fn remove_stale(dir: &Path, name: &OsStr) {
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !alive(pid) {
            let _ = fs::remove_file(dir.join(&file));
        }
    }
}

/// Whether a process `pid` exists (kill with no signal: EPERM still means it exists).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    sent || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::other("the path holds a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_whole_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        replace(&p, b"first").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        replace(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(names(dir.path()), ["r.json"], "no temp file left");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unnamed_file_is_invisible_until_linked() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = unnamed(dir.path()).expect("ext4 and tmpfs have O_TMPFILE");
        fill(&mut f, b"report", None).unwrap();
        // What a kill -9 at this instant would leave: nothing.
        assert!(names(dir.path()).is_empty());
        let p = dir.path().join("r.json");
        link(&f, dir.path(), OsStr::new("r.json"), &p).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"report");
        // Over an existing file: linked to the temp name, then renamed.
        let mut g = unnamed(dir.path()).unwrap();
        fill(&mut g, b"again", None).unwrap();
        link(&g, dir.path(), OsStr::new("r.json"), &p).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"again");
        assert_eq!(names(dir.path()), ["r.json"]);
    }

    #[test]
    fn stale_temp_files_of_dead_processes_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".r.json.tmp.{dead}"));
        // PID 1 is always running: its temp file may still be in use.
        let live = dir.path().join(".r.json.tmp.1");
        let other = dir.path().join(format!(".other.json.tmp.{dead}"));
        for p in [&stale, &live, &other] {
            fs::write(p, "partial").unwrap();
        }
        replace(&dir.path().join("r.json"), b"{}").unwrap();
        let left = names(dir.path());
        assert!(!left.contains(&format!(".r.json.tmp.{dead}")), "{left:?}");
        assert!(left.contains(&".r.json.tmp.1".to_string()), "{left:?}");
        assert!(
            left.contains(&format!(".other.json.tmp.{dead}")),
            "{left:?}"
        );
    }

    #[test]
    fn straight_writes_never_create() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing");
        assert!(write(&Dest::Straight(p.clone()), b"x").is_err());
        assert!(!p.exists());
        write(&Dest::Straight("/dev/null".into()), b"x").unwrap();
        let e = write(&Dest::Straight("/dev/full".into()), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }

    #[test]
    fn a_folder_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("hgrm");
        let files = [
            ("a.hgrm".to_string(), "1".to_string()),
            ("b.hgrm".into(), "2".into()),
        ];
        write_files(&d, &files).unwrap();
        write_files(&d, &files).unwrap();
        assert_eq!(names(&d), ["a.hgrm", "b.hgrm"]);
    }
}
