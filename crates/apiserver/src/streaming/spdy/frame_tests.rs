//! Frames against their wire bytes, written out from the SPDY/3 layout.

use super::*;

/// RST_STREAM's CANCEL status.
const RST_CANCEL: u32 = 5;

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

#[test]
fn frames_have_the_spdy3_wire_layout() {
    let cases: Vec<(&str, Frame, Vec<u8>)> = vec![
        (
            "SYN_STREAM with FIN, priority 2",
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: b(b"hb"),
            },
            vec![
                0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0x00,
                b'h', b'b',
            ],
        ),
        (
            "SYN_REPLY",
            Frame::SynReply {
                stream_id: 3,
                flags: 0,
                headers: b(b"x"),
            },
            vec![
                0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x05, 0, 0, 0, 3, b'x',
            ],
        ),
        (
            "RST_STREAM cancel",
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 5],
        ),
        (
            "SETTINGS: initial window 65536",
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536)],
            },
            vec![
                0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
            ],
        ),
        (
            "PING",
            Frame::Ping { id: 0x0102_0304 },
            vec![0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 1, 2, 3, 4],
        ),
        (
            "GOAWAY",
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            vec![0x80, 0x03, 0x00, 0x07, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0],
        ),
        (
            "HEADERS",
            Frame::Headers {
                stream_id: 9,
                flags: 0,
                headers: b(b""),
            },
            vec![0x80, 0x03, 0x00, 0x08, 0, 0, 0, 4, 0, 0, 0, 9],
        ),
        (
            "WINDOW_UPDATE on the connection",
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 0x1000,
            },
            vec![
                0x80, 0x03, 0x00, 0x09, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x10, 0,
            ],
        ),
        (
            "DATA with FIN",
            Frame::Data {
                stream_id: 0x0100_0001,
                flags: FLAG_FIN,
                data: b(b"abc"),
            },
            vec![0x01, 0, 0, 0x01, 0x01, 0, 0, 3, b'a', b'b', b'c'],
        ),
        (
            "empty DATA",
            Frame::Data {
                stream_id: 2,
                flags: 0,
                data: b(b""),
            },
            vec![0, 0, 0, 2, 0, 0, 0, 0],
        ),
    ];
    for (name, frame, wire) in cases {
        let mut out = BytesMut::new();
        frame.write(&mut out);
        assert_eq!(out.as_ref(), wire.as_slice(), "{name}: written");
        let mut buf = BytesMut::from(wire.as_slice());
        assert_eq!(Frame::parse(&mut buf), Ok(Some(frame)), "{name}: parsed");
        assert!(buf.is_empty(), "{name}: the whole frame is consumed");
    }
}

#[test]
fn a_partial_frame_waits_for_more_bytes() {
    let mut out = BytesMut::new();
    Frame::Ping { id: 1 }.write(&mut out);
    Frame::Data {
        stream_id: 1,
        flags: 0,
        data: b(b"xyz"),
    }
    .write(&mut out);
    let whole = out.freeze();
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        let first = Frame::parse(&mut buf).unwrap();
        if cut < 12 {
            assert_eq!(first, None, "cut at {cut}");
        } else {
            assert_eq!(first, Some(Frame::Ping { id: 1 }), "cut at {cut}");
            assert_eq!(Frame::parse(&mut buf).unwrap(), None, "cut at {cut}");
        }
    }
}

#[test]
fn bad_frames_are_refused_and_unknown_ones_skipped() {
    type Parsed = Result<Option<Frame>, FrameError>;
    let cases: Vec<(&str, Vec<u8>, Parsed)> = vec![
        (
            "SPDY/2",
            vec![0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
            Err(FrameError::Version(2)),
        ),
        (
            "a PING of 3 bytes",
            vec![0x80, 0x03, 0x00, 0x06, 0, 0, 0, 3, 0, 0, 1],
            Err(FrameError::Malformed {
                kind: "PING",
                len: 3,
            }),
        ),
        (
            "SETTINGS whose count disagrees with its length",
            vec![0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0, 0, 0, 2],
            Err(FrameError::Malformed {
                kind: "SETTINGS",
                len: 4,
            }),
        ),
        (
            "CREDENTIAL (type 10)",
            vec![0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 2, 9, 9],
            Ok(Some(Frame::Unknown { kind: 10 })),
        ),
    ];
    for (name, wire, want) in cases {
        let mut buf = BytesMut::from(wire.as_slice());
        assert_eq!(Frame::parse(&mut buf), want, "{name}");
    }
}
