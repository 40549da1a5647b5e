//! A runtime's side of the NRI socket, written apart from the crate's own framing so that a
//! mistake shared by both sides cannot hide: the multiplexer's frames and ttrpc's header are
//! spelled out byte by byte here. It also checks what the real runtime needs of our frames:
//! at most 4 KiB each, and never the end of one message with the start of the next.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use nearnative_nri::ttrpc::{Request, Response, Status};
use prost::Message;

pub const PLUGIN_CONN: u32 = 1;
pub const RUNTIME_CONN: u32 = 2;
const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";

/// One ttrpc message as read off the wire.
pub struct Received {
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

pub struct FakeRuntime {
    stream: UnixStream,
    /// Bytes of each connection not yet forming a whole message.
    pending: HashMap<u32, Vec<u8>>,
    /// Whole messages read while waiting for another connection's.
    queued: HashMap<u32, Vec<Received>>,
    next_stream_id: u32,
    pub largest_frame: usize,
}

impl FakeRuntime {
    pub fn new(stream: UnixStream) -> FakeRuntime {
        FakeRuntime {
            stream,
            pending: HashMap::new(),
            queued: HashMap::new(),
            next_stream_id: 1,
            largest_frame: 0,
        }
    }

    /// Writes one ttrpc message as a single frame, however long, as a peer may.
    pub fn send(&mut self, conn: u32, stream_id: u32, kind: u8, flags: u8, body: &[u8]) {
        let mut message = Vec::new();
        message.extend_from_slice(&(body.len() as u32).to_be_bytes());
        message.extend_from_slice(&stream_id.to_be_bytes());
        message.extend_from_slice(&[kind, flags]);
        message.extend_from_slice(body);
        let mut frame = Vec::new();
        frame.extend_from_slice(&conn.to_be_bytes());
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        self.stream
            .write_all(&frame)
            .expect("fake runtime: write a frame");
    }

    /// The next whole message on `conn`; messages for the other connection wait their turn.
    pub fn receive(&mut self, conn: u32) -> Received {
        loop {
            if let Some(queue) = self.queued.get_mut(&conn) {
                if !queue.is_empty() {
                    return queue.remove(0);
                }
            }
            self.read_frame();
        }
    }

    fn read_frame(&mut self) {
        let mut header = [0u8; 8];
        self.stream
            .read_exact(&mut header)
            .expect("fake runtime: read a frame header");
        let conn = u32::from_be_bytes(header[0..4].try_into().unwrap());
        let length = u32::from_be_bytes(header[4..8].try_into().unwrap()) as usize;
        assert!(
            length <= 4096,
            "a frame of {length} bytes would fail the runtime's 4 KiB reader"
        );
        self.largest_frame = self.largest_frame.max(length);
        let mut payload = vec![0; length];
        self.stream
            .read_exact(&mut payload)
            .expect("fake runtime: read a frame payload");
        let pending = self.pending.entry(conn).or_default();
        pending.extend_from_slice(&payload);
        if let Some(message) = take_message(pending) {
            assert!(
                pending.is_empty(),
                "a frame carried the end of one message and the start of another"
            );
            self.queued.entry(conn).or_default().push(message);
        }
    }

    /// Calls the plugin on connection 1 as the runtime's ttrpc client does: odd, rising
    /// stream ids, flag "remote closed". `Err` carries the status of a failed call.
    pub fn call<Req: Message, Resp: Message + Default>(
        &mut self,
        method: &str,
        request: &Req,
    ) -> Result<Resp, Status> {
        let bytes = self.call_raw(PLUGIN_SERVICE, method, request.encode_to_vec());
        let response =
            Response::decode(bytes.as_slice()).expect("fake runtime: decode a ttrpc Response");
        match response.status {
            Some(status) if status.code != 0 => Err(status),
            _ => {
                Ok(Resp::decode(response.payload.as_slice())
                    .expect("fake runtime: decode the answer"))
            }
        }
    }

    pub fn call_raw(&mut self, service: &str, method: &str, payload: Vec<u8>) -> Vec<u8> {
        let stream_id = self.next_stream_id;
        self.next_stream_id += 2;
        let request = Request {
            service: service.into(),
            method: method.into(),
            payload,
            timeout_nano: 2_000_000_000,
            metadata: vec![],
        };
        self.send(PLUGIN_CONN, stream_id, 1, 1, &request.encode_to_vec());
        let answer = self.receive(PLUGIN_CONN);
        assert_eq!(
            (answer.stream_id, answer.kind, answer.flags),
            (stream_id, 2, 0),
            "{method}: response header"
        );
        answer.body
    }

    /// The plugin's next call on connection 2, checked to be a well-formed unary request.
    pub fn expect_call(&mut self) -> (u32, Request) {
        let message = self.receive(RUNTIME_CONN);
        assert_eq!(message.kind, 1, "a request");
        assert_eq!(message.flags, 1, "a unary request says remote closed");
        assert_eq!(message.stream_id % 2, 1, "client stream ids are odd");
        let request =
            Request::decode(message.body.as_slice()).expect("fake runtime: decode a ttrpc Request");
        assert_eq!(request.service, "nri.pkg.api.v1alpha1.Runtime");
        (message.stream_id, request)
    }

    /// Answers a call on connection 2, with a status as Go's ttrpc server always sends one.
    pub fn answer(&mut self, stream_id: u32, status: Status, payload: Vec<u8>) {
        let response = Response {
            status: Some(status),
            payload,
        };
        self.send(RUNTIME_CONN, stream_id, 2, 0, &response.encode_to_vec());
    }
}

fn take_message(pending: &mut Vec<u8>) -> Option<Received> {
    if pending.len() < 10 {
        return None;
    }
    let length = u32::from_be_bytes(pending[0..4].try_into().unwrap()) as usize;
    if pending.len() < 10 + length {
        return None;
    }
    let message = Received {
        stream_id: u32::from_be_bytes(pending[4..8].try_into().unwrap()),
        kind: pending[8],
        flags: pending[9],
        body: pending[10..10 + length].to_vec(),
    };
    pending.drain(..10 + length);
    Some(message)
}
