//! The stdin of a process-runtime container started with `stdin: true`, kept open for
//! `kubectl attach -i` as a container runtime keeps it.
//!
//! The container reads a pipe whose write end only its shim holds, so the container sees
//! no end of input while nobody is attached. The shim feeds the pipe from the FIFO
//! `DIR/stdin`, which attached clients write to: when the last one lets go, a `stdinOnce`
//! container's stdin is closed for good (and the FIFO removed); any other stays open for
//! the next attach.

use std::fs::File;
use std::io;
use std::io::{PipeReader, PipeWriter};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::interactive::Writer;
use super::{Error, Result};

/// Set for the shim's second stage: the path it opens the container's stdin from.
pub const STDIN_PATH_ENV: &str = "RKUBE_SHIM_STDIN";
/// The FIFO in a container's directory that attached clients write to.
pub const FIFO: &str = "stdin";

/// The container's stdin pipe, before its second stage has taken the read end.
pub struct Stdin {
    read: PipeReader,
    write: PipeWriter,
    fifo: PathBuf,
}

impl Stdin {
    /// Creates the FIFO in `dir` and the pipe.
    pub fn new(dir: &Path) -> io::Result<Stdin> {
        let fifo = dir.join(FIFO);
        let _ = std::fs::remove_file(&fifo);
        let owner_only = rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR;
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, owner_only)?;
        let (read, write) = std::io::pipe()?;
        Ok(Stdin { read, write, fifo })
    }

    /// Where the second stage opens the read end (this process's descriptor, through
    /// /proc: nothing is inherited, so nothing else leaks into the container).
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.read.as_raw_fd())
    }

    /// Once the container runs: lets go of the read end and feeds the pipe from the FIFO
    /// on a thread of its own.
    pub fn relay(self, once: bool) {
        let Stdin { read, write, fifo } = self;
        drop(read);
        std::thread::spawn(move || feed(&fifo, write, once));
    }
}

/// Copies what attached clients write to the FIFO into `to`, until the container stops
/// reading or, with `once`, the first client lets go.
fn feed(fifo: &Path, mut to: PipeWriter, once: bool) {
    loop {
        // Blocks until a client opens the FIFO for writing.
        let Ok(mut from) = File::open(fifo) else {
            break;
        };
        if std::io::copy(&mut from, &mut to).is_err() || once {
            break;
        }
    }
    let _ = std::fs::remove_file(fifo);
}

/// The second stage's stdin: the pipe at `STDIN_PATH_ENV`, or /dev/null.
pub fn for_container() -> io::Result<File> {
    match std::env::var(STDIN_PATH_ENV) {
        Ok(path) => File::open(path),
        Err(_) => File::open("/dev/null"),
    }
}

/// How long an attach waits for the shim to reopen the FIFO after a client let go.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// A writer into the stdin of the container in `dir`; `configured` says whether it was
/// created with `stdin: true`.
pub async fn open(dir: &Path, name: &str, configured: bool) -> Result<Writer> {
    let fifo = dir.join(FIFO);
    if !configured {
        return Err(Error::Unsupported(format!(
            "container {name:?} was not created with stdin: true, so nothing can be written \
             to its stdin"
        )));
    }
    let deadline = tokio::time::Instant::now() + REOPEN_WAIT;
    loop {
        if !fifo.exists() {
            return Err(Error::Unsupported(format!(
                "the stdin of container {name:?} is closed (stdinOnce: a client attached \
                 before), or the container is not running"
            )));
        }
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(&fifo) {
            Ok(tx) => return Ok(Box::pin(tx)),
            // No reader: the shim is between two clients, or gone.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Unsupported(format!(
                        "container {name:?} is not reading its stdin: it is not running"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(Error::Io(format!("opening the stdin of {name:?}: {e}"))),
        }
    }
}
