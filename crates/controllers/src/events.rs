//! Events: the recorder every controller shares, from the `client` crate.

pub use client::events::{event_for, Recorder};
