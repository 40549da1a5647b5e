//! The probe message on the wire: a 32-byte header and padding, documented in
//! `docs/wire-format.md`.
//!
//! All integers are big-endian. The server checks every received message against the header
//! before answering, and answers a request by rewriting only the `kind` byte, so an answer costs
//! no copy. A reply is never answered, so two servers pointed at each other cannot loop.

/// `"NNRT"`: nearnative round trip.
pub const MAGIC: [u8; 4] = *b"NNRT";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
/// The largest UDP payload over IPv4 (65535 - 20 - 8). TCP uses the same bound so that each
/// connection's buffer has a fixed size.
pub const MAX_MESSAGE_LEN: usize = 65_507;

const KIND_REQUEST: u8 = 1;
const KIND_REPLY: u8 = 2;

const AT_VERSION: usize = 4;
const AT_KIND: usize = 5;
const AT_FLAGS: usize = 6;
const AT_LENGTH: usize = 8;
const AT_SESSION: usize = 12;
const AT_SEQUENCE: usize = 16;
const AT_SEND_NS: usize = 24;

/// Why a received message was dropped instead of answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The bytes present do not start with [`MAGIC`]: not a probe message at all.
    Foreign,
    /// Shorter than the header, or than the length the header declares.
    Truncated,
    /// Longer than the length the header declares, or declaring more than [`MAX_MESSAGE_LEN`].
    Oversized,
    /// A probe header with an unknown version, a kind other than request, non-zero flags, or a
    /// declared length below the header's.
    Invalid,
}

/// Checks a whole datagram. `Ok` means it is a well-formed request the server must answer.
pub fn check_request(message: &[u8]) -> Result<(), Malformed> {
    let declared = check_request_header(message)?;
    match message.len() {
        n if n < declared => Err(Malformed::Truncated),
        n if n > declared => Err(Malformed::Oversized),
        _ => Ok(()),
    }
}

/// Checks the header at the start of `bytes` (which may hold less than a header) and returns the
/// message length it declares. A stream server uses this to learn how much more to read.
pub fn check_request_header(bytes: &[u8]) -> Result<usize, Malformed> {
    let magic_present = bytes.len().min(MAGIC.len());
    if bytes[..magic_present] != MAGIC[..magic_present] {
        return Err(Malformed::Foreign);
    }
    if bytes.len() < HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    let flags = u16::from_be_bytes([bytes[AT_FLAGS], bytes[AT_FLAGS + 1]]);
    if bytes[AT_VERSION] != VERSION || bytes[AT_KIND] != KIND_REQUEST || flags != 0 {
        return Err(Malformed::Invalid);
    }
    match read_u32(bytes, AT_LENGTH) as usize {
        declared if declared < HEADER_LEN => Err(Malformed::Invalid),
        declared if declared > MAX_MESSAGE_LEN => Err(Malformed::Oversized),
        declared => Ok(declared),
    }
}

/// Turns a checked request into its reply, in place.
pub fn mark_reply(message: &mut [u8]) {
    message[AT_KIND] = KIND_REPLY;
}

/// Fills `message` (whose length is the message length, at least [`HEADER_LEN`]) with a request
/// header for `session` and zero padding. Per send, only [`stamp`] is needed after this.
pub fn init_request(message: &mut [u8], session: u32) {
    message.fill(0);
    message[..4].copy_from_slice(&MAGIC);
    message[AT_VERSION] = VERSION;
    message[AT_KIND] = KIND_REQUEST;
    let length = message.len() as u32;
    message[AT_LENGTH..AT_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    message[AT_SESSION..AT_SESSION + 4].copy_from_slice(&session.to_be_bytes());
}

/// Writes the per-send fields of a request made by [`init_request`].
#[inline]
pub fn stamp(message: &mut [u8], sequence: u64, send_ns: u64) {
    message[AT_SEQUENCE..AT_SEQUENCE + 8].copy_from_slice(&sequence.to_be_bytes());
    message[AT_SEND_NS..AT_SEND_NS + 8].copy_from_slice(&send_ns.to_be_bytes());
}

/// The sequence number of `message` if it is a reply of `session` with the expected length.
#[inline]
pub fn reply_sequence(message: &[u8], session: u32, expected_len: usize) -> Option<u64> {
    let is_ours = message.len() == expected_len
        && message.len() >= HEADER_LEN
        && message[..4] == MAGIC
        && message[AT_VERSION] == VERSION
        && message[AT_KIND] == KIND_REPLY
        && read_u32(message, AT_SESSION) == session;
    is_ours.then(|| read_u64(message, AT_SEQUENCE))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(len: usize) -> Vec<u8> {
        let mut message = vec![0; len];
        init_request(&mut message, 0xABCD);
        stamp(&mut message, 7, 123);
        message
    }

    #[test]
    fn header_layout_matches_the_document() {
        let message = request(40);
        let expected: [u8; 32] = [
            b'N', b'N', b'R', b'T', 1, 1, 0, 0, 0, 0, 0, 40, 0, 0, 0xAB, 0xCD, 0, 0, 0, 0, 0, 0, 0,
            7, 0, 0, 0, 0, 0, 0, 0, 123,
        ];
        assert_eq!(message[..32], expected);
        assert_eq!(message[32..], [0; 8]);
    }

    #[test]
    fn request_round_trips_to_a_reply() {
        let mut message = request(64);
        assert_eq!(check_request(&message), Ok(()));
        assert_eq!(
            reply_sequence(&message, 0xABCD, 64),
            None,
            "a request is no reply"
        );
        mark_reply(&mut message);
        assert_eq!(reply_sequence(&message, 0xABCD, 64), Some(7));
        assert_eq!(reply_sequence(&message, 0xABCE, 64), None, "other session");
        assert_eq!(reply_sequence(&message, 0xABCD, 65), None, "other length");
        assert_eq!(
            check_request(&message),
            Err(Malformed::Invalid),
            "replies are not answered"
        );
    }

    #[test]
    fn malformed_messages_are_classified() {
        let good = request(64);
        let with = |at: usize, value: u8| {
            let mut m = good.clone();
            m[at] = value;
            m
        };
        let mut long = good.clone();
        long.push(0);
        let mut huge_length = good.clone();
        huge_length[AT_LENGTH..AT_LENGTH + 4].copy_from_slice(&70_000u32.to_be_bytes());
        let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
            ("empty datagram", vec![], Malformed::Truncated),
            ("magic prefix only", b"NN".to_vec(), Malformed::Truncated),
            ("foreign short", b"GET".to_vec(), Malformed::Foreign),
            ("foreign magic", with(0, b'X'), Malformed::Foreign),
            (
                "header cut short",
                good[..31].to_vec(),
                Malformed::Truncated,
            ),
            ("body cut short", good[..63].to_vec(), Malformed::Truncated),
            ("trailing byte", long, Malformed::Oversized),
            ("declared too long", huge_length, Malformed::Oversized),
            (
                "declared below header",
                with(AT_LENGTH + 3, 8),
                Malformed::Invalid,
            ),
            ("future version", with(AT_VERSION, 2), Malformed::Invalid),
            ("unknown kind", with(AT_KIND, 9), Malformed::Invalid),
            ("flags set", with(AT_FLAGS + 1, 1), Malformed::Invalid),
        ];
        for (what, message, want) in cases {
            assert_eq!(check_request(&message), Err(want), "{what}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = check_request(&bytes);
            let _ = reply_sequence(&bytes, 1, bytes.len());
        }
    }
}
