//! SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 as SPDY/3, plus 3.1's connection-level
//! WINDOW_UPDATE): their wire layout, read from and written to byte buffers. Header blocks
//! stay compressed here; [`super::headers`] turns them into name/value pairs.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the peer broke the protocol.
pub const RST_PROTOCOL_ERROR: u32 = 1;

/// A frame, with header blocks still compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        flags: u8,
        headers: Bytes,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Bytes,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type SPDY/3 does not define (CREDENTIAL, or unknown): the
    /// protocol says to ignore it.
    Unknown {
        kind: u16,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("SPDY version {0} is not supported (only 3)")]
    Version(u16),
    #[error("a {kind} frame of {len} bytes is malformed")]
    Malformed { kind: &'static str, len: usize },
}

const STREAM_MASK: u32 = 0x7fff_ffff;

impl Frame {
    /// Parses one frame from the front of `buf`, consuming it; `None` until `buf` holds
    /// a whole frame.
    pub fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let body = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & STREAM_MASK;
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        parse_control(kind, flags, body).map(Some)
    }

    /// Appends the frame's wire form to `out`. Data longer than the 24-bit length allows
    /// must be split by the caller.
    pub fn write(&self, out: &mut BytesMut) {
        match self {
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                headers,
            } => {
                control(out, SYN_STREAM, *flags, 10 + headers.len());
                out.put_u32(stream_id & STREAM_MASK);
                out.put_u32(associated_id & STREAM_MASK);
                out.put_u8(priority << 5);
                out.put_u8(0);
                out.put_slice(headers);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => header_block(out, SYN_REPLY, *flags, *stream_id, headers),
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => header_block(out, HEADERS, *flags, *stream_id, headers),
            Frame::RstStream { stream_id, status } => {
                control(out, RST_STREAM, 0, 8);
                out.put_u32(stream_id & STREAM_MASK);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control(out, SETTINGS, *flags, 4 + 8 * entries.len());
                out.put_u32(entries.len() as u32);
                for (f, id, v) in entries {
                    out.put_u32((u32::from(*f) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*v);
                }
            }
            Frame::Ping { id } => {
                control(out, PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control(out, GOAWAY, 0, 8);
                out.put_u32(last_good_stream_id & STREAM_MASK);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, WINDOW_UPDATE, 0, 8);
                out.put_u32(stream_id & STREAM_MASK);
                out.put_u32(delta & STREAM_MASK);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.put_u32(stream_id & STREAM_MASK);
                out.put_u32((u32::from(*flags) << 24) | (data.len() as u32 & 0x00ff_ffff));
                out.put_slice(data);
            }
            Frame::Unknown { kind } => control(out, *kind, 0, 0),
        }
    }
}

/// A control frame's 8-byte header, for a body of `len` bytes.
fn control(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | (len as u32 & 0x00ff_ffff));
}

/// A SYN_REPLY or HEADERS frame: a stream id and a compressed header block.
fn header_block(out: &mut BytesMut, kind: u16, flags: u8, stream_id: u32, headers: &[u8]) {
    control(out, kind, flags, 4 + headers.len());
    out.put_u32(stream_id & STREAM_MASK);
    out.put_slice(headers);
}

/// A control frame's body, after its 8-byte header.
fn parse_control(kind: u16, flags: u8, mut body: Bytes) -> Result<Frame, FrameError> {
    let len = body.len();
    let bad = |kind| FrameError::Malformed { kind, len };
    let fixed = |name, want: usize| if len == want { Ok(()) } else { Err(bad(name)) };
    let frame = match kind {
        SYN_STREAM => {
            if len < 10 {
                return Err(bad("SYN_STREAM"));
            }
            let stream_id = body.get_u32() & STREAM_MASK;
            let associated_id = body.get_u32() & STREAM_MASK;
            let priority = body.get_u8() >> 5;
            body.advance(1); // the credential slot
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                headers: body,
            }
        }
        SYN_REPLY | HEADERS => {
            let name = if kind == SYN_REPLY {
                "SYN_REPLY"
            } else {
                "HEADERS"
            };
            if len < 4 {
                return Err(bad(name));
            }
            let stream_id = body.get_u32() & STREAM_MASK;
            if kind == SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers: body,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags,
                    headers: body,
                }
            }
        }
        RST_STREAM => {
            fixed("RST_STREAM", 8)?;
            Frame::RstStream {
                stream_id: body.get_u32() & STREAM_MASK,
                status: body.get_u32(),
            }
        }
        SETTINGS => parse_settings(flags, body)?,
        PING => {
            fixed("PING", 4)?;
            Frame::Ping { id: body.get_u32() }
        }
        GOAWAY => {
            fixed("GOAWAY", 8)?;
            Frame::GoAway {
                last_good_stream_id: body.get_u32() & STREAM_MASK,
                status: body.get_u32(),
            }
        }
        WINDOW_UPDATE => {
            fixed("WINDOW_UPDATE", 8)?;
            Frame::WindowUpdate {
                stream_id: body.get_u32() & STREAM_MASK,
                delta: body.get_u32() & STREAM_MASK,
            }
        }
        kind => Frame::Unknown { kind },
    };
    Ok(frame)
}

fn parse_settings(flags: u8, mut body: Bytes) -> Result<Frame, FrameError> {
    let len = body.len();
    let bad = FrameError::Malformed {
        kind: "SETTINGS",
        len,
    };
    if len < 4 {
        return Err(bad);
    }
    let n = body.get_u32() as usize;
    if len != 4 + 8 * n {
        return Err(bad);
    }
    let entries = (0..n)
        .map(|_| {
            let fid = body.get_u32();
            ((fid >> 24) as u8, fid & 0x00ff_ffff, body.get_u32())
        })
        .collect();
    Ok(Frame::Settings { flags, entries })
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
