//! ttrpc, the RPC layer under NRI: a 10-byte header before each protobuf message, and the
//! Request/Response envelope.
//!
//! Source: containerd/ttrpc v1.2 (the version containerd 1.7 and NRI v0.6.1 use):
//! `channel.go` for the header (`u32 BE length` of the message without the header, `u32 BE
//! stream id`, `u8 type`, `u8 flags`; at most 4 MiB per message), `request.proto` for
//! `Request`, `Response` and `KeyValue`, and google.rpc `Status` for the answer's status.
//! A client numbers its streams with odd ids, from 1 up by 2, never reused; the server
//! refuses anything else.

use std::collections::VecDeque;

use crate::WireError;

/// Size of the header before each message.
pub const HEADER_LEN: usize = 10;
/// The largest message ttrpc accepts (`messageLengthMax`).
pub const MAX_MESSAGE_LEN: usize = 4 << 20;

/// `messageTypeRequest`.
pub const TYPE_REQUEST: u8 = 1;
/// `messageTypeResponse`.
pub const TYPE_RESPONSE: u8 = 2;
/// `flagRemoteClosed`: a unary request says the client sends nothing more on its stream.
pub const FLAG_REMOTE_CLOSED: u8 = 1;

/// google.rpc status codes we send or read.
pub mod code {
    pub const OK: i32 = 0;
    /// What a Go error without a code becomes; NRI plugins fail calls with it.
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// The header of one ttrpc message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Length of the message after the header.
    pub length: u32,
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[0..4].copy_from_slice(&self.length.to_be_bytes());
        bytes[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        bytes[8] = self.kind;
        bytes[9] = self.flags;
        bytes
    }

    pub fn decode(bytes: [u8; HEADER_LEN]) -> Header {
        Header {
            length: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            stream_id: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            kind: bytes[8],
            flags: bytes[9],
        }
    }
}

/// `message Request` of ttrpc's `request.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub method: String,
    /// The call's own message, encoded.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<KeyValue>,
}

/// `message Response` of ttrpc's `request.proto`. An unset status means OK.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `google.rpc.Status` without its `details` (field 3), which NRI never fills.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `message KeyValue` of ttrpc's `request.proto` (request metadata).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One message: its header's stream, type and flags, and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

impl Message {
    /// Header and body as they go on the wire; refuses a body over [`MAX_MESSAGE_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        if self.body.len() > MAX_MESSAGE_LEN {
            return Err(WireError::MessageTooLarge(self.body.len()));
        }
        let header = Header {
            // Fits: bounded by MAX_MESSAGE_LEN just above.
            length: self.body.len() as u32,
            stream_id: self.stream_id,
            kind: self.kind,
            flags: self.flags,
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.body.len());
        bytes.extend_from_slice(&header.encode());
        bytes.extend_from_slice(&self.body);
        Ok(bytes)
    }
}

/// Cuts one connection's byte stream into messages. The stream arrives in multiplexer
/// frames whose bounds need not match messages, so bytes wait here until a message is whole.
#[derive(Debug, Default)]
pub struct MessageReader {
    pending: VecDeque<u8>,
}

impl MessageReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend(bytes);
    }

    /// The next whole message, if one has arrived. A header announcing more than
    /// [`MAX_MESSAGE_LEN`] is an error: the stream cannot be trusted past it.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        if self.pending.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header_bytes = [0; HEADER_LEN];
        for (slot, byte) in header_bytes.iter_mut().zip(&self.pending) {
            *slot = *byte;
        }
        let header = Header::decode(header_bytes);
        let length = header.length as usize;
        if length > MAX_MESSAGE_LEN {
            return Err(WireError::MessageTooLarge(length));
        }
        if self.pending.len() < HEADER_LEN + length {
            return Ok(None);
        }
        self.pending.drain(..HEADER_LEN);
        let body = self.pending.drain(..length).collect();
        Ok(Some(Message {
            stream_id: header.stream_id,
            kind: header.kind,
            flags: header.flags,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn header_is_length_stream_type_flags_big_endian() {
        let header = Header {
            length: 0x0102,
            stream_id: 3,
            kind: TYPE_REQUEST,
            flags: 1,
        };
        assert_eq!(header.encode(), [0, 0, 1, 2, 0, 0, 0, 3, 1, 1]);
        assert_eq!(Header::decode(header.encode()), header);
    }

    #[test]
    fn request_golden_bytes() {
        let request = Request {
            service: "S".into(),
            method: "M".into(),
            payload: vec![0xAA],
            timeout_nano: 5,
            metadata: vec![],
        };
        // Field 1 and 2 are strings (wire type 2), 3 bytes (2), 4 a varint (0).
        let golden = [0x0a, 1, b'S', 0x12, 1, b'M', 0x1a, 1, 0xAA, 0x20, 5];
        assert_eq!(request.encode_to_vec(), golden);
        assert_eq!(Request::decode(&golden[..]).unwrap(), request);
    }

    #[test]
    fn response_golden_bytes_with_error_status() {
        let response = Response {
            status: Some(Status {
                code: code::UNKNOWN,
                message: "no".into(),
            }),
            payload: vec![],
        };
        let golden = [0x0a, 6, 0x08, 2, 0x12, 2, b'n', b'o'];
        assert_eq!(response.encode_to_vec(), golden);
        assert_eq!(Response::decode(&golden[..]).unwrap(), response);
    }

    #[test]
    fn reader_joins_split_messages_and_splits_joined_ones() {
        let first = Message {
            stream_id: 1,
            kind: TYPE_REQUEST,
            flags: 1,
            body: vec![7; 5],
        };
        let second = Message {
            stream_id: 3,
            kind: TYPE_RESPONSE,
            flags: 0,
            body: vec![],
        };
        let mut wire = first.encode().unwrap();
        wire.extend(second.encode().unwrap());
        let mut reader = MessageReader::default();
        reader.push(&wire[..4]);
        assert_eq!(reader.next_message().unwrap(), None);
        reader.push(&wire[4..]);
        assert_eq!(reader.next_message().unwrap(), Some(first));
        assert_eq!(reader.next_message().unwrap(), Some(second));
        assert_eq!(reader.next_message().unwrap(), None);
    }

    #[test]
    fn reader_refuses_a_header_over_the_limit() {
        let mut reader = MessageReader::default();
        let too_long = (MAX_MESSAGE_LEN as u32 + 1).to_be_bytes();
        reader.push(&too_long);
        reader.push(&[0, 0, 0, 1, TYPE_REQUEST, 0]);
        assert!(matches!(
            reader.next_message(),
            Err(WireError::MessageTooLarge(_))
        ));
    }
}
