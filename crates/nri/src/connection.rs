//! One live connection to the runtime's NRI socket.
//!
//! Two threads per connection. The reader takes frames off the socket: requests on the
//! Plugin service's connection go to the server thread, answers on the Runtime service's
//! connection go to the call waiting for that stream id. The server thread answers requests
//! one by one through the [`Plugin`]. The reader never runs plugin code, so an answer to
//! an UpdateContainers sent from another thread is read even while a handler runs.

use std::collections::HashMap;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use prost::Message as _;

use crate::api::runtime as runtime_service;
use crate::api::UpdateContainersResponse;
use crate::api::{ContainerUpdate, Empty, RegisterPluginRequest, UpdateContainersRequest};
use crate::mux::{self, ConnId};
use crate::plugin::{self, Plugin};
use crate::ttrpc::{self, Message, MessageReader, Request, Response};
use crate::Error;

/// How long a call to the runtime waits for its answer by default. containerd's own
/// registration timeout is 5 s, so an answer later than this will not come.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the runtime, serving a [`Plugin`] until the runtime or [`close`]
/// ends it.
///
/// [`close`]: Connection::close
pub struct Connection {
    shared: Arc<Shared>,
    reader: JoinHandle<Result<(), Error>>,
    server: JoinHandle<Result<(), Error>>,
}

/// Calls to the runtime's Runtime service; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct RuntimeClient {
    shared: Arc<Shared>,
    timeout: Duration,
}

struct Shared {
    socket: PathBuf,
    /// Also the order of stream ids: an id is taken and its request written under this lock,
    /// because the runtime's ttrpc server refuses an id lower than one it has seen.
    writer: Mutex<UnixStream>,
    calls: Mutex<Calls>,
    /// Set by [`Connection::close`]: what fails after it is the closing, not an error.
    closed_by_us: AtomicBool,
}

/// Calls waiting for their answer. `None` once the reader has stopped: no answer can come.
struct Calls {
    next_stream_id: u32,
    waiting: Option<HashMap<u32, SyncSender<Vec<u8>>>>,
}

impl Connection {
    /// Dials `socket` and starts serving `plugin`. Nothing is sent yet: register with
    /// [`RuntimeClient::register_plugin`] next, or the runtime drops the connection.
    pub fn open(socket: &Path, plugin: Arc<dyn Plugin>) -> Result<Connection, Error> {
        let stream = UnixStream::connect(socket).map_err(|source| Error::Connect {
            socket: socket.to_owned(),
            source,
        })?;
        Connection::start(socket, stream, plugin)
    }

    /// Serves `plugin` on an already connected `stream`; `socket` names it in errors.
    pub fn start(
        socket: &Path,
        stream: UnixStream,
        plugin: Arc<dyn Plugin>,
    ) -> Result<Connection, Error> {
        let read_half = stream.try_clone().map_err(|source| Error::Connect {
            socket: socket.to_owned(),
            source,
        })?;
        let shared = Arc::new(Shared {
            socket: socket.to_owned(),
            writer: Mutex::new(stream),
            calls: Mutex::new(Calls {
                next_stream_id: 1,
                waiting: Some(HashMap::new()),
            }),
            closed_by_us: AtomicBool::new(false),
        });
        let (requests, incoming) = mpsc::channel();
        let server = spawn(&shared, "nri-server", {
            let shared = Arc::clone(&shared);
            move || serve(&shared, plugin.as_ref(), incoming)
        })?;
        let reader = spawn(&shared, "nri-reader", {
            let shared = Arc::clone(&shared);
            move || read_loop(&shared, read_half, requests)
        });
        match reader {
            Ok(reader) => Ok(Connection {
                shared,
                reader,
                server,
            }),
            Err(err) => {
                shared.shutdown();
                Err(err)
            }
        }
    }

