//! Liveness, readiness and startup probes: exec, httpGet and tcpSocket, with
//! initialDelaySeconds, periodSeconds, timeoutSeconds and the success/failure thresholds.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::Runtime;

/// One probe of one container, with its counters.
pub struct Prober {
    spec: Probe,
    since: Instant,
    last: Option<Instant>,
    successes: i32,
    failures: i32,
    /// The probe's verdict: passing (true) or failing.
    pub ok: bool,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

impl Prober {
    /// `initial`: the verdict before the first result (readiness and startup start false).
    pub fn new(spec: Probe, initial: bool) -> Prober {
        Prober {
            spec,
            since: Instant::now(),
            last: None,
            successes: 0,
            failures: 0,
            ok: initial,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        if now.duration_since(self.since) < secs(self.spec.initial_delay_seconds, 0) {
            return false;
        }
        self.last.is_none_or(|l| {
            now.duration_since(l) >= secs(self.spec.period_seconds, 10).max(Duration::from_secs(1))
        })
    }

    /// Whether the probe has failed `failureThreshold` times in a row.
    pub fn failing(&self) -> bool {
        self.failures >= self.spec.failure_threshold.unwrap_or(3).max(1)
    }

    /// Runs the probe once and updates the verdict. Returns whether the verdict changed.
    pub async fn probe(&mut self, rt: &dyn Runtime, container_id: &str, pod_ip: &str) -> bool {
        self.last = Some(Instant::now());
        let timeout = secs(self.spec.timeout_seconds, 1).max(Duration::from_secs(1));
        let passed = run(&self.spec, rt, container_id, pod_ip, timeout)
            .await
            .is_ok();
        let before = self.ok;
        if passed {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.spec.success_threshold.unwrap_or(1).max(1) {
                self.ok = true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.spec.failure_threshold.unwrap_or(3).max(1) {
                self.ok = false;
            }
        }
        before != self.ok
    }
}

/// `probe` with its named ports (`port: http`) replaced by the container's numbers.
pub fn resolve_named_ports(mut probe: Probe, c: &k8s_openapi::api::core::v1::Container) -> Probe {
    let number = |p: &mut IntOrString| {
        if let IntOrString::String(name) = p {
            let found = c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()));
            if let Some(cp) = found {
                *p = IntOrString::Int(cp.container_port);
            }
        }
    };
    if let Some(h) = probe.http_get.as_mut() {
        number(&mut h.port);
    }
    if let Some(t) = probe.tcp_socket.as_mut() {
        number(&mut t.port);
    }
    probe
}

/// Why a probe attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Exec(#[from] crate::runtime::Error),
    #[error("exit code {0}")]
    ExitCode(i32),
    #[error("port {0} out of range")]
    PortRange(i32),
    #[error("no container port is named {0:?}")]
    PortName(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    TimedOut,
    #[error("not an HTTP response: {0:?}")]
    NotHttp(String),
    #[error("HTTP probe failed with statuscode: {0}")]
    Status(u16),
    #[error("the probe has no handler (exec, httpGet or tcpSocket)")]
    NoHandler,
}

fn port_of(p: &IntOrString) -> Result<u16, Failure> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| Failure::PortRange(*n)),
        IntOrString::String(s) => s.parse().map_err(|_| Failure::PortName(s.clone())),
    }
}

/// One probe attempt: `Ok` when it passes.
pub async fn run(
    p: &Probe,
    rt: &dyn Runtime,
    container_id: &str,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    if let Some(e) = &p.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let r = rt.exec_sync(container_id, &cmd, timeout).await?;
        return match r.exit_code {
            0 => Ok(()),
            code => Err(Failure::ExitCode(code)),
        };
    }
    if let Some(t) = &p.tcp_socket {
        let host = t.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let port = port_of(&t.port)?;
        return tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| Failure::TimedOut)?
            .map(drop)
            .map_err(Failure::Io);
    }
    if let Some(h) = &p.http_get {
        let host = h.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let port = port_of(&h.port)?;
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/rkube\r\nConnection: close\r\n");
        for hd in h.http_headers.iter().flatten() {
            req.push_str(&format!("{}: {}\r\n", hd.name, hd.value));
        }
        req.push_str("\r\n");
        let fut = async {
            let mut s = TcpStream::connect((host.as_str(), port)).await?;
            s.write_all(req.as_bytes()).await?;
            let mut head = vec![0u8; 64];
            let n = s.read(&mut head).await?;
            let line = String::from_utf8_lossy(&head[..n]).to_string();
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or(Failure::NotHttp(line))?;
            match code {
                200..400 => Ok(()),
                code => Err(Failure::Status(code)),
            }
        };
        return tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| Failure::TimedOut)?;
    }
    Err(Failure::NoHandler)
}
