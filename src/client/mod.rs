//! A blocking client, with pipelining. Used by the CLI and the tests.
//!
//! One [`Client`] owns one TCP connection. Simple calls send a request and wait for
//! its answer; a [`Pipeline`] sends many requests in one write and reads all the
//! answers, which is how a client gets throughput over a network round trip.
//!
//! ```
//! use switchboard::client::Client;
//! # use switchboard::{config::Config, server::Server};
//! # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
//! # let server = Server::bind(&config).unwrap();
//! # let addr = server.local_addr();
//! # let stop = server.shutdown_handle();
//! # let thread = std::thread::spawn(move || server.run());
//!
//! let mut client = Client::connect(addr)?;
//! let v1 = client.put("greeting", "hello")?;
//! let record = client.get("greeting")?.expect("just written");
//! assert_eq!((record.version, &record.value[..]), (v1, &b"hello"[..]));
//!
//! // Compare-and-set: succeeds only at the version we read.
//! let v2 = client.cas("greeting", v1, "hi")?;
//! assert!(v2 > v1);
//! assert!(client.cas("greeting", v1, "stale").is_err());
//!
//! // A pipeline: one write, three answers, in order.
//! let answers = client.pipeline().get("greeting").put("n", "1").ping().send()?;
//! assert_eq!(answers.len(), 3);
//! # stop.shutdown();
//! # thread.join().unwrap().unwrap();
//! # Ok::<(), switchboard::client::ClientError>(())
//! ```
//!
//! (The hidden lines start a server in-process on a free port.)

mod pipeline;
mod subscribe;
mod tls;

pub use pipeline::Pipeline;
pub use subscribe::{Subscribed, Subscriber, Watch, WatchEvent};
pub use tls::{ClientTls, TlsOptions};

use crate::protocol::msg::hello::HelloReply;
use crate::protocol::msg::scan::{ScanEntry, ScanPage};
use crate::protocol::msg::subscribe::Resume;
use crate::protocol::{
    DecodeError, Decoder, Flags, Frame, Limits, Push, Request, RequestError, RequestId, Response,
    ResponseBody, Status, MAX_VERSION,
};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A record as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record's version.
    pub version: u64,
    /// The record's value.
    pub value: Bytes,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or could not be made.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server's bytes do not form a valid frame.
    #[error("bad frame from the server: {0}")]
    Decode(#[from] DecodeError),
    /// A frame arrived whose body does not match its layout.
    #[error("bad response from the server: {0}")]
    BadResponse(#[from] RequestError),
    /// A response did not answer the request it should have.
    #[error("expected a response to request {expected:?}, got one to {got:?}")]
    OutOfOrder {
        /// The id expected.
        expected: RequestId,
        /// The id received.
        got: RequestId,
    },
    /// The record's version is not the one the request expected.
    #[error("version conflict: the current version is {current}")]
    VersionConflict {
        /// The current version (0 = no record).
        current: u64,
    },
    /// The server answered with an error status.
    #[error("{status}: {message}")]
    Server {
        /// The status.
        status: Status,
        /// The server's message.
        message: String,
    },
    /// The response was valid but not a possible answer to the request.
    #[error("unexpected response: {0:?}")]
    Unexpected(Box<ResponseBody>),
    /// The server is stopping (it sent GOAWAY) and did not carry out this request.
    #[error(
        "the server is shutting down and did not carry out this request (it handled the \
         first {handled} on this connection); send it again elsewhere or after a restart"
    )]
    GoingAway {
        /// How many of the connection's requests, from its first, the server handled.
        handled: u64,
    },
}

impl ClientError {
    /// True when the server said it did not carry out the request (GOAWAY, or a
    /// SHUTTING_DOWN answer): sending it again, elsewhere or after a restart, cannot
    /// apply it twice.
    pub fn not_carried_out(&self) -> bool {
        match self {
            ClientError::GoingAway { .. } => true,
            ClientError::Server { status, .. } => *status == Status::SHUTTING_DOWN,
            _ => false,
        }
    }
}

