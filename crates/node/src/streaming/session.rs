//! One exec or attach session over a `Stream` call: the opening message names the
//! container and the streams; then stdin and resizes flow in while stdout and stderr flow
//! out, and the exit status comes last. The process is killed when the caller goes away.

use std::sync::Arc;
use std::time::Duration;

use rkube_proto::api::stream_input::Input;
use rkube_proto::api::stream_output::Output;
use rkube_proto::api::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::status;
use crate::runtime::interactive::{Interactive, Reader, Terminal, Writer};
use crate::runtime::{ContainerStatus, Error, Runtime, State};

pub(crate) type OutputStream = ReceiverStream<Result<StreamOutput, Status>>;

/// How long a command may run when the runtime can only run it to completion.
const BUFFERED_EXEC_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Reads the opening message, starts the process (or attaches) and returns its output.
pub(crate) async fn open(
    rt: &Arc<dyn Runtime>,
    mut inbound: Streaming<StreamInput>,
) -> Result<OutputStream, Status> {
    let open = match inbound.message().await? {
        Some(StreamInput {
            input: Some(Input::Open(o)),
        }) => o,
        _ => {
            return Err(Status::invalid_argument(
                "the first message of a stream must be `open`",
            ))
        }
    };
    let (c, _) = super::container(
        rt.as_ref(),
        &open.namespace,
        &open.pod,
        &open.container,
        false,
    )
    .await?;
    if c.state != State::Running {
        return Err(Status::failed_precondition(format!(
            "container {:?} in pod {:?} is not running",
            c.name, open.pod
        )));
    }
    let session = match open.kind() {
        StreamKind::Exec => exec(rt.clone(), &c, &open).await?,
        StreamKind::Attach => super::attach::attach(rt.clone(), &c, &open).await?,
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(run(session, inbound, tx));
    Ok(ReceiverStream::new(rx))
}

async fn exec(
    rt: Arc<dyn Runtime>,
    c: &ContainerStatus,
    open: &StreamOpen,
) -> Result<Interactive, Status> {
    if open.command.is_empty() {
        return Err(Status::invalid_argument("command: Required value"));
    }
    match rt
        .exec_interactive(&c.id, &open.command, open.stdin, open.tty)
        .await
    {
        Ok(s) => Ok(s),
        // Without stdin or a terminal, running to completion gives the same result.
        Err(Error::Unsupported(_)) if !open.stdin && !open.tty => {
            let r = rt
                .exec_sync(&c.id, &open.command, BUFFERED_EXEC_TIMEOUT)
                .await
                .map_err(status)?;
            let code = r.exit_code;
            Ok(Interactive {
                stdin: None,
                stdout: Some(Box::pin(std::io::Cursor::new(r.stdout))),
                stderr: Some(Box::pin(std::io::Cursor::new(r.stderr))),
                terminal: None,
                exit: Box::pin(async move { Ok(code) }),
            })
        }
        Err(e) => Err(status(e)),
    }
}

/// Copies the caller's input in and the process's output out until it ends, or until the
/// caller goes away (which drops, and so kills, the process).
async fn run(
    mut s: Interactive,
    inbound: Streaming<StreamInput>,
    tx: mpsc::Sender<Result<StreamOutput, Status>>,
) {
    let input = tokio::spawn(pump_input(inbound, s.stdin.take(), s.terminal.take()));
    let output = async {
        tokio::join!(
            pump(s.stdout.take(), &tx, Output::Stdout),
            pump(s.stderr.take(), &tx, Output::Stderr)
        );
        let exit = match (&mut s.exit).await {
            Ok(code) => StreamExit {
                exit_code: code,
                error: String::new(),
            },
            Err(e) => StreamExit {
                exit_code: 0,
                error: e.to_string(),
            },
        };
        let _ = tx
            .send(Ok(StreamOutput {
                output: Some(Output::Exit(exit)),
            }))
            .await;
    };
    tokio::select! {
        () = output => {}
        () = tx.closed() => {}
    }
    input.abort();
}

async fn pump(
    from: Option<Reader>,
    tx: &mpsc::Sender<Result<StreamOutput, Status>>,
    wrap: fn(bytes::Bytes) -> Output,
) {
    let Some(mut from) = from else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let msg = StreamOutput {
                    output: Some(wrap(bytes::Bytes::copy_from_slice(&buf[..n]))),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn pump_input(
    mut inbound: Streaming<StreamInput>,
    mut stdin: Option<Writer>,
    terminal: Option<Terminal>,
) {
    while let Ok(Some(msg)) = inbound.message().await {
        match msg.input {
            Some(Input::Stdin(b)) => {
                if let Some(w) = stdin.as_mut() {
                    if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                        stdin = None;
                    }
                }
            }
            Some(Input::Resize(size)) => {
                if let Some(t) = &terminal {
                    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                    if let Err(e) = t.resize(clamp(size.width), clamp(size.height)) {
                        tracing::debug!(error = %e, "resizing the terminal failed");
                    }
                }
            }
            Some(Input::CloseStdin(_)) => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            Some(Input::Open(_)) | None => {}
        }
    }
    if let Some(mut w) = stdin.take() {
        let _ = w.shutdown().await;
    }
}
