//! Stock kubectl against the handlers.