/// Where a server is and how to reach it: what reconnecting clients
/// ([`Subscriber`], [`Watch`]) keep to connect again.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The server's address.
    pub addr: SocketAddr,
    /// TLS, if the server speaks it.
    pub tls: Option<ClientTls>,
    /// The token each connection's HELLO carries, for a server that requires one
    /// (empty for none).
    pub token: Bytes,
}

impl Endpoint {
    /// A plaintext server at `addr`, with no token.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            tls: None,
            token: Bytes::new(),
        }
    }

    /// The same server, with `token` in every HELLO.
    pub fn with_token(mut self, token: impl Into<Bytes>) -> Endpoint {
        self.token = token.into();
        self
    }
}

/// Connects to the first of `addr`'s addresses that accepts within `timeout`.
fn tcp_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Shorthand for results of client calls.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A blocking connection to a switchboard server.
#[derive(Debug)]
pub struct Client {
    stream: tls::Stream,
    decoder: Decoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    next_id: u32,
    /// Pushes that arrived while an answer was awaited, oldest first.
    pushes: VecDeque<Push>,
    /// PINGs sent to answer keepalives, whose answers nobody waits for.
    pongs: VecDeque<RequestId>,
    /// Responses received: the requests, from the first, that have their answer.
    answered: u64,
    /// The count of the server's GOAWAY: requests after it were not carried out.
    goaway: Option<u64>,
    /// The TLS configuration this connection was made with, for [`Client::endpoint`].
    tls: Option<ClientTls>,
    /// The token HELLO carries, for a server that requires one.
    token: Bytes,
}

