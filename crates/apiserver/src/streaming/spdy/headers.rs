//! SPDY/3 header blocks: name/value pairs (32-bit counts and lengths; several values of a
//! name joined by NUL), compressed with zlib primed with the SPDY/3 dictionary. Each
//! direction of a connection keeps one compression context for its whole life, and each
//! block ends on a sync flush.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The words SPDY/3 primes zlib with, each preceded by its 32-bit length in the dictionary.
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// What follows the words in the dictionary, as it is.
const DICTIONARY_TAIL: &str = "100101201202205206300302303304305306307402405406407408409410\
411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server \
Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov \
Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,\
image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate\
max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// The SPDY/3 zlib dictionary.
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1424);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// A header block's pairs, names lowercase, in order.
pub type Headers = Vec<(String, String)>;

/// The first value of `name` in `headers`.
pub fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("the header block does not decompress: {0}")]
    Zlib(String),
    #[error("the header block is malformed: {0}")]
    Malformed(&'static str),
    #[error("the header block is larger than {0} bytes")]
    TooLarge(usize),
}

/// Blocks larger than this are refused (a peer could otherwise make us inflate without end).
pub const MAX_BLOCK: usize = 1 << 20;

/// The compressing side of one direction of a connection.
pub struct Compressor(Compress);

impl Compressor {
    pub fn new() -> Self {
        let mut c = Compress::new(Compression::best(), true);
        // A fresh deflate stream always accepts a dictionary.
        let _ = c.set_dictionary(&dictionary());
        Compressor(c)
    }

    /// The compressed block for `headers`.
    pub fn compress(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (n, v) in headers {
            for s in [n.to_ascii_lowercase().as_str(), v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            out.reserve(256);
            let before = self.0.total_in();
            // Compressing into a vector with spare room only fails on a programming error.
            let _ = self.0.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.0.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

/// The decompressing side of one direction of a connection.
pub struct Decompressor {
    z: Decompress,
    dictionary: Vec<u8>,
}

impl Decompressor {
    pub fn new() -> Self {
        Decompressor {
            z: Decompress::new(true),
            dictionary: dictionary(),
        }
    }

    /// The pairs of a compressed block.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        let raw = self.inflate(block)?;
        parse_pairs(&raw)
    }

    fn inflate(&mut self, mut block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_BLOCK {
                    return Err(HeaderError::TooLarge(MAX_BLOCK));
                }
                out.reserve(out.len().max(256));
            }
            let before = self.z.total_in();
            let r = self
                .z
                .decompress_vec(block, &mut out, FlushDecompress::Sync);
            block = &block[(self.z.total_in() - before) as usize..];
            match r {
                Ok(Status::Ok | Status::BufError) => {
                    if block.is_empty() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                }
                Ok(Status::StreamEnd) => return Ok(out),
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
            }
        }
    }
}

impl Default for Decompressor {
    fn default() -> Self {
        Self::new()
    }
}

fn parse_pairs(mut raw: &[u8]) -> Result<Headers, HeaderError> {
    fn take_u32(raw: &mut &[u8]) -> Result<usize, HeaderError> {
        if raw.len() < 4 {
            return Err(HeaderError::Malformed("a length is cut short"));
        }
        let n = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        *raw = &raw[4..];
        Ok(n)
    }
    fn take_str(raw: &mut &[u8]) -> Result<String, HeaderError> {
        let n = take_u32(raw)?;
        if raw.len() < n {
            return Err(HeaderError::Malformed("a name or value is cut short"));
        }
        let s = String::from_utf8_lossy(&raw[..n]).into_owned();
        *raw = &raw[n..];
        Ok(s)
    }
    let count = take_u32(&mut raw)?;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take_str(&mut raw)?;
        let value = take_str(&mut raw)?;
        if name.is_empty() {
            return Err(HeaderError::Malformed("a header name is empty"));
        }
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"enq=0."));
        // zlib names a dictionary by its Adler-32; SPDY/3 peers put this one in their
        // first block's header.
        let adler = {
            let (mut a, mut b) = (1u32, 0u32);
            for x in &d {
                a = (a + u32::from(*x)) % 65521;
                b = (b + a) % 65521;
            }
            (b << 16) | a
        };
        assert_eq!(adler, 0xe3c6_a7c2);
    }

    #[test]
    fn blocks_round_trip_through_one_context_per_direction() {
        let (mut c, mut d) = (Compressor::new(), Decompressor::new());
        let blocks: Vec<Vec<(&str, &str)>> = vec![
            vec![
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ],
            vec![("streamtype", "data"), ("port", "8080"), ("requestid", "0")],
            vec![],
            vec![("X-Multi", "a\0b")],
        ];
        for block in blocks {
            let z = c.compress(&block);
            let got = d.decompress(&z).unwrap();
            let want: Headers = block
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_block_from_a_fresh_stream_names_the_dictionary() {
        let z = Compressor::new().compress(&[("streamtype", "stdout")]);
        // CMF, FLG with FDICT, then the dictionary's Adler-32.
        assert_eq!(z[0] & 0x0f, 8, "deflate");
        assert_ne!(z[1] & 0x20, 0, "FDICT set");
        assert_eq!(&z[2..6], &0xe3c6_a7c2u32.to_be_bytes());
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("count only, pairs missing", vec![0, 0, 0, 1]),
            (
                "value length past the end",
                vec![0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 9],
            ),
            ("empty name", vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (name, raw) in cases {
            assert!(parse_pairs(&raw).is_err(), "{name}");
        }
        let mut d = Decompressor::new();
        assert!(matches!(
            d.decompress(b"not zlib at all"),
            Err(HeaderError::Zlib(_))
        ));
    }
}
