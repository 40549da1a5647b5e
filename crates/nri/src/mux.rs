//! NRI's multiplexer: two ttrpc connections over the one unix socket the plugin dials.
//!
//! Source: containerd/nri v0.6.1 `pkg/net/multiplex` (`mux.go`, `ttrpc.go`). Each frame is
//! `u32 BE connection id | u32 BE payload length | payload`, at most 16 MiB of payload;
//! connection id 0 is reserved, frames for an id nobody opened are dropped. Connection 1
//! carries the Plugin service (the runtime is the ttrpc client), connection 2 the Runtime
//! service (the plugin is the client). The payloads of one connection, in order, form that
//! connection's ttrpc byte stream.
//!
//! The trap on the sending side: the runtime reads each connection through a 4 KiB buffered
//! reader, and its multiplexer fails a read (ENOMEM) when one frame is larger than the buffer
//! it is read into. Go's own ttrpc sender never writes bigger frames because its 4 KiB
//! buffered writer cuts them. So frames we send carry at most [`MAX_SENT_FRAME`] bytes, and
//! never the end of one message together with the start of the next.

use std::io::{self, Read};

use crate::WireError;

/// Size of a frame's header.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest payload the runtime's multiplexer accepts (`maxPayloadSize`).
pub const MAX_FRAME_PAYLOAD: usize = 1 << 24;
/// The largest payload we put in one frame (see the module doc).
pub const MAX_SENT_FRAME: usize = 4096;

/// A multiplexed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

impl ConnId {
    /// The Plugin service's connection: the runtime calls, the plugin answers.
    pub const PLUGIN_SERVICE: ConnId = ConnId(1);
    /// The Runtime service's connection: the plugin calls, the runtime answers.
    pub const RUNTIME_SERVICE: ConnId = ConnId(2);
}

/// One message's bytes as frames for `conn`, each at most [`MAX_SENT_FRAME`] long.
pub fn encode_frames(conn: ConnId, message: &[u8]) -> Vec<u8> {
    let frames = message.len().div_ceil(MAX_SENT_FRAME);
    let mut wire = Vec::with_capacity(message.len() + frames * FRAME_HEADER_LEN);
    for chunk in message.chunks(MAX_SENT_FRAME) {
        wire.extend_from_slice(&conn.0.to_be_bytes());
        // Fits: a chunk is at most MAX_SENT_FRAME long.
        wire.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        wire.extend_from_slice(chunk);
    }
    wire
}

/// Reads the next frame. `None` when the stream ends cleanly between frames; an end inside
/// a frame is an error, as is a payload over [`MAX_FRAME_PAYLOAD`].
pub fn read_frame(stream: &mut impl Read) -> Result<Option<(ConnId, Vec<u8>)>, WireError> {
    let mut header = [0; FRAME_HEADER_LEN];
    if !read_exact_or_end(stream, &mut header)? {
        return Ok(None);
    }
    let conn = ConnId(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if length > MAX_FRAME_PAYLOAD {
        return Err(WireError::FrameTooLarge(length));
    }
    let mut payload = vec![0; length];
    stream.read_exact(&mut payload).map_err(WireError::Read)?;
    Ok(Some((conn, payload)))
}

/// Fills `buf`, or returns false when the stream ends before its first byte.
fn read_exact_or_end(stream: &mut impl Read, buf: &mut [u8]) -> Result<bool, WireError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(WireError::Read(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(WireError::Read(err)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_golden_bytes() {
        let wire = encode_frames(ConnId::RUNTIME_SERVICE, b"abc");
        assert_eq!(wire, [0, 0, 0, 2, 0, 0, 0, 3, b'a', b'b', b'c']);
        let (conn, payload) = read_frame(&mut &wire[..]).unwrap().unwrap();
        assert_eq!(
            (conn, payload.as_slice()),
            (ConnId::RUNTIME_SERVICE, &b"abc"[..])
        );
    }

    #[test]
    fn a_long_message_goes_out_in_frames_of_at_most_4_kib() {
        let message = vec![9u8; MAX_SENT_FRAME * 2 + 1];
        let wire = encode_frames(ConnId::PLUGIN_SERVICE, &message);
        let mut stream = &wire[..];
        let mut lengths = Vec::new();
        let mut joined = Vec::new();
        while let Some((conn, payload)) = read_frame(&mut stream).unwrap() {
            assert_eq!(conn, ConnId::PLUGIN_SERVICE);
            lengths.push(payload.len());
            joined.extend(payload);
        }
        assert_eq!(lengths, [MAX_SENT_FRAME, MAX_SENT_FRAME, 1]);
        assert_eq!(joined, message);
    }

    #[test]
    fn an_end_between_frames_is_clean_and_inside_one_is_not() {
        assert!(read_frame(&mut &[][..]).unwrap().is_none());
        assert!(matches!(
            read_frame(&mut &[0, 0, 0][..]),
            Err(WireError::Read(_))
        ));
        assert!(matches!(
            read_frame(&mut &[0, 0, 0, 1, 0, 0, 0, 2, 7][..]),
            Err(WireError::Read(_))
        ));
    }

    #[test]
    fn a_frame_over_16_mib_is_refused_before_reading_it() {
        let header = [0, 0, 0, 1, 0x01, 0, 0, 1];
        assert!(matches!(
            read_frame(&mut &header[..]),
            Err(WireError::FrameTooLarge(_))
        ));
    }
}