impl Client {
    /// Connects without a handshake (the base protocol version).
    ///
    /// # Errors
    /// When the address does not resolve or refuses the connection.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Client> {
        Client::from_stream(TcpStream::connect(addr)?)
    }

    /// Connects over TLS and finishes the handshake, so a certificate the options do
    /// not trust fails here.
    ///
    /// ```no_run
    /// use switchboard::client::{Client, ClientTls, TlsOptions};
    /// let options = TlsOptions { ca_file: Some("ca.pem".into()), ..TlsOptions::default() };
    /// let tls = ClientTls::new(&options, "db.example.com")?;
    /// let mut client = Client::connect_tls("db.example.com:7420", &tls)?;
    /// client.ping()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the address does not resolve or refuses the connection, or the handshake
    /// fails (an untrusted, expired or wrong-host certificate; a server that wants a
    /// client certificate and got none).
    pub fn connect_tls(addr: impl ToSocketAddrs, tls: &ClientTls) -> Result<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let mut client = Client::with_stream(tls.handshake(tcp)?)?;
        client.tls = Some(tls.clone());
        Ok(client)
    }

    /// Connects to `endpoint`, over TLS if it says so; its token goes in every HELLO
    /// (call [`hello`](Self::hello) first on a server that requires one).
    ///
    /// # Errors
    /// As [`connect`](Self::connect) and [`connect_tls`](Self::connect_tls).
    pub fn connect_to(endpoint: &Endpoint) -> Result<Client> {
        let mut client = match &endpoint.tls {
            Some(tls) => Client::connect_tls(endpoint.addr, tls)?,
            None => Client::connect(endpoint.addr)?,
        };
        client.set_token(endpoint.token.clone());
        Ok(client)
    }

    /// Connects like [`connect`](Self::connect), giving up on each address after
    /// `timeout` (a host that drops packets would otherwise hold the caller for
    /// minutes).
    ///
    /// # Errors
    /// When the address does not resolve, refuses, or does not answer in time.
    pub fn connect_timeout(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client> {
        Client::from_stream(tcp_timeout(addr, timeout)?)
    }

    /// As [`connect_tls`](Self::connect_tls), giving up on each address after
    /// `timeout`, and on the handshake after `timeout` too.
    ///
    /// # Errors
    /// As [`connect_timeout`](Self::connect_timeout) and
    /// [`connect_tls`](Self::connect_tls).
    pub fn connect_tls_timeout(
        addr: impl ToSocketAddrs,
        tls: &ClientTls,
        timeout: Duration,
    ) -> Result<Client> {
        let tcp = tcp_timeout(addr, timeout)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let stream = tls.handshake(tcp)?;
        stream.tcp().set_read_timeout(None)?;
        stream.tcp().set_write_timeout(None)?;
        let mut client = Client::with_stream(stream)?;
        client.tls = Some(tls.clone());
        Ok(client)
    }

    /// Where this client is connected, and how: for opening another connection
    /// like it (a [`Subscriber`] or a [`Watch`]).
    ///
    /// # Errors
    /// When the socket cannot say its peer's address.
    pub fn endpoint(&self) -> Result<Endpoint> {
        Ok(Endpoint {
            addr: self.peer_addr()?,
            tls: self.tls.clone(),
            token: self.token.clone(),
        })
    }

    fn from_stream(stream: TcpStream) -> Result<Client> {
        stream.set_nodelay(true)?;
        Client::with_stream(tls::Stream::Plain(stream))
    }

    fn with_stream(stream: tls::Stream) -> Result<Client> {
        Ok(Client {
            stream,
            // Accept any frame a server may legally send; the server enforces its own.
            decoder: Decoder::new(Limits::MAX_MAX_FRAME),
            read_buf: BytesMut::with_capacity(16 << 10),
            write_buf: BytesMut::with_capacity(16 << 10),
            next_id: 1,
            pushes: VecDeque::new(),
            pongs: VecDeque::new(),
            answered: 0,
            goaway: None,
            tls: None,
            token: Bytes::new(),
        })
    }

    /// Connects and authenticates: sends HELLO (no features) carrying `token` as the
    /// first frame, as a server started with `--auth-token-file` requires.
    ///
    /// # Errors
    /// As for [`connect`](Self::connect); [`ClientError::Server`] with AUTH_FAILED for
    /// a wrong token.
    pub fn connect_with_token(addr: impl ToSocketAddrs, token: impl Into<Bytes>) -> Result<Client> {
        let mut client = Client::connect(addr)?;
        client.set_token(token);
        client.hello(0)?;
        Ok(client)
    }

    /// The token [`hello`](Self::hello) sends from now on. A server that requires one
    /// accepts nothing before a HELLO carrying it, so call `hello` first.
    pub fn set_token(&mut self, token: impl Into<Bytes>) {
        self.token = token.into();
    }

    /// The token HELLO carries (empty for none).
    pub fn token(&self) -> &Bytes {
        &self.token
    }

    /// The server's address.
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.tcp().peer_addr()?)
    }

    /// Fails calls that wait longer than `timeout` for the server (`None` = forever).
    ///
    /// # Errors
    /// When the socket refuses the setting.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.stream.tcp().set_read_timeout(timeout)?;
        self.stream.tcp().set_write_timeout(timeout)?;
        Ok(())
    }

    /// Negotiates the protocol version and features; returns what the server granted.
    ///
    /// # Errors
    /// As for every call: I/O, a closed connection, or an error status.
    pub fn hello(&mut self, features: u32) -> Result<HelloReply> {
        match self.call(&Request::Hello {
            max_version: MAX_VERSION,
            features,
            token: self.token.clone(),
        })? {
            ResponseBody::Hello(reply) => Ok(reply),
            other => unexpected(other),
        }
    }

    /// Checks the server answers.
    ///
    /// # Errors
    /// As for every call.
    pub fn ping(&mut self) -> Result<()> {
        match self.call(&Request::Ping {
            payload: Bytes::new(),
        })? {
            ResponseBody::Pong(_) => Ok(()),
            other => unexpected(other),
        }
    }

    /// Reads a record; `None` when the key has none.
    ///
    /// # Errors
    /// As for every call.
    pub fn get(&mut self, key: impl Into<Bytes>) -> Result<Option<Record>> {
        match self.call(&Request::Get { key: key.into() })? {
            ResponseBody::Value { version, value } => Ok(Some(Record { version, value })),
            ResponseBody::NotFound => Ok(None),
            other => unexpected(other),
        }
    }

    /// Creates or replaces a record; returns its new version.
    ///
    /// # Errors
    /// As for every call; `MEMORY_LIMIT` comes back as [`ClientError::Server`].
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<u64> {
        let request = Request::Put {
            key: key.into(),
            value: value.into(),
            ttl_ms: 0,
        };
        written(self.call(&request)?)
    }

    /// Writes only if the record's version is `expected` (0 = only if absent).
    ///
    /// # Errors
    /// [`ClientError::VersionConflict`] with the current version, or as for every call.
    pub fn cas(
        &mut self,
        key: impl Into<Bytes>,
        expected: u64,
        value: impl Into<Bytes>,
    ) -> Result<u64> {
        let request = Request::Cas {
            key: key.into(),
            expected,
            value: value.into(),
            ttl_ms: 0,
        };
        written(self.call(&request)?)
    }

    /// Deletes a record (at version `expected` unless it is 0). Returns the deletion's
    /// sequence number, or `None` when there was no record.
    ///
    /// # Errors
    /// [`ClientError::VersionConflict`], or as for every call.
    pub fn delete(&mut self, key: impl Into<Bytes>, expected: u64) -> Result<Option<u64>> {
        let request = Request::Delete {
            key: key.into(),
            expected,
        };
        match self.call(&request)? {
            ResponseBody::NotFound => Ok(None),
            other => written(other).map(Some),
        }
    }

    /// Reads one page of records under `prefix` after `cursor` (empty = from the start).
    ///
    /// # Errors
    /// As for every call.
    pub fn scan(
        &mut self,
        prefix: impl Into<Bytes>,
        cursor: impl Into<Bytes>,
        limit: u16,
    ) -> Result<ScanPage> {
        let request = Request::Scan {
            prefix: prefix.into(),
            cursor: cursor.into(),
            limit,
        };
        match self.call(&request)? {
            ResponseBody::Scan(page) => Ok(page),
            other => unexpected(other),
        }
    }

    /// Reads every record under `prefix`, following cursors page by page. Returns the
    /// records and the sequence number of the first page.
    ///
    /// # Errors
    /// As for every call.
    pub fn scan_all(&mut self, prefix: impl Into<Bytes>) -> Result<(Vec<ScanEntry>, u64)> {
        let prefix = prefix.into();
        let mut page = self.scan(prefix.clone(), Bytes::new(), 0)?;
        let seq = page.seq;
        let mut entries = std::mem::take(&mut page.entries);
        while !page.next_cursor.is_empty() {
            page = self.scan(prefix.clone(), page.next_cursor, 0)?;
            entries.append(&mut page.entries);
        }
        Ok((entries, seq))
    }

    /// The server's counters, as `(name, value)` in the server's order.
    ///
    /// # Errors
    /// As for every call.
    pub fn stats(&mut self) -> Result<Vec<(String, u64)>> {
        match self.call(&Request::Stats)? {
            ResponseBody::Stats(text) => Ok(parse_stats(&text)),
            other => unexpected(other),
        }
    }

    /// Sends any request and returns its response body. Error statuses other than
    /// NOT_FOUND and VERSION_CONFLICT become [`ClientError::Server`].
    ///
    /// # Errors
    /// As for every call.
    pub fn call(&mut self, request: &Request) -> Result<ResponseBody> {
        let id = self.send(request)?;
        self.flush()?;
        let response = answering(id, self.recv()?)?;
        match response.body {
            ResponseBody::Error { status, message } => Err(ClientError::Server {
                status,
                message: String::from_utf8_lossy(&message).into_owned(),
            }),
            body => Ok(body),
        }
    }

    /// Queues a request without writing it; returns the id its response will carry.
    /// Call [`flush`](Self::flush) to send everything queued in one write.
    ///
    /// # Errors
    /// [`ClientError::GoingAway`] once the server has said it is stopping.
    pub fn send(&mut self, request: &Request) -> Result<RequestId> {
        if let Some(handled) = self.goaway {
            return Err(ClientError::GoingAway { handled });
        }
        Ok(self.queue(request))
    }

    fn queue(&mut self, request: &Request) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        request.encode(id, &mut self.write_buf);
        id
    }

    /// The count of the GOAWAY the server sent, if it did: the connection's requests
    /// after the first `handled` were not carried out.
    pub fn going_away(&self) -> Option<u64> {
        self.goaway
    }

    /// Writes every queued request.
    ///
    /// # Errors
    /// When the connection fails.
    pub fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.write_buf)?;
        self.write_buf.clear();
        Ok(())
    }

    /// Waits for the next response (responses arrive in request order). Pushes that
    /// arrive first are kept for [`next_push`](Self::next_push).
    ///
    /// # Errors
    /// When the connection fails or closes, or the frame is invalid;
    /// [`ClientError::GoingAway`] when the server's GOAWAY says it did not carry out
    /// the request this answer would be for.
    pub fn recv(&mut self) -> Result<Response> {
        loop {
            if let Some(handled) = self.goaway {
                if self.answered >= handled {
                    return Err(ClientError::GoingAway { handled });
                }
            }
            let frame = self.read_frame()?;
            if let Some(response) = self.take_frame(frame)? {
                return Ok(response);
            }
        }
    }

    /// A response, or `None` for a push (queued, or answered when it is a keepalive)
    /// and for the answer to a keepalive's PING.
    fn take_frame(&mut self, frame: Frame) -> Result<Option<Response>> {
        if frame.header.flags.contains(Flags::PUSH) {
            if frame.header.opcode.name().is_none() {
                // A push of a later version: not ours to read.
                return Ok(None);
            }
            match Push::decode(&frame)? {
                Push::GoAway { count, .. } => self.goaway = Some(count),
                Push::Ping => {
                    // Any frame answers a keepalive; a PING is the cheapest.
                    let id = self.send(&Request::Ping {
                        payload: Bytes::new(),
                    })?;
                    self.pongs.push_back(id);
                    self.flush()?;
                }
                push => self.pushes.push_back(push),
            }
            return Ok(None);
        }
        let response = Response::decode(&frame)?;
        self.answered += 1;
        if self.pongs.front() == Some(&response.request_id) {
            self.pongs.pop_front();
            return Ok(None);
        }
        Ok(Some(response))
    }

    /// Reads until a whole frame is buffered, and takes it.
    fn read_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(frame);
            }
            self.read_buf.reserve(16 << 10);
            let start = self.read_buf.len();
            self.read_buf.resize(self.read_buf.capacity(), 0);
            match self.stream.read(&mut self.read_buf[start..]) {
                Ok(0) => {
                    self.read_buf.truncate(start);
                    return Err(match self.goaway {
                        Some(handled) if self.answered >= handled => {
                            ClientError::GoingAway { handled }
                        }
                        _ => ClientError::Closed,
                    });
                }
                Ok(n) => self.read_buf.truncate(start + n),
                Err(e) => {
                    self.read_buf.truncate(start);
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e.into());
                    }
                }
            }
        }
    }

    /// Subscribes to the changes and messages under `prefix` (the connection must have
    /// been granted [`PUSH`](crate::protocol::features::PUSH) by [`hello`](Self::hello));
    /// with `resume`, the logged changes after it are replayed first. Pushes then
    /// arrive through [`next_push`](Self::next_push), between the answers to any
    /// other requests.
    ///
    /// # Errors
    /// As for every call; `SUBSCRIPTION_LIMIT` and `UNSUPPORTED` (no PUSH) come back as
    /// [`ClientError::Server`].
    pub fn subscribe(
        &mut self,
        prefix: impl Into<Bytes>,
        resume: Option<Resume>,
        progress_ms: u32,
    ) -> Result<Subscribed> {
        let request = Request::Subscribe {
            prefix: prefix.into(),
            resume,
            progress_ms,
        };
        match self.call(&request)? {
            ResponseBody::Subscribed {
                sub_id,
                history,
                seq,
            } => Ok(Subscribed {
                sub_id,
                history,
                seq,
            }),
            other => unexpected(other),
        }
    }

    /// Ends a subscription; false when the connection held no such subscription.
    ///
    /// # Errors
    /// As for every call.
    pub fn unsubscribe(&mut self, sub_id: u32) -> Result<bool> {
        match self.call(&Request::Unsubscribe { sub_id })? {
            ResponseBody::Unsubscribed => Ok(true),
            ResponseBody::NotFound => Ok(false),
            other => unexpected(other),
        }
    }

    /// Publishes a message; returns how many connections hold a matching subscription.
    ///
    /// # Errors
    /// As for every call.
    pub fn publish(&mut self, subject: impl Into<Bytes>, payload: impl Into<Bytes>) -> Result<u32> {
        let request = Request::Publish {
            subject: subject.into(),
            payload: payload.into(),
        };
        match self.call(&request)? {
            ResponseBody::Published { receivers } => Ok(receivers),
            other => unexpected(other),
        }
    }

    /// The next push: one that arrived meanwhile, or the next to arrive within
    /// `timeout` (`None` = wait for ever). Returns `Ok(None)` when the time passes.
    /// Keepalive PINGs are answered here, and not returned.
    ///
    /// # Errors
    /// When the connection fails or closes, or a response arrives that no request
    /// waits for.
    pub fn next_push(&mut self, timeout: Option<Duration>) -> Result<Option<Push>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(push) = self.pushes.pop_front() {
                return Ok(Some(push));
            }
            let wait = match deadline {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
                None => None,
            };
            let before = self.stream.tcp().read_timeout()?;
            self.stream.tcp().set_read_timeout(wait)?;
            let frame = self.read_frame();
            self.stream.tcp().set_read_timeout(before)?;
            let frame = match frame {
                Ok(frame) => frame,
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            if let Some(response) = self.take_frame(frame)? {
                return Err(ClientError::Unexpected(Box::new(response.body)));
            }
        }
    }

    /// Starts a pipeline: requests queued, then sent in one write.
    pub fn pipeline(&mut self) -> Pipeline<'_> {
        Pipeline::new(self)
    }
}

