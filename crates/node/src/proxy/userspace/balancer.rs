//! Endpoint choice for one Service port: round-robin over the ready endpoints, and with
//! `sessionAffinity: ClientIP` the endpoint a client last reached, until its affinity
//! times out. The endpoint list is swapped in place when the EndpointSlices change;
//! connections already made are not touched.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Default)]
struct Inner {
    endpoints: Vec<SocketAddr>,
    next: usize,
    affinity: Option<Duration>,
    sticky: HashMap<IpAddr, (SocketAddr, Instant)>,
}

#[derive(Default)]
pub struct Balancer {
    inner: Mutex<Inner>,
}

impl Balancer {
    pub fn new(endpoints: Vec<SocketAddr>, affinity: Option<Duration>) -> Self {
        let b = Balancer::default();
        b.update(endpoints, affinity);
        b
    }

    /// New endpoints (and affinity setting); clients stuck to an endpoint that is gone
    /// are released.
    pub fn update(&self, endpoints: Vec<SocketAddr>, affinity: Option<Duration>) {
        let mut g = self.inner.lock();
        if affinity.is_none() {
            g.sticky.clear();
        } else {
            g.sticky.retain(|_, (ep, _)| endpoints.contains(ep));
        }
        g.endpoints = endpoints;
        g.affinity = affinity;
    }

    /// The endpoints to try for a connection from `client`, best first: its sticky
    /// endpoint if it has one, then every endpoint in round-robin order.
    pub fn candidates(&self, client: IpAddr) -> Vec<SocketAddr> {
        let mut g = self.inner.lock();
        let n = g.endpoints.len();
        if n == 0 {
            return vec![];
        }
        let start = g.next % n;
        g.next = g.next.wrapping_add(1);
        let mut out: Vec<SocketAddr> = (0..n).map(|i| g.endpoints[(start + i) % n]).collect();
        if let Some(ttl) = g.affinity {
            let now = Instant::now();
            if let Some((ep, at)) = g.sticky.get(&client).copied() {
                if now.duration_since(at) < ttl {
                    out.retain(|e| *e != ep);
                    out.insert(0, ep);
                } else {
                    g.sticky.remove(&client);
                }
            }
        }
        out
    }

    /// `client` reached `ep`: with affinity, it sticks there.
    pub fn connected(&self, client: IpAddr, ep: SocketAddr) {
        let mut g = self.inner.lock();
        if g.affinity.is_some() {
            g.sticky.insert(client, (ep, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(n: u16) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([10, 0, 0, i as u8], 80)))
            .collect()
    }

    #[test]
    fn round_robin_spreads_and_affinity_sticks() {
        let client: IpAddr = [192, 0, 2, 1].into();
        let b = Balancer::new(eps(3), None);
        let firsts: Vec<SocketAddr> = (0..6).map(|_| b.candidates(client)[0]).collect();
        assert_eq!(&firsts[..3], &eps(3)[..]);
        assert_eq!(&firsts[3..], &eps(3)[..]);
        assert_eq!(
            b.candidates(client).len(),
            3,
            "every endpoint is a fallback"
        );

        b.update(eps(3), Some(Duration::from_secs(60)));
        let first = b.candidates(client)[0];
        b.connected(client, first);
        for _ in 0..5 {
            assert_eq!(b.candidates(client)[0], first);
        }
        // The sticky endpoint goes away: the client is spread again.
        let rest: Vec<SocketAddr> = eps(3).into_iter().filter(|e| *e != first).collect();
        b.update(rest.clone(), Some(Duration::from_secs(60)));
        assert!(rest.contains(&b.candidates(client)[0]));
        b.update(vec![], None);
        assert!(b.candidates(client).is_empty());
    }

    #[test]
    fn affinity_expires() {
        let client: IpAddr = [192, 0, 2, 1].into();
        let b = Balancer::new(eps(2), Some(Duration::from_millis(1)));
        b.connected(client, eps(2)[1]);
        std::thread::sleep(Duration::from_millis(5));
        let a = b.candidates(client)[0];
        let c = b.candidates(client)[0];
        assert_ne!(a, c, "after the timeout the client is spread again");
    }
}
