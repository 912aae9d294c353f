//! The log backend (`--audit-log-path`): one JSON event per line, written by a thread of
//! its own behind a bounded queue, so a slow disk never holds up a request — events that
//! do not fit in the queue are dropped and counted. The file is rotated by size
//! (`--audit-log-maxsize`) into `<path>.1`, `<path>.2`, …, keeping
//! `--audit-log-maxbackup` of them.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use super::{Backend, Event};

/// Events queued for the writer before new ones are dropped (Kubernetes' default buffer).
pub const DEFAULT_BUFFER: usize = 10_000;

/// Where the log goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `--audit-log-path -`.
    Stdout,
    File(PathBuf),
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Size at which the file is rotated, in bytes; 0 never rotates.
    pub max_bytes: u64,
    /// Rotated files kept; 0 keeps them all.
    pub max_backups: usize,
    /// Events queued at most.
    pub buffer: usize,
}

/// The log backend: a queue in front of a writer thread.
pub struct LogBackend {
    tx: Option<SyncSender<Vec<u8>>>,
    dropped: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl LogBackend {
    /// Opens the log (so a bad path fails now) and starts its writer.
    pub fn start(target: Target, opts: Options) -> io::Result<LogBackend> {
        let mut writer = Writer::open(target, opts)?;
        let (tx, rx) = sync_channel(opts.buffer.max(1));
        let thread = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(LogBackend {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
            thread: Some(thread),
        })
    }

    /// Queues one line; drops it when the queue is full.
    pub fn send(&self, line: Vec<u8>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(dropped = n, "the audit log falls behind: events dropped");
                }
            }
        }
    }

    /// Events dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes out every queued event and stops the writer.
    pub fn close(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LogBackend {
    fn drop(&mut self) {
        // The writer drains the queue and ends on its own once the sender is gone.
        self.tx.take();
    }
}

impl Backend for LogBackend {
    fn process(&self, event: &Event) {
        match serde_json::to_vec(event) {
            Ok(line) => self.send(line),
            Err(e) => tracing::error!(error = %e, "audit event not encoded"),
        }
    }
}

struct Writer {
    target: Target,
    out: Box<dyn Write + Send>,
    size: u64,
    opts: Options,
    failing: bool,
}

impl Writer {
    fn open(target: Target, opts: Options) -> io::Result<Writer> {
        let (out, size): (Box<dyn Write + Send>, u64) = match &target {
            Target::Stdout => (Box::new(io::stdout()), 0),
            Target::File(p) => {
                let f = open_append(p)?;
                let size = f.metadata()?.len();
                (Box::new(BufWriter::new(f)), size)
            }
        };
        Ok(Writer {
            target,
            out,
            size,
            opts,
            failing: false,
        })
    }

    fn run(&mut self, rx: Receiver<Vec<u8>>) {
        while let Ok(line) = rx.recv() {
            self.write_logged(&line);
            while let Ok(line) = rx.try_recv() {
                self.write_logged(&line);
            }
            if let Err(e) = self.out.flush() {
                self.failed(&e);
            }
        }
        let _ = self.out.flush();
    }

    fn write_logged(&mut self, line: &[u8]) {
        match self.write_line(line) {
            Ok(()) => self.failing = false,
            Err(e) => self.failed(&e),
        }
    }

    /// Logs the first error of a run of them.
    fn failed(&mut self, e: &io::Error) {
        if !self.failing {
            tracing::error!(error = %e, "writing the audit log failed");
        }
        self.failing = true;
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.opts.max_bytes > 0 && self.size > 0 && self.size + len > self.opts.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let Target::File(path) = &self.target else {
            return Ok(());
        };
        self.out.flush()?;
        shift_backups(path, self.opts.max_backups)?;
        self.out = Box::new(BufWriter::new(open_append(path)?));
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    // Audit events name users and may carry Secrets: readable by the owner only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// `<path>.<n>`.
pub fn backup_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Moves `path` to `<path>.1`, each `<path>.<n>` to `<path>.<n+1>`, and removes what falls
/// beyond `max_backups` (0: nothing is removed).
fn shift_backups(path: &Path, max_backups: usize) -> io::Result<()> {
    let top = if max_backups == 0 {
        (1..).find(|&n| !backup_path(path, n).exists()).unwrap_or(1)
    } else {
        remove_if_present(&backup_path(path, max_backups))?;
        max_backups
    };
    for n in (1..top).rev() {
        let from = backup_path(path, n);
        if from.exists() {
            std::fs::rename(&from, backup_path(path, n + 1))?;
        }
    }
    std::fs::rename(path, backup_path(path, 1))?;
    if max_backups > 0 {
        // Backups left by an earlier, larger --audit-log-maxbackup.
        let mut n = max_backups + 1;
        while backup_path(path, n).exists() {
            remove_if_present(&backup_path(path, n))?;
            n += 1;
        }
    }
    Ok(())
}

fn remove_if_present(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn rotates_by_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let opts = Options {
            max_bytes: 100,
            max_backups: 2,
            buffer: 1000,
        };
        let log = LogBackend::start(Target::File(path.clone()), opts).unwrap();
        // 30 lines of 21 bytes: four lines fit in 100 bytes, so about eight rotations.
        for i in 0..30 {
            log.send(format!("{{\"n\":{i:>12}}}  ").into_bytes());
        }
        log.close();
        assert!(
            backup_path(&path, 1).exists(),
            "{}.1 missing",
            path.display()
        );
        assert!(
            backup_path(&path, 2).exists(),
            "{}.2 missing",
            path.display()
        );
        assert!(!backup_path(&path, 3).exists(), "more than 2 backups kept");
        for p in [path.clone(), backup_path(&path, 1), backup_path(&path, 2)] {
            let size = std::fs::metadata(&p).unwrap().len();
            assert!(
                size <= 100,
                "{} is {size} bytes, over the limit",
                p.display()
            );
        }
        // The newest lines are in the file, the ones before them in .1.
        let cur = lines(&path);
        let prev = lines(&backup_path(&path, 1));
        let num = |l: &str| -> usize {
            let digits: String = l.chars().filter(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        };
        assert_eq!(num(cur.last().unwrap()), 29, "{cur:?}");
        assert_eq!(num(prev.last().unwrap()) + 1, num(&cur[0]));
    }

    #[test]
    fn zero_max_backups_keeps_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let opts = Options {
            max_bytes: 10,
            max_backups: 0,
            buffer: 100,
        };
        let log = LogBackend::start(Target::File(path.clone()), opts).unwrap();
        for i in 0..5 {
            log.send(format!("line-{i:03}").into_bytes());
        }
        log.close();
        for n in 1..=4 {
            assert!(backup_path(&path, n).exists(), "backup {n} missing");
        }
        assert_eq!(lines(&backup_path(&path, 4)), vec!["line-000"]);
        assert_eq!(lines(&path), vec!["line-004"]);
    }

    #[test]
    fn stale_backups_beyond_the_limit_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        for n in 1..=5 {
            std::fs::write(backup_path(&path, n), "old\n").unwrap();
        }
        std::fs::write(&path, "current\n").unwrap();
        shift_backups(&path, 3).unwrap();
        assert_eq!(lines(&backup_path(&path, 1)), vec!["current"]);
        assert!(backup_path(&path, 3).exists());
        assert!(!backup_path(&path, 4).exists());
        assert!(!backup_path(&path, 5).exists());
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let opts = Options {
            max_bytes: 0,
            max_backups: 0,
            buffer: 1,
        };
        let log = LogBackend::start(Target::File(path.clone()), opts).unwrap();
        let sent = 10_000;
        for i in 0..sent {
            log.send(format!("{i}").into_bytes());
        }
        let dropped = log.dropped();
        log.close();
        let written = lines(&path).len() as u64;
        assert_eq!(written + dropped, sent, "every event is written or counted");
    }

    #[test]
    fn a_bad_path_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("audit.log");
        let opts = Options {
            max_bytes: 0,
            max_backups: 0,
            buffer: 1,
        };
        assert!(LogBackend::start(Target::File(path), opts).is_err());
    }
}
