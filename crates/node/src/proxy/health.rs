//! Health check node ports, as kube-proxy serves them: for every `type: LoadBalancer`
//! Service with `externalTrafficPolicy: Local`, an HTTP server on its
//! `healthCheckNodePort` answers 200 while this node has a ready endpoint of the Service,
//! and 503 while it has none, so a load balancer sends outside traffic only to nodes
//! that keep it local. The body says how many: `{"service": {"namespace": …, "name": …},
//! "localEndpoints": N}`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use serde_json::json;
use tokio::task::JoinHandle;

use super::table::ServicePort;

/// One health check server.
struct Server {
    service: String,
    local: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The health check servers of this node, by port.
#[derive(Default)]
pub struct HealthChecks {
    servers: BTreeMap<u16, Server>,
}

/// The health check port of each Service that has one, with its local endpoints.
fn wanted(table: &BTreeMap<String, ServicePort>) -> BTreeMap<u16, (String, usize)> {
    let mut out: BTreeMap<u16, (String, usize)> = BTreeMap::new();
    for sp in table.values() {
        let Some(port) = sp.health_check_node_port else {
            continue;
        };
        let service = sp.name.split(':').next().unwrap_or_default().to_string();
        let e = out.entry(port).or_insert((service, 0));
        e.1 = e.1.max(sp.external_endpoints.len());
    }
    out
}

impl HealthChecks {
    /// Serves exactly the health check ports of `table`.
    pub async fn sync(&mut self, table: &BTreeMap<String, ServicePort>) {
        let wanted = wanted(table);
        self.servers
            .retain(|port, s| wanted.get(port).is_some_and(|(svc, _)| *svc == s.service));
        for (port, (service, local)) in wanted {
            if let Some(s) = self.servers.get(&port) {
                s.local.store(local, Ordering::Relaxed);
                continue;
            }
            match serve(port, &service, local).await {
                Ok(s) => {
                    self.servers.insert(port, s);
                }
                Err(e) => {
                    tracing::warn!(%service, port, error = %e, "proxy: cannot serve the health check port")
                }
            }
        }
    }
}

async fn serve(port: u16, service: &str, local: usize) -> std::io::Result<Server> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    let count = Arc::new(AtomicUsize::new(local));
    let (namespace, name) = service.split_once('/').unwrap_or(("", service));
    let (namespace, name) = (namespace.to_string(), name.to_string());
    let shared = count.clone();
    let app = axum::Router::new().fallback(move || {
        let n = shared.load(Ordering::Relaxed);
        let body = json!({"service": {"namespace": namespace, "name": name}, "localEndpoints": n});
        let status = if n > 0 {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        async move {
            let json = [(header::CONTENT_TYPE, "application/json")];
            (status, json, body.to_string())
        }
    });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(port, error = %e, "proxy: health check server stopped");
        }
    });
    Ok(Server {
        service: service.to_string(),
        local: count,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::table::Protocol;

    fn port(name: &str, hc: Option<u16>, local: &[&str]) -> ServicePort {
        ServicePort {
            name: name.into(),
            cluster_ip: None,
            port: 80,
            node_port: Some(30080),
            protocol: Protocol::Tcp,
            affinity: None,
            endpoints: vec![],
            external_endpoints: local.iter().map(|e| e.parse().unwrap()).collect(),
            local_external: hc.is_some(),
            health_check_node_port: hc,
        }
    }

    #[test]
    fn one_server_per_service_counting_its_local_endpoints() {
        let t: BTreeMap<String, ServicePort> = [
            port(
                "default/web:http",
                Some(31000),
                &["10.244.0.2:80", "10.244.0.3:80"],
            ),
            port("default/web:https", Some(31000), &["10.244.0.2:443"]),
            port("default/api:", Some(31001), &[]),
            port("default/plain:", None, &["10.244.0.4:80"]),
        ]
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
        let w = wanted(&t);
        assert_eq!(w.len(), 2);
        assert_eq!(w[&31000], ("default/web".to_string(), 2));
        assert_eq!(w[&31001], ("default/api".to_string(), 0));
    }
}
