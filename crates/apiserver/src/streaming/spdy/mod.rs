//! SPDY/3.1, as far as Kubernetes' streaming protocols use it: frames ([`frame`]),
//! compressed header blocks ([`headers`]) and the server side of a connection ([`conn`]).
//! No maintained Rust implementation exists; this one is written from the SPDY/3 draft.

pub mod conn;
pub mod frame;
pub mod headers;

pub use conn::{Connection, Stream};
