//! Loopback ports for the processes a test starts.
//!
//! A port is chosen here and bound later by another process, so nothing may take it in
//! between. Asking the kernel for a free port (`bind(…:0)`, then close) is not enough:
//! the kernel hands the same port to the next such request as readily as any other, so
//! two members of one cluster could be given the same port (measured here: 0.6% of
//! nine-port clusters), and any process binding `:0` could take a chosen port before its
//! owner binds it. Ports therefore come from a range below the kernel's ephemeral range,
//! which `bind(…:0)` and outgoing connections never use, and a process never hands out
//! the same port twice.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The lowest port handed out; NodePorts (30000–32767) stay above the range.
const LOW: u16 = 10_000;
/// One past the highest port handed out, unless the ephemeral range starts lower.
const HIGH: u16 = 30_000;

/// The ports this process may hand out: `[LOW, min(HIGH, ephemeral start))`.
fn range() -> (u16, u16) {
    static RANGE: OnceLock<(u16, u16)> = OnceLock::new();
    *RANGE.get_or_init(|| {
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32_768);
        let high = HIGH.min(ephemeral_low);
        assert!(
            high > LOW + 1_000,
            "the ephemeral port range starts at {ephemeral_low}: no room below it for test ports"
        );
        (LOW, high)
    })
}

/// Where this process's walk through the range starts: apart from other test processes
/// that may run at the same time.
fn start() -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    std::process::id() as usize * 7_919 + nanos
}

/// A loopback port nobody listens on, never handed out before by this process.
pub fn free_port() -> u16 {
    static NEXT: OnceLock<AtomicUsize> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicUsize::new(start()));
    let (low, high) = range();
    let span = (high - low) as usize;
    for _ in 0..span {
        let port = low + (next.fetch_add(1, Ordering::Relaxed) % span) as u16;
        // Free for both TCP and UDP, for servers that listen on both (DNS).
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// [`free_port`] on 127.0.0.1.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice_and_lie_below_the_ephemeral_range() {
        let (low, high) = range();
        let ports: Vec<u16> = (0..2_000).map(|_| free_port()).collect();
        let unique: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        assert!(ports.iter().all(|p| (low..high).contains(p)));
    }
}
