//! Events: the recorder every controller shares, from the `client` crate.

pub(crate) use client::events::{event_for, Recorder};
