//! apiserver: kube-apiserver's role in rkube — the single entry point for resource
//! operations, running in every control-plane member on top of the in-process raft-store.
//!
//! - [`registry`]: the kinds served (built-in `k8s-openapi` kinds and CRDs) and discovery;
//! - [`handler`]: the request pipeline — authenticate, authorize, mutating admission,
//!   validate, validating admission, store — with Kubernetes' object semantics;
//! - [`cache`]: the watch cache every list and watch is served from;
//! - [`encryption`]: encryption at rest of the resources an `EncryptionConfiguration` names;
//! - [`tokens`]: service-account tokens, signed with a key every member shares through
//!   the store;
//! - [`grpc`]: the `rkube.api.v1` services; [`server`]: starting it all;
//! - [`streaming`]: `exec`, `attach` and `portforward` over SPDY/3.1 and WebSocket.
//!
//! It depends on `raft-store` and `rkube-proto`; nothing but the `rkube` binary depends on
//! it — every other component reaches it over gRPC through the `client` crate.

pub mod admission;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod certificates;
pub mod encryption;
pub mod error;
pub mod grpc;
pub mod handler;
mod http;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub use api_model::quantity;
pub mod rbac;
pub mod registry;
pub mod rest;
pub mod selector;
pub mod server;
pub mod services;
pub mod storage;
pub mod streaming;
pub mod system_client;
pub mod tls;
pub mod tokens;
pub mod validation;

pub use error::{Error, Result};
pub use server::{ApiServer, ApiServerConfig};