    /// A client for the Runtime service on this connection.
    pub fn client(&self) -> RuntimeClient {
        RuntimeClient {
            shared: Arc::clone(&self.shared),
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Ends the connection from our side; [`wait`](Connection::wait) then returns.
    pub fn close(&self) {
        self.shared.close();
    }

    /// A handle that closes the connection from another thread, while one waits for it.
    pub fn closer(&self) -> Closer {
        Closer(Arc::clone(&self.shared))
    }

    /// Blocks until the connection ends. `Ok` when it ended cleanly (the runtime closed it,
    /// or we did), the reason otherwise.
    pub fn wait(self) -> Result<(), Error> {
        let panicked = |thread| Error::Panicked {
            socket: self.shared.socket.clone(),
            thread,
        };
        let read = self
            .reader
            .join()
            .unwrap_or_else(|_| Err(panicked("nri-reader")));
        let served = self
            .server
            .join()
            .unwrap_or_else(|_| Err(panicked("nri-server")));
        read.and(served)
    }
}

/// Closes a [`Connection`] from any thread; see [`Connection::closer`].
#[derive(Clone)]
pub struct Closer(Arc<Shared>);

impl Closer {
    pub fn close(&self) {
        self.0.close();
    }
}

impl RuntimeClient {
    /// The same client, waiting at most `timeout` for each answer.
    pub fn with_timeout(self, timeout: Duration) -> RuntimeClient {
        RuntimeClient { timeout, ..self }
    }

    /// Registers as plugin `name` at `index` (0-99: the runtime calls plugins in ascending
    /// index and wants it as two digits).
    pub fn register_plugin(&self, name: &str, index: u8) -> Result<(), Error> {
        if name.is_empty() {
            return Err(Error::EmptyName);
        }
        if index > 99 {
            return Err(Error::InvalidIndex(index));
        }
        let request = RegisterPluginRequest {
            plugin_name: name.to_owned(),
            plugin_idx: format!("{index:02}"),
        };
        let answer = self.call(runtime_service::REGISTER_PLUGIN, request.encode_to_vec())?;
        self.decode::<Empty>(runtime_service::REGISTER_PLUGIN, &answer)
            .map(|Empty {}| ())
    }

    /// Asks the runtime to update running containers; returns the updates it could not apply.
    /// Never from inside a [`Plugin`] method (see there).
    pub fn update_containers(
        &self,
        request: UpdateContainersRequest,
    ) -> Result<Vec<ContainerUpdate>, Error> {
        let method = runtime_service::UPDATE_CONTAINERS;
        let answer = self.call(method, request.encode_to_vec())?;
        let response: UpdateContainersResponse = self.decode(method, &answer)?;
        Ok(response.failed)
    }

    /// Sends one request and waits for its answer's payload.
    fn call(&self, method: &'static str, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        let socket = || self.shared.socket.clone();
        let request = Request {
            service: runtime_service::SERVICE.to_owned(),
            method: method.to_owned(),
            payload,
            timeout_nano: i64::try_from(self.timeout.as_nanos()).unwrap_or(i64::MAX),
            metadata: Vec::new(),
        };
        let (stream_id, answer) = self.shared.send_request(method, request.encode_to_vec())?;
        let body = match answer.recv_timeout(self.timeout) {
            Ok(body) => body,
            Err(RecvTimeoutError::Timeout) => {
                self.shared.forget_call(stream_id);
                return Err(Error::Timeout {
                    socket: socket(),
                    method,
                    timeout: self.timeout,
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Closed {
                    socket: socket(),
                    method,
                })
            }
        };
        let response: Response = self.decode(method, &body)?;
        match response.status {
            Some(status) if status.code != ttrpc::code::OK => Err(Error::Refused {
                socket: socket(),
                method,
                code: status.code,
                message: status.message,
            }),
            _ => Ok(response.payload),
        }
    }

    fn decode<M: prost::Message + Default>(&self, method: &str, bytes: &[u8]) -> Result<M, Error> {
        M::decode(bytes).map_err(|source| Error::Decode {
            socket: self.shared.socket.clone(),
            what: format!("the answer to {method}"),
            source,
        })
    }
}

impl Shared {
    /// Writes a request on a fresh stream id; the receiver gets the answer's body.
    fn send_request(
        &self,
        method: &'static str,
        body: Vec<u8>,
    ) -> Result<(u32, Receiver<Vec<u8>>), Error> {
        let mut writer = lock(&self.writer);
        let (stream_id, answer) = {
            let mut calls = lock(&self.calls);
            let stream_id = calls.next_stream_id;
            let waiting = calls.waiting.as_mut().ok_or_else(|| Error::Closed {
                socket: self.socket.clone(),
                method,
            })?;
            let (sender, answer) = mpsc::sync_channel(1);
            waiting.insert(stream_id, sender);
            calls.next_stream_id = stream_id.wrapping_add(2);
            (stream_id, answer)
        };
        let message = Message {
            stream_id,
            kind: ttrpc::TYPE_REQUEST,
            flags: ttrpc::FLAG_REMOTE_CLOSED,
            body,
        };
        let sent = self.write_message(&mut writer, ConnId::RUNTIME_SERVICE, &message, method);
        if sent.is_err() {
            self.forget_call(stream_id);
        }
        sent.map(|()| (stream_id, answer))
    }

    fn send_response(&self, stream_id: u32, body: Vec<u8>, method: &str) -> Result<(), Error> {
        let message = Message {
            stream_id,
            kind: ttrpc::TYPE_RESPONSE,
            flags: 0,
            body,
        };
        let mut writer = lock(&self.writer);
        self.write_message(&mut writer, ConnId::PLUGIN_SERVICE, &message, method)
    }

    fn write_message(
        &self,
        writer: &mut UnixStream,
        conn: ConnId,
        message: &Message,
        what: &str,
    ) -> Result<(), Error> {
        let bytes = message.encode().map_err(|source| Error::Wire {
            socket: self.socket.clone(),
            context: format!("cannot send {what}"),
            source,
        })?;
        writer
            .write_all(&mux::encode_frames(conn, &bytes))
            .map_err(|source| Error::Send {
                socket: self.socket.clone(),
                message: what.to_owned(),
                source,
            })
    }

    fn forget_call(&self, stream_id: u32) {
        if let Some(waiting) = lock(&self.calls).waiting.as_mut() {
            waiting.remove(&stream_id);
        }
    }

    /// Hands an answer to its call; an answer nobody waits for (it timed out) is dropped.
    fn deliver_answer(&self, stream_id: u32, body: Vec<u8>) {
        let waiter = lock(&self.calls)
            .waiting
            .as_mut()
            .and_then(|w| w.remove(&stream_id));
        if let Some(waiter) = waiter {
            // The caller may have timed out in the meantime; then nobody needs the answer.
            let _ = waiter.try_send(body);
        }
    }

    /// Fails every waiting call and every later one.
    fn stop_calls(&self) {
        lock(&self.calls).waiting = None;
    }

    fn unless_closed_by_us(&self, result: Result<(), Error>) -> Result<(), Error> {
        match result {
            Err(_) if self.closed_by_us.load(Ordering::SeqCst) => Ok(()),
            other => other,
        }
    }

    fn close(&self) {
        self.closed_by_us.store(true, Ordering::SeqCst);
        self.shutdown();
    }

    fn shutdown(&self) {
        // Already shut down, or the peer is gone: either way the socket is closed.
        let _ = lock(&self.writer).shutdown(Shutdown::Both);
    }
}

/// The reader thread: frames in, requests to the server, answers to their calls.
fn read_loop(
    shared: &Shared,
    mut stream: UnixStream,
    requests: Sender<Message>,
) -> Result<(), Error> {
    let result = route_frames(shared, &mut stream, &requests);
    shared.stop_calls();
    shared.shutdown();
    shared.unless_closed_by_us(result)
}

fn route_frames(
    shared: &Shared,
    stream: &mut UnixStream,
    requests: &Sender<Message>,
) -> Result<(), Error> {
    let wire_error = |context: &str, source| Error::Wire {
        socket: shared.socket.clone(),
        context: context.to_owned(),
        source,
    };
    let mut plugin_conn = MessageReader::default();
    let mut runtime_conn = MessageReader::default();
    while let Some((conn, payload)) =
        mux::read_frame(stream).map_err(|source| wire_error("reading frames", source))?
    {
        let reader = match conn {
            ConnId::PLUGIN_SERVICE => &mut plugin_conn,
            ConnId::RUNTIME_SERVICE => &mut runtime_conn,
            // The runtime's multiplexer drops frames for connections nobody opened, too.
            _ => continue,
        };
        reader.push(&payload);
        while let Some(message) = reader
            .next_message()
            .map_err(|source| wire_error("reading ttrpc messages", source))?
        {
            match (conn, message.kind) {
                (ConnId::PLUGIN_SERVICE, ttrpc::TYPE_REQUEST) => {
                    if requests.send(message).is_err() {
                        // The server thread is gone; it shut the socket down on its way out.
                        return Ok(());
                    }
                }
                (ConnId::RUNTIME_SERVICE, ttrpc::TYPE_RESPONSE) => {
                    shared.deliver_answer(message.stream_id, message.body)
                }
                (conn, kind) => {
                    return Err(Error::Unexpected {
                        socket: shared.socket.clone(),
                        conn: conn.0,
                        kind,
                    })
                }
            }
        }
    }
    Ok(())
}

/// The server thread: answers the runtime's requests in order, until the reader stops or
/// an answer cannot be sent.
fn serve(shared: &Shared, plugin: &dyn Plugin, incoming: Receiver<Message>) -> Result<(), Error> {
    // Shut the socket when this thread ends, even by a panic in the plugin, so the runtime
    // sees the plugin gone instead of waiting for answers that will never come.
    let _shut_on_exit = ShutOnDrop(shared);
    for message in incoming {
        let (method, response) = answer(plugin, &message.body);
        let sent = shared.send_response(message.stream_id, response.encode_to_vec(), &method);
        shared.unless_closed_by_us(sent)?;
        plugin.answered();
    }
    Ok(())
}

/// The response to one request body, and the method's name for errors.
fn answer(plugin: &dyn Plugin, body: &[u8]) -> (String, Response) {
    let request = match Request::decode(body) {
        Ok(request) => request,
        Err(err) => {
            let status = ttrpc::Status {
                code: ttrpc::code::INVALID_ARGUMENT,
                message: format!("cannot decode the ttrpc request: {err}"),
            };
            return (
                "a ttrpc request".to_owned(),
                Response {
                    status: Some(status),
                    payload: Vec::new(),
                },
            );
        }
    };
    let response = match plugin::dispatch(plugin, &request) {
        Ok(payload) => Response {
            status: Some(ttrpc::Status::default()),
            payload,
        },
        Err(status) => Response {
            status: Some(status),
            payload: Vec::new(),
        },
    };
    (format!("the answer to {}", request.method), response)
}

struct ShutOnDrop<'a>(&'a Shared);

impl Drop for ShutOnDrop<'_> {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

fn spawn<T: Send + 'static>(
    shared: &Shared,
    name: &'static str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|source| Error::Spawn {
            socket: shared.socket.clone(),
            thread: name,
            source,
        })
}

/// A poisoned lock only means another thread panicked holding it; the data (a socket, a
/// map of waiting calls) stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
