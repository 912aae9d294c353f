//! Interactive exec, attach (with stdin, and `stdinOnce`) and port-forward against a real
//! control plane and a node agent on the process runtime (and exec and attach on
//! containerd): first through the apiserver's
//! gRPC `Pods` service (the node's streaming calls end to end), then with stock kubectl
//! through the REST API ([`kubectl`]).

mod kubectl;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rkube_proto::api::pods_client::PodsClient;
use rkube_proto::api::port_forward_input::Input as PfInput;
use rkube_proto::api::stream_input::Input;
use rkube_proto::api::stream_output::Output;
use rkube_proto::api::*;
use rkube_tests::containerd::{Containerd, IMAGE};
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::free_port;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::pod_lifecycle::{create, running, wait_pod};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(120);

async fn pods_client(cluster: &rkube_tests::Cluster) -> PodsClient<Channel> {
    let addr = cluster.members[0].client;
    let tls = cluster.pki.tonic_tls(&cluster.pki.admin);
    let ch = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    PodsClient::new(ch)
}

/// Opens a session with `open`, sends `input`, and collects stdout, stderr and the exit.
async fn session(
    pods: &mut PodsClient<Channel>,
    open: StreamOpen,
    input: Vec<Input>,
) -> (String, String, StreamExit) {
    let (tx, rx) = mpsc::channel(16);
    tx.send(StreamInput {
        input: Some(Input::Open(open)),
    })
    .await
    .unwrap();
    for i in input {
        tx.send(StreamInput { input: Some(i) }).await.unwrap();
    }
    let mut outputs = pods
        .stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(o) = outputs.next().await {
        match o.unwrap().output {
            Some(Output::Stdout(b)) => out.extend_from_slice(&b),
            Some(Output::Stderr(b)) => err.extend_from_slice(&b),
            Some(Output::Exit(e)) => {
                let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
                return (text(out), text(err), e);
            }
            None => {}
        }
    }
    panic!("the session ended without an exit status");
}

fn exec(pod: &str, command: &[&str], stdin: bool, tty: bool) -> StreamOpen {
    StreamOpen {
        kind: StreamKind::Exec.into(),
        namespace: "default".into(),
        pod: pod.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        stdin,
        stdout: true,
        stderr: !tty,
        tty,
        ..Default::default()
    }
}

