//! One DNS request: answered from the zone when the name is the cluster's, else asked of
//! the upstream resolvers. Only standard queries are served; zone transfers are refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::{Name, Record, RecordType};
use hickory_server::proto::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use parking_lot::RwLock;

use super::zone::{Answer, Zone};
use crate::{Error, Result};

/// The resolver for names outside the cluster: `upstreams`, or the host's.
pub fn upstream(upstreams: &[SocketAddr]) -> Result<TokioResolver> {
    let mut config = if upstreams.is_empty() {
        hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| Error::invalid("/etc/resolv.conf", e.to_string()))?
            .0
    } else {
        ResolverConfig::new()
    };
    for a in upstreams {
        config.add_name_server(NameServerConfig::new(*a, Protocol::Udp));
        config.add_name_server(NameServerConfig::new(*a, Protocol::Tcp));
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.ndots = 0;
    opts.preserve_intermediates = true;
    let mut builder =
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
    *builder.options_mut() = opts;
    Ok(builder.build())
}

pub struct Handler {
    zone: Arc<RwLock<Arc<Zone>>>,
    upstream: TokioResolver,
}

/// What goes back: a code, the answers, and the SOA for a negative answer.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    soa: Vec<Record>,
}

impl Reply {
    fn code(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: false,
            answers: vec![],
            soa: vec![],
        }
    }
}

impl Handler {
    pub fn new(zone: Arc<RwLock<Arc<Zone>>>, upstream: TokioResolver) -> Self {
        Handler { zone, upstream }
    }

    async fn reply(&self, name: &Name, qtype: RecordType) -> Reply {
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Reply::code(ResponseCode::Refused);
        }
        let zone = self.zone.read().clone();
        let negative = |code| Reply {
            code,
            authoritative: true,
            answers: vec![],
            soa: vec![zone.soa()],
        };
        match zone.answer(name, qtype) {
            Answer::NxDomain => negative(ResponseCode::NXDomain),
            Answer::NoData => negative(ResponseCode::NoError),
            Answer::Records(mut answers) => {
                // An ExternalName: the CNAME, then what its target resolves to.
                let target = answers
                    .iter()
                    .find_map(|r| r.data().as_cname().map(|c| c.0.clone()));
                if let Some(t) = target.filter(|_| qtype != RecordType::CNAME) {
                    let more = self.forward(&t, qtype).await;
                    answers.extend(more.answers);
                }
                Reply {
                    code: ResponseCode::NoError,
                    authoritative: true,
                    answers,
                    soa: vec![],
                }
            }
            Answer::Elsewhere => self.forward(name, qtype).await,
        }
    }

    async fn forward(&self, name: &Name, qtype: RecordType) -> Reply {
        let mut name = name.clone();
        name.set_fqdn(true);
        match self.upstream.lookup(name, qtype).await {
            Ok(l) => Reply {
                code: ResponseCode::NoError,
                authoritative: false,
                answers: l.records().to_vec(),
                soa: vec![],
            },
            Err(e) if e.is_nx_domain() => Reply::code(ResponseCode::NXDomain),
            Err(e) if e.is_no_records_found() => Reply::code(ResponseCode::NoError),
            Err(e) => {
                tracing::debug!(error = %e, "upstream DNS failed");
                Reply::code(ResponseCode::ServFail)
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(true);
        let reply = match request.request_info() {
            _ if request.message_type() != MessageType::Query => Reply::code(ResponseCode::FormErr),
            _ if request.op_code() != OpCode::Query => Reply::code(ResponseCode::NotImp),
            Ok(info) => {
                let name: Name = info.query.name().into();
                self.reply(&name, info.query.query_type()).await
            }
            Err(_) => Reply::code(ResponseCode::FormErr),
        };
        header.set_response_code(reply.code);
        header.set_authoritative(reply.authoritative);
        let msg = builder.build(
            header,
            reply.answers.iter(),
            std::iter::empty(),
            reply.soa.iter(),
            std::iter::empty(),
        );
        match response.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "DNS answer not sent");
                let mut h = Header::new();
                h.set_response_code(ResponseCode::ServFail);
                h.into()
            }
        }
    }
}