/// `response`, checked to answer request `id`. An error frame that answers no request
/// (id 0, opcode 0: a full server, a connection closed for memory) is the server
/// speaking for itself, and becomes that error rather than an out-of-order answer.
pub(super) fn answering(id: RequestId, response: Response) -> Result<Response> {
    if response.request_id == id {
        return Ok(response);
    }
    match response.body {
        ResponseBody::Error { status, message }
            if response.request_id == RequestId(0) && response.opcode.0 == 0 =>
        {
            Err(ClientError::Server {
                status,
                message: String::from_utf8_lossy(&message).into_owned(),
            })
        }
        _ => Err(ClientError::OutOfOrder {
            expected: id,
            got: response.request_id,
        }),
    }
}

fn written(body: ResponseBody) -> Result<u64> {
    match body {
        ResponseBody::Written { version } => Ok(version),
        ResponseBody::VersionConflict { current } => Err(ClientError::VersionConflict { current }),
        other => unexpected(other),
    }
}

fn unexpected<T>(body: ResponseBody) -> Result<T> {
    Err(ClientError::Unexpected(Box::new(body)))
}

/// Parses a STATS body; lines that are not `name value` are skipped.
pub fn parse_stats(text: &[u8]) -> Vec<(String, u64)> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Looks a counter up by name in [`Client::stats`] output.
pub fn stat(stats: &[(String, u64)], name: &str) -> Option<u64> {
    stats.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}