/// A pod serving `hello-from-pod` over HTTP on `port` (host network: the process runtime
/// without a pod network).
async fn web_pod(client: &client::Client, dir: &str, port: u16) {
    create(
        client,
        json!({"metadata": {"name": "web"},
        "spec": {"nodeName": "w1", "volumes": [{"name": "www", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "busybox",
                "command": ["/bin/sh", "-c", format!("echo hello-from-pod > {dir}/index.html; echo started; exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h {dir}")],
                "volumeMounts": [{"name": "www", "mountPath": dir}]}]}}),
    )
    .await;
    wait_pod(client, "web", "web running", |p| running(p, "c")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_attach_and_port_forward_reach_the_process_runtime() {
    assert!(
        is_root(),
        "the process runtime's exec enters namespaces as root"
    );
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    node.wait_ready(&client).await;
    let www = tempfile::tempdir().unwrap();
    let dir = www.path().join("www").to_string_lossy().into_owned();
    let port = free_port();
    web_pod(&client, &dir, port).await;
    create(
        &client,
        json!({"metadata": {"name": "ticker"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 0.2; done"]}]}}),
    )
    .await;
    wait_pod(&client, "ticker", "ticker running", |p| running(p, "c")).await;
    for (name, once) in [("echo", false), ("once", true)] {
        create(&client, echo_pod(name, "busybox", once)).await;
        wait_pod(&client, name, "running", |p| running(p, "c")).await;
    }
    let mut pods = pods_client(&cluster).await;
    tokio::time::timeout(DEADLINE, async {
        exec_with_pipes(&mut pods).await;
        exec_with_a_terminal(&mut pods).await;
        attach_streams_output(&mut pods).await;
        attach_writes_to_stdin(&mut pods, "echo").await;
        attach_writes_to_stdin(&mut pods, "echo").await;
        stdin_once_ends_with_the_first_attach(&mut pods).await;
        port_forward_carries_http(&mut pods, port).await;
    })
    .await
    .expect("the sessions end within the deadline");
}

/// Pipes: stdin in, both outputs out, the exit code last; a missing command fails.
async fn exec_with_pipes(pods: &mut PodsClient<Channel>) {
    let script = "read x; echo got:$x; echo oops >&2; exit 3";
    let (out, err, exit) = session(
        pods,
        exec("web", &["/bin/sh", "-c", script], true, false),
        vec![
            Input::Stdin(Bytes::from_static(b"hello\n")),
            Input::CloseStdin(true),
        ],
    )
    .await;
    assert_eq!(
        (out.as_str(), err.as_str(), exit.exit_code),
        ("got:hello\n", "oops\n", 3)
    );
    let (_, err, exit) = session(
        pods,
        exec("web", &["/no/such/binary"], false, false),
        vec![],
    )
    .await;
    assert_ne!(exit.exit_code, 0, "{err}");
}

/// A terminal: its size is set before the input that follows it is read.
async fn exec_with_a_terminal(pods: &mut PodsClient<Channel>) {
    let script = "read x; stty size; tty; echo x=$x term=$TERM";
    let (out, _, exit) = session(
        pods,
        exec("web", &["/bin/sh", "-c", script], true, true),
        vec![
            Input::Resize(TerminalSize {
                width: 100,
                height: 30,
            }),
            Input::Stdin(Bytes::from_static(b"abc\r")),
        ],
    )
    .await;
    assert_eq!(exit.exit_code, 0, "{out}");
    assert!(out.contains("30 100"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("x=abc term=xterm"), "{out:?}");
}

/// Attach streams what the container writes from now on, each on its stream; asking for
/// stdin is refused, since the container was not created with it.
async fn attach_streams_output(pods: &mut PodsClient<Channel>) {
    let attach = |stdin| StreamOpen {
        kind: StreamKind::Attach.into(),
        stdin,
        ..exec("ticker", &[], stdin, false)
    };
    let (tx, rx) = mpsc::channel(1);
    tx.send(StreamInput {
        input: Some(Input::Open(attach(false))),
    })
    .await
    .unwrap();
    let mut outputs = pods
        .stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let (mut out, mut err) = (String::new(), String::new());
    while !(out.contains("tick") && err.contains("tock")) {
        match outputs.next().await.unwrap().unwrap().output {
            Some(Output::Stdout(b)) => out.push_str(&String::from_utf8_lossy(&b)),
            Some(Output::Stderr(b)) => err.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("attach ended early: {other:?}"),
        }
    }
    assert!(
        !out.contains("tock") && !err.contains("tick"),
        "{out:?} {err:?}"
    );
    drop(outputs);
    let (tx, rx) = mpsc::channel(1);
    tx.send(StreamInput {
        input: Some(Input::Open(attach(true))),
    })
    .await
    .unwrap();
    let refused = match pods.stream(ReceiverStream::new(rx)).await {
        Err(e) => e.message().to_string(),
        Ok(r) => match r.into_inner().next().await {
            Some(Err(e)) => e.message().to_string(),
            other => panic!("attach with stdin: {other:?}"),
        },
    };
    assert!(
        refused.contains("was not created with stdin: true"),
        "{refused}"
    );
}

/// A pod whose container keeps stdin open (`stdinOnce` with `once`) and answers each line
/// it reads with `got <line>`, then `eof` and exits when its stdin ends.
fn echo_pod(name: &str, image: &str, once: bool) -> serde_json::Value {
    json!({"metadata": {"name": name},
    "spec": {"nodeName": "w1", "restartPolicy": "Never", "containers": [{"name": "c",
        "image": image, "stdin": true, "stdinOnce": once,
        "command": ["/bin/sh", "-c", "while read l; do echo got $l; done; echo eof"]}]}})
}

fn attach(pod: &str, stdin: bool) -> StreamOpen {
    StreamOpen {
        kind: StreamKind::Attach.into(),
        ..exec(pod, &[], stdin, false)
    }
}

/// Attaches to `pod` with stdin, writes a line and reads the container's answer, then
/// goes away: the container keeps running with its stdin open for the next client.
async fn attach_writes_to_stdin(pods: &mut PodsClient<Channel>, pod: &str) {
    let (tx, rx) = mpsc::channel(4);
    let line = format!("line-{}", rand_suffix());
    for input in [
        Input::Open(attach(pod, true)),
        Input::Stdin(Bytes::from(format!("{line}\n"))),
    ] {
        tx.send(StreamInput { input: Some(input) }).await.unwrap();
    }
    let mut outputs = pods
        .stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut out = String::new();
    while !out.contains(&format!("got {line}\n")) {
        match outputs.next().await.unwrap().unwrap().output {
            Some(Output::Stdout(b)) => out.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("attach to {pod} ended early: {other:?} after {out:?}"),
        }
    }
    assert!(!out.contains("eof"), "{out:?}");
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// With `stdinOnce`, the end of the first client's input is the end of the container's:
/// it answers, sees the end, and exits, which ends the session.
async fn stdin_once_ends_with_the_first_attach(pods: &mut PodsClient<Channel>) {
    let (out, _, exit) = session(
        pods,
        attach("once", true),
        vec![
            Input::Stdin(Bytes::from_static(b"only\n")),
            Input::CloseStdin(true),
        ],
    )
    .await;
    assert_eq!((out.as_str(), exit.error.as_str()), ("got only\neof\n", ""));
    let (tx, rx) = mpsc::channel(1);
    tx.send(StreamInput {
        input: Some(Input::Open(attach("once", true))),
    })
    .await
    .unwrap();
    let refused = match pods.stream(ReceiverStream::new(rx)).await {
        Err(e) => e.message().to_string(),
        Ok(r) => format!("{:?}", r.into_inner().next().await),
    };
    assert!(refused.contains("not running"), "{refused}");
}

/// Port-forward: one connection, an HTTP request and its answer.
async fn port_forward_carries_http(pods: &mut PodsClient<Channel>, port: u16) {
    let (tx, rx) = mpsc::channel(4);
    let open = PortForwardOpen {
        namespace: "default".into(),
        pod: "web".into(),
        port: port.into(),
    };
    for input in [
        PfInput::Open(open),
        PfInput::Data(Bytes::from_static(b"GET /index.html HTTP/1.0\r\n\r\n")),
    ] {
        tx.send(PortForwardInput { input: Some(input) })
            .await
            .unwrap();
    }
    drop(tx);
    let mut outputs = pods
        .port_forward(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut body = Vec::new();
    while let Some(o) = outputs.next().await {
        body.extend_from_slice(&o.unwrap().data);
    }
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("hello-from-pod"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_on_containerd_goes_through_its_streaming_server() {
    assert!(is_root(), "containerd needs root");
    let ctd = Containerd::start();
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let sock = ctd.socket().to_string_lossy().to_string();
    let node = NodeAgent::start(
        &cluster.node_access("w1"),
        "w1",
        &["--runtime", "cri", "--cri-socket", &sock],
    );
    node.wait_ready(&client).await;
    create(
        &client,
        json!({"metadata": {"name": "box"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": IMAGE,
            "command": ["/bin/sh", "-c", "sleep 3600"]}]}}),
    )
    .await;
    wait_pod(&client, "box", "box running", |p| running(p, "c")).await;
    create(&client, echo_pod("echo", IMAGE, false)).await;
    wait_pod(&client, "echo", "echo running", |p| running(p, "c")).await;
    let mut pods = pods_client(&cluster).await;
    tokio::time::timeout(DEADLINE, async {
        attach_writes_to_stdin(&mut pods, "echo").await;
        attach_writes_to_stdin(&mut pods, "echo").await;
        let script = "echo out; echo err >&2; exit 3";
        let (out, err, exit) = session(
            &mut pods,
            exec("box", &["/bin/sh", "-c", script], false, false),
            vec![],
        )
        .await;
        assert_eq!(
            (
                out.as_str(),
                err.as_str(),
                exit.exit_code,
                exit.error.as_str()
            ),
            ("out\n", "err\n", 3, "")
        );
        // The runtime applies resizes apart from input: wait for the size to show.
        let script =
            "read x; for i in $(seq 50); do s=$(stty size); [ \"$s\" = '30 100' ] && break; \
                      sleep 0.1; done; echo size=$s; tty; echo x=$x";
        let (out, _, exit) = session(
            &mut pods,
            exec("box", &["/bin/sh", "-c", script], true, true),
            vec![
                Input::Resize(TerminalSize {
                    width: 100,
                    height: 30,
                }),
                Input::Stdin(Bytes::from_static(b"abc\r")),
            ],
        )
        .await;
        assert_eq!(exit.exit_code, 0, "{out}");
        assert!(out.contains("size=30 100"), "{out:?}");
        assert!(out.contains("/dev/pts/"), "{out:?}");
        assert!(out.contains("x=abc"), "{out:?}");
    })
    .await
    .expect("the sessions end within the deadline");
    drop(node);
    drop(ctd);
}
