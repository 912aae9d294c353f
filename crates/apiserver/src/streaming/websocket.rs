//! The WebSocket channel protocols of exec and attach (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`): every binary message starts with its channel — 0 stdin,
//! 1 stdout, 2 stderr, 3 the error channel (a `metav1.Status`), 4 terminal resizes — and
//! in v5 a message on channel 255 carrying a channel number closes that channel (the end of
//! stdin). Resizes are JSON `{"Width":…,"Height":…}` objects, also on SPDY's resize stream.

use bytes::Bytes;

pub const V4: &str = "v4.channel.k8s.io";
pub const V5: &str = "v5.channel.k8s.io";
/// The port-forward tunnel: SPDY/3.1 frames carried in binary messages.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    Stdin(Bytes),
    Resize(Bytes),
    /// v5: the client will send nothing more on this channel.
    Close(u8),
    /// Empty, or on a channel the client does not write to.
    Ignored,
}

/// Reads a binary message; `v5` enables the close signal.
pub fn decode(msg: &Bytes, v5: bool) -> Inbound {
    let Some(&channel) = msg.first() else {
        return Inbound::Ignored;
    };
    let data = msg.slice(1..);
    match channel {
        STDIN => Inbound::Stdin(data),
        RESIZE => Inbound::Resize(data),
        CLOSE if v5 && data.len() == 1 => Inbound::Close(data[0]),
        _ => Inbound::Ignored,
    }
}

/// A binary message on `channel`.
pub fn encode(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    m
}

#[derive(serde::Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u32,
    #[serde(rename = "Height")]
    height: u32,
}

/// Terminal sizes from a byte stream of JSON objects, which may arrive cut anywhere.
#[derive(Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    /// The sizes (width, height) completed by `data`; malformed input is dropped.
    pub fn push(&mut self, data: &[u8]) -> Vec<(u32, u32)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
        let consumed = loop {
            match it.next() {
                Some(Ok(s)) => out.push((s.width, s.height)),
                Some(Err(e)) if e.is_eof() => break it.byte_offset(),
                Some(Err(_)) => break self.buf.len(),
                None => break it.byte_offset(),
            }
        };
        self.buf.drain(..consumed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_by_their_channel_byte() {
        let cases: Vec<(&[u8], bool, Inbound)> = vec![
            (
                b"\x00ls\n",
                false,
                Inbound::Stdin(Bytes::from_static(b"ls\n")),
            ),
            (b"\x00", true, Inbound::Stdin(Bytes::new())),
            (
                b"\x04{\"Width\":80,\"Height\":24}",
                true,
                Inbound::Resize(Bytes::from_static(b"{\"Width\":80,\"Height\":24}")),
            ),
            (b"\xff\x00", true, Inbound::Close(STDIN)),
            (b"\xff\x00", false, Inbound::Ignored),
            (b"\xff", true, Inbound::Ignored),
            (b"\x01out", true, Inbound::Ignored),
            (b"", true, Inbound::Ignored),
        ];
        for (msg, v5, want) in cases {
            assert_eq!(
                decode(&Bytes::copy_from_slice(msg), v5),
                want,
                "{msg:?} v5={v5}"
            );
        }
        assert_eq!(encode(STDERR, b"oops"), b"\x02oops");
        assert_eq!(encode(ERROR, b""), b"\x03");
    }

    #[test]
    fn resizes_are_read_across_cuts() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(b"{\"Width\":80,"), vec![]);
        assert_eq!(
            d.push(b"\"Height\":24}\n{\"Width\":100,\"Height\":40}{\"Wi"),
            vec![(80, 24), (100, 40)]
        );
        assert_eq!(d.push(b"dth\":1,\"Height\":2}"), vec![(1, 2)]);
        assert_eq!(d.push(b"garbage{"), vec![]);
        assert_eq!(d.push(b"{\"Width\":5,\"Height\":6}"), vec![(5, 6)]);
    }
}
