//! Sessions end to end against a fake upstream.
