//! A process whose standard streams are connected to a caller (`kubectl exec -i`, `-t`):
//! its pipes or the master side of a pseudo-terminal, a handle that resizes that
//! terminal, and the exit code once it ends.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::pty::OpenptFlags;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// A running process started for a caller. Dropping it kills the process.
pub struct Interactive {
    /// `None` when stdin was not asked for.
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    /// `None` with a terminal: it carries both outputs on stdout.
    pub stderr: Option<Reader>,
    pub terminal: Option<Terminal>,
    /// The exit code (128 + the signal when killed).
    pub exit: Pin<Box<dyn Future<Output = super::Result<i32>> + Send>>,
}

type Resize = Box<dyn Fn(u16, u16) -> io::Result<()> + Send + Sync>;

/// The process's terminal, kept to resize it: the master side of a local
/// pseudo-terminal, or a runtime's resize channel.
pub struct Terminal(Resize);

impl Terminal {
    pub fn new(resize: impl Fn(u16, u16) -> io::Result<()> + Send + Sync + 'static) -> Self {
        Terminal(Box::new(resize))
    }

    /// A local pseudo-terminal's master: TIOCSWINSZ, and the process gets SIGWINCH.
    fn master(fd: OwnedFd) -> Self {
        Terminal::new(move |width, height| {
            let size = rustix::termios::Winsize {
                ws_row: height,
                ws_col: width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            rustix::termios::tcsetwinsize(&fd, size).map_err(io::Error::from)
        })
    }

    /// Sets the size (columns, rows) the process sees.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        (self.0)(width, height)
    }
}

/// A new pseudo-terminal: the master's resize handle, a reader and a writer on it, and
/// the slave for the process.
pub struct Pty {
    pub terminal: Terminal,
    pub reader: Reader,
    pub writer: Writer,
    pub slave: OwnedFd,
}

pub fn open_pty() -> io::Result<Pty> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))?
        .into();
    let reader = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
    let writer = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
    Ok(Pty {
        terminal: Terminal::master(master),
        reader: Box::pin(EioIsEof(reader)),
        writer: Box::pin(writer),
        slave,
    })
}

/// Reading a terminal's master fails with EIO once every slave descriptor is closed:
/// for the reader that is the end of the output.
struct EioIsEof<R>(R);

impl<R: AsyncRead + Unpin> AsyncRead for EioIsEof<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_pty_carries_input_to_the_process_and_its_size_is_set() {
        let Pty {
            terminal,
            mut reader,
            mut writer,
            slave,
        } = open_pty().unwrap();
        terminal.resize(91, 17).unwrap();
        let size = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (91, 17));
        writer.write_all(b"hello\n").await.unwrap();
        writer.flush().await.unwrap();
        let mut slave_file = std::fs::File::from(slave);
        let line = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 64];
            let n = std::io::Read::read(&mut slave_file, &mut buf).unwrap();
            std::io::Write::write_all(&mut slave_file, b"out\n").unwrap();
            buf[..n].to_vec()
        })
        .await
        .unwrap();
        assert_eq!(line, b"hello\n");
        // The echo of the input, then what the process wrote (\n becomes \r\n), then
        // end-of-file once the slave is closed.
        let mut out = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            reader.read_to_end(&mut out),
        )
        .await
        .expect("the master reaches end-of-file once the slave is closed")
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.ends_with("out\r\n"), "{text:?}");
    }
}
