//! Encoding of values kept in RocksDB and sent between members (postcard over serde).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::StorageError;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own in-memory types into a Vec cannot fail.
    postcard::to_allocvec(v).expect("postcard encoding of an in-memory value")
}

pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(b)
}

/// Wraps an I/O or decoding failure as openraft's storage error.
pub fn storage_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::from_io_error(
        openraft::ErrorSubject::Store,
        openraft::ErrorVerb::Write,
        std::io::Error::other(e),
    )
}
