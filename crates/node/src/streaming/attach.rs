//! Attach to a container's main process. A runtime that streams attach itself (CRI
//! `Attach`) carries it whole. Otherwise what the process writes from now on is read
//! from its CRI log as it grows, on stdout and stderr as the process wrote it, and the
//! caller's input goes to the stdin the runtime keeps open for a container created with
//! `stdin: true`.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use rkube_proto::api::StreamOpen;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, DuplexStream};
use tonic::Status;

use crate::runtime::interactive::Interactive;
use crate::runtime::{ContainerStatus, Error, Runtime, State};

const POLL: Duration = Duration::from_millis(100);

pub(crate) async fn attach(
    rt: Arc<dyn Runtime>,
    c: &ContainerStatus,
    open: &StreamOpen,
) -> Result<Interactive, Status> {
    match rt.attach(&c.id, open.stdin, open.tty).await {
        Err(Error::Unsupported(_)) => {}
        r => return r.map_err(super::status),
    }
    let stdin = match open.stdin {
        true => Some(rt.attach_stdin(&c.id).await.map_err(super::status)?),
        false => None,
    };
    // From here on: what the process writes once the caller can write to it is followed.
    let mut log = tokio::fs::File::open(&c.log_path)
        .await
        .map_err(|e| super::status(e.into()))?;
    let offset = log
        .seek(SeekFrom::End(0))
        .await
        .map_err(|e| super::status(e.into()))?;
    let (out_w, out_r) = tokio::io::duplex(64 * 1024);
    let (err_w, err_r) = tokio::io::duplex(64 * 1024);
    let id = c.id.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let r = follow(rt, &id, (log, offset), out_w, err_w, &done_tx).await;
        let _ = done_tx.send(r);
    });
    Ok(Interactive {
        stdin,
        stdout: Some(Box::pin(out_r)),
        stderr: Some(Box::pin(err_r)),
        terminal: None,
        exit: Box::pin(async move {
            match done_rx.await {
                Ok(r) => r.map(|()| 0),
                Err(_) => Ok(0),
            }
        }),
    })
}

/// Copies the log's lines from `offset` on to `out` and `err` until the container stops
/// running or the caller goes away (`done` closed).
async fn follow(
    rt: Arc<dyn Runtime>,
    id: &str,
    (mut file, mut offset): (tokio::fs::File, u64),
    mut out: DuplexStream,
    mut err: DuplexStream,
    done: &tokio::sync::oneshot::Sender<crate::runtime::Result<()>>,
) -> crate::runtime::Result<()> {
    let mut partial = Vec::new();
    loop {
        let running = rt
            .container_status(id)
            .await
            .is_ok_and(|s| s.state == State::Running);
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(offset)).await?;
        file.read_to_end(&mut buf).await?;
        offset += buf.len() as u64;
        partial.extend_from_slice(&buf);
        let complete = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<u8> = partial.drain(..complete).collect();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Some((stream, text)) = parse_line(line) else {
                continue;
            };
            let to = if stream == Stream::Stderr {
                &mut err
            } else {
                &mut out
            };
            if to.write_all(&text).await.is_err() {
                return Ok(());
            }
        }
        if !running || done.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A CRI log line `<time> <stream> <P|F> <text>`: the stream and the bytes the process
/// wrote (a full line gets its newline back).
fn parse_line(line: &[u8]) -> Option<(Stream, Vec<u8>)> {
    let mut f = line.splitn(4, |b| *b == b' ');
    let (_ts, stream, tag) = (f.next()?, f.next()?, f.next()?);
    let mut text = f.next().unwrap_or_default().to_vec();
    if tag == b"F" {
        text.push(b'\n');
    }
    let stream = match stream {
        b"stderr" => Stream::Stderr,
        _ => Stream::Stdout,
    };
    Some((stream, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_become_what_the_process_wrote() {
        type Written<'a> = Option<(Stream, &'a [u8])>;
        let cases: [(&[u8], Written); 4] = [
            (
                b"2024-01-01T00:00:00Z stdout F hello world",
                Some((Stream::Stdout, b"hello world\n")),
            ),
            (
                b"2024-01-01T00:00:00Z stderr P part",
                Some((Stream::Stderr, b"part")),
            ),
            (
                b"2024-01-01T00:00:00Z stdout F ",
                Some((Stream::Stdout, b"\n")),
            ),
            (b"garbage", None),
        ];
        for (line, want) in cases {
            let got = parse_line(line);
            assert_eq!(
                got,
                want.map(|(s, t)| (s, t.to_vec())),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
