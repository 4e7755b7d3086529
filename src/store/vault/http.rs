//! Just enough HTTP/1.1 for the Vault API: one kept-alive connection, over
//! TLS (rustls, verified) or plain TCP, on which a batch of requests is sent
//! at once and the answers are read back in order (pipelining, which HTTP/1.1
//! allows and the Vault server supports). Every step has the run's deadline:
//! the connect, each write and each read.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// Where the server is: from `BAO_ADDR` / `VAULT_ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    /// `http://HOST:PORT` or `https://HOST[:PORT]`, with no path.
    pub(crate) fn parse(address: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = address.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = address.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!(
                "`{address}` is not an address: it must start with https:// or http://"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(format!(
                "`{address}` is not an address: give the scheme, host and port only, \
                 e.g. https://vault.example.com:8200"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let bad_port = || format!("`{address}` has no valid port");
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            // An IPv6 address: [::1] or [::1]:8200.
            let (host, after) = bracketed.split_once(']').ok_or_else(bad_port)?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad_port())?,
                None if after.is_empty() => default_port,
                None => return Err(bad_port()),
            };
            (host, port)
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad_port())?),
                None => (rest, default_port),
            }
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

impl Endpoint {
    /// The same host and port over plain HTTP, the port always written: an
    /// `https://` address without one means 443, which `http://` would not.
    pub(crate) fn as_plain_http(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// A request of a batch.
pub(crate) struct Request {
    pub(crate) method: &'static str,
    /// From the root, e.g. `/v1/secret/data/acme`.
    pub(crate) path: String,
    /// A JSON body, wiped when dropped: it may hold a value.
    pub(crate) body: Option<(&'static str, Zeroizing<Vec<u8>>)>,
}

/// An answer: its status, `Location` (for a redirect) and body, wiped when
/// dropped.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// Why a batch got no answers.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing accepted the connection (refused, no route, unknown host).
    Connect(io::Error),
    /// The deadline passed: while connecting, or waiting for an answer.
    TimedOut,
    /// The TLS handshake failed: a certificate or CA problem, most often.
    Tls(String),
    /// The server answered the TLS handshake in plain HTTP.
    PlainHttp,
    /// The connection broke, or the server closed it early.
    Broken(io::Error),
    /// The answer is not HTTP as we read it.
    Malformed(&'static str),
    /// The answer is larger than any KV answer: a bound is named.
    TooLarge(&'static str),
}

trait Stream: Read + Write {
    fn socket(&self) -> &TcpStream;
}

impl Stream for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl Stream for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

/// One connection to the server.
pub(crate) struct Connection {
    stream: Box<dyn Stream>,
    host_header: String,
    /// Read but not yet taken; wiped when dropped, as it holds answers.
    buffer: Zeroizing<Vec<u8>>,
    /// Whether the server may keep the connection for another batch.
    reusable: bool,
}

impl Connection {
    /// Connects by `deadline`; `tls` is the verified client set-up for an
    /// https endpoint.
    pub(crate) fn open(
        endpoint: &Endpoint,
        tls: Option<&Arc<rustls::ClientConfig>>,
        deadline: Instant,
    ) -> Result<Self, Failure> {
        let addresses = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(Failure::Connect)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        let mut socket = None;
        for address in addresses {
            let left = left(deadline)?;
            match TcpStream::connect_timeout(&address, left) {
                Ok(stream) => {
                    socket = Some(stream);
                    break;
                }
                Err(err) if err.kind() == io::ErrorKind::TimedOut => return Err(Failure::TimedOut),
                Err(err) => last = err,
            }
        }
        let socket = socket.ok_or(Failure::Connect(last))?;
        let _ = socket.set_nodelay(true);
        let stream: Box<dyn Stream> = match (endpoint.tls, tls) {
            (true, Some(config)) => {
                let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                    .map_err(|err| Failure::Tls(err.to_string()))?;
                let client = rustls::ClientConnection::new(Arc::clone(config), name)
                    .map_err(|err| Failure::Tls(err.to_string()))?;
                let mut stream = rustls::StreamOwned::new(client, socket);
                set_deadline(&stream.sock, deadline)?;
                // The handshake now, so that its failure is told as such.
                while stream.conn.is_handshaking() {
                    stream
                        .conn
                        .complete_io(&mut stream.sock)
                        .map_err(|err| tls_or_io(err, deadline))?;
                }
                Box::new(stream)
            }
            (true, None) => return Err(Failure::Tls("no TLS set-up".into())),
            (false, _) => Box::new(socket),
        };
        let host_header = if endpoint.host.contains(':') {
            format!("[{}]:{}", endpoint.host, endpoint.port)
        } else {
            format!("{}:{}", endpoint.host, endpoint.port)
        };
        Ok(Self {
            stream,
            host_header,
            buffer: Zeroizing::new(Vec::with_capacity(READ_SIZE)),
            reusable: true,
        })
    }

    /// Whether another batch may go on this connection.
    pub(crate) fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Sends every request at once, with `headers` on each, then reads the
    /// answers in order, all by `deadline`. Gives the answers read, in
    /// order, and what stopped it before the last, if anything: a server
    /// that closes the connection after some answers (HTTP/1.0, or
    /// `Connection: close`) has still answered those, and only the rest
    /// need sending again (RFC 9112 section 9.3.2).
    pub(crate) fn exchange(
        &mut self,
        requests: &[&Request],
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> (Vec<Response>, Option<Failure>) {
        let mut out = Zeroizing::new(Vec::new());
        for request in requests {
            out.extend_from_slice(
                format!(
                    "{} {} HTTP/1.1\r\nHost: {}\r\n",
                    request.method, request.path, self.host_header
                )
                .as_bytes(),
            );
            for (name, value) in headers {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            match &request.body {
                Some((content_type, body)) => {
                    out.extend_from_slice(
                        format!(
                            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(body);
                }
                None => out.extend_from_slice(b"\r\n"),
            }
        }
        let mut answers = Vec::with_capacity(requests.len());
        if let Err(failure) = set_deadline(self.stream.socket(), deadline) {
            return (answers, Some(failure));
        }
        if let Err(err) = self
            .stream
            .write_all(&out)
            .and_then(|()| self.stream.flush())
        {
            self.reusable = false;
            return (answers, Some(io_failure(err, deadline)));
        }
        for request in requests {
            match self.read_response(request.method == "HEAD", deadline) {
                Ok(response) => answers.push(response),
                Err(failure) => {
                    self.reusable = false;
                    return (answers, Some(failure));
                }
            }
            if !self.reusable {
                // The server closes after this answer: it will not answer
                // the rest on this connection.
                break;
            }
        }
        (answers, None)
    }

    /// Reads until the buffer holds a whole answer, then takes it.
    fn read_response(&mut self, head: bool, deadline: Instant) -> Result<Response, Failure> {
        let mut closed = false;
        loop {
            match parse_response(&self.buffer, head, closed)? {
                Parsed::Complete {
                    response,
                    used,
                    keep_alive,
                } => {
                    self.buffer.drain(..used);
                    if !keep_alive {
                        self.reusable = false;
                    }
                    return Ok(response);
                }
                Parsed::Partial if closed => {
                    return Err(Failure::Broken(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )));
                }
                Parsed::Partial => {}
            }
            closed = !self.fill(deadline)?;
        }
    }

    /// Reads what the server has sent, by `deadline`: `false` when it has
    /// closed the connection.
    fn fill(&mut self, deadline: Instant) -> Result<bool, Failure> {
        set_deadline(self.stream.socket(), deadline)?;
        let mut chunk = Zeroizing::new(vec![0u8; READ_SIZE]);
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.reusable = false;
                    return Ok(false);
                }
                Ok(read) => {
                    crate::secret::append_wiped(&mut self.buffer, &chunk[..read]);
                    return Ok(true);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.reusable = false;
                    return Err(io_failure(err, deadline));
                }
            }
        }
    }
}

/// The most a response's head may be.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most a response's body may be. A KV secret is small: Vault's and
/// OpenBao's integrated storage refuses entries over 1 MiB unless told
/// otherwise, and its JSON answer is not much more.
pub(crate) const MAX_BODY: usize = 2 * 1024 * 1024;
/// The most an answer may take on the wire, chunk sizes included: memory
/// stays bounded whatever the server sends.
const MAX_ANSWER: usize = MAX_HEAD + 2 * MAX_BODY;
/// What one read takes at most.
const READ_SIZE: usize = 64 * 1024;
/// A Vault answer has about ten headers; a proxy adds a few.
const MAX_HEADERS: usize = 100;

/// What the start of a buffer holds.
pub(crate) enum Parsed {
    /// Not a whole answer yet.
    Partial,
    /// A whole answer, `used` bytes long; `keep_alive` is whether the
    /// server keeps the connection open after it.
    Complete {
        response: Response,
        used: usize,
        keep_alive: bool,
    },
}

/// Reads one answer from the start of `buffer`, a pure function of its
/// bytes: `head` when it answers a HEAD request (no body), `closed` when the
/// server has closed the connection after these bytes (which ends a body
/// that has neither a length nor chunks). The head is read by `httparse`;
/// every size is bounded (`MAX_HEAD`, `MAX_BODY`), and one over its bound is
/// an error as soon as it is seen, not once it has all arrived.
pub(crate) fn parse_response(buffer: &[u8], head: bool, closed: bool) -> Result<Parsed, Failure> {
    let mut start = 0;
    loop {
        let rest = &buffer[start..];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(rest) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => {
                // Interim (1xx) heads count: a server that sends them
                // without end must not grow the buffer without end.
                if buffer.len() > MAX_HEAD {
                    return Err(Failure::TooLarge("its head is over 64 KiB"));
                }
                return Ok(Parsed::Partial);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Failure::TooLarge("it has over 100 headers"));
            }
            Err(_) => return Err(Failure::Malformed("its head is not HTTP/1.x")),
        };
        if start + head_len > MAX_HEAD {
            return Err(Failure::TooLarge("its head is over 64 KiB"));
        }
        let status = response.code.unwrap_or_default();
        if status < 100 {
            // httparse takes any three digits; HTTP has no such status.
            return Err(Failure::Malformed("its status code"));
        }
        // 1xx answers (other than 101, which we never ask for) come before
        // the real one, which follows at once.
        if (100..200).contains(&status) && status != 101 {
            start += head_len;
            continue;
        }
        // HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes it
        // unless told.
        let mut keep_alive = response.version == Some(1);
        let mut close = false;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut location = None;
        for header in response.headers.iter() {
            // Only the headers read below need be text; a proxy's other
            // headers may hold any bytes.
            let wanted = [
                "content-length",
                "transfer-encoding",
                "connection",
                "location",
            ]
            .iter()
            .any(|name| header.name.eq_ignore_ascii_case(name));
            if !wanted {
                continue;
            }
            let value = std::str::from_utf8(header.value)
                .map_err(|_| Failure::Malformed("a header that is not text"))?
                .trim();
            if header.name.eq_ignore_ascii_case("content-length") {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Failure::Malformed("its Content-Length"));
                }
                let parsed = value
                    .parse::<usize>()
                    .ok()
                    .filter(|&parsed| parsed <= MAX_BODY)
                    .ok_or(Failure::TooLarge("its body is over 2 MiB"))?;
                if length.is_some_and(|earlier| earlier != parsed) {
                    return Err(Failure::Malformed("two different Content-Lengths"));
                }
                length = Some(parsed);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(Failure::Malformed("a transfer coding other than chunked"));
                }
                chunked = true;
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
            } else if header.name.eq_ignore_ascii_case("location") {
                location = Some(value.to_owned());
            }
        }
        if status == 101 {
            return Err(Failure::Malformed("it switched protocols"));
        }
        let keep_alive = keep_alive && !close;
        let body_start = start + head_len;
        let body = &buffer[body_start..];
        let complete = |body: Zeroizing<Vec<u8>>, used: usize, keep_alive: bool| {
            Ok(Parsed::Complete {
                response: Response {
                    status,
                    location: location.clone(),
                    body,
                },
                used: body_start + used,
                keep_alive,
            })
        };
        if head || status == 204 || status == 304 {
            return complete(Zeroizing::new(Vec::new()), 0, keep_alive);
        }
        if chunked {
            return match read_chunked(body)? {
                Some((data, used)) => complete(data, used, keep_alive),
                None => Ok(Parsed::Partial),
            };
        }
        if let Some(length) = length {
            if body.len() < length {
                return Ok(Parsed::Partial);
            }
            return complete(Zeroizing::new(body[..length].to_vec()), length, keep_alive);
        }
        // Neither: the body ends with the connection.
        if body.len() > MAX_BODY {
            return Err(Failure::TooLarge("its body is over 2 MiB"));
        }
        if !closed {
            return Ok(Parsed::Partial);
        }
        return complete(Zeroizing::new(body.to_vec()), body.len(), false);
    }
}

/// A whole body and its length on the wire.
type Body = (Zeroizing<Vec<u8>>, usize);

/// A chunked body at the start of `bytes`, or `None` while it is incomplete.
fn read_chunked(bytes: &[u8]) -> Result<Option<Body>, Failure> {
    // First find where it ends, so that nothing is copied twice.
    let mut at = 0;
    let mut total = 0usize;
    let mut chunks = Vec::new();
    loop {
        if at > MAX_ANSWER {
            return Err(Failure::TooLarge("its chunks take over 4 MiB"));
        }
        let (line, size) = match httparse::parse_chunk_size(&bytes[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => {
                // A size line is short; one that goes on is not a size.
                if bytes.len() - at > 1024 {
                    return Err(Failure::Malformed("a chunk size"));
                }
                return Ok(None);
            }
            Err(_) => return Err(Failure::Malformed("a chunk size")),
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|size| total.saturating_add(*size) <= MAX_BODY)
            .ok_or(Failure::TooLarge("its body is over 2 MiB"))?;
        total += size;
        at += line;
        if size == 0 {
            break;
        }
        if bytes.len() < at + size + 2 {
            return Ok(None);
        }
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return Err(Failure::Malformed(
                "a chunk that does not end where its size says",
            ));
        }
        chunks.push(at..at + size);
        at += size + 2;
    }
    // Trailers, if any, then an empty line.
    loop {
        if at > MAX_ANSWER {
            return Err(Failure::TooLarge("its chunks take over 4 MiB"));
        }
        match find(&bytes[at..], b"\r\n") {
            Some(0) => {
                at += 2;
                break;
            }
            Some(end) => at += end + 2,
            None if bytes.len() - at > MAX_HEAD => {
                return Err(Failure::TooLarge("its trailers are over 64 KiB"));
            }
            None => return Ok(None),
        }
    }
    let mut body = Zeroizing::new(Vec::with_capacity(total));
    for chunk in chunks {
        body.extend_from_slice(&bytes[chunk]);
    }
    Ok(Some((body, at)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn left(deadline: Instant) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::TimedOut);
    }
    Ok(left)
}

fn set_deadline(socket: &TcpStream, deadline: Instant) -> Result<(), Failure> {
    let left = left(deadline)?;
    socket
        .set_read_timeout(Some(left))
        .and_then(|()| socket.set_write_timeout(Some(left)))
        .map_err(Failure::Broken)
}

fn io_failure(err: io::Error, deadline: Instant) -> Failure {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::TimedOut,
        _ if Instant::now() >= deadline => Failure::TimedOut,
        _ => Failure::Broken(err),
    }
}

/// A handshake error: rustls reports certificate problems as
/// `InvalidData` wrapping its own error.
fn tls_or_io(err: io::Error, deadline: Instant) -> Failure {
    // A plain HTTP server answers the TLS hello with "HTTP/1.x 400": bytes
    // that are no TLS record type.
    let plain = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|inner| {
            matches!(
                inner,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )
        });
    if plain {
        return Failure::PlainHttp;
    }
    if err.kind() == io::ErrorKind::InvalidData {
        return Failure::Tls(err.to_string());
    }
    io_failure(err, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer at the start of `bytes`: status, body, bytes used, kept
    /// alive.
    fn parse(bytes: &[u8], closed: bool) -> Option<(u16, Vec<u8>, usize, bool)> {
        match parse_response(bytes, false, closed).expect("an answer") {
            Parsed::Partial => None,
            Parsed::Complete {
                response,
                used,
                keep_alive,
            } => Some((response.status, response.body.to_vec(), used, keep_alive)),
        }
    }

    #[test]
    fn answers_are_read_one_after_the_other_with_their_connection_state() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\n\
                    Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n\
                    1\r\nd\r\n0\r\nTrailer: t\r\n\r\n";
        let (status, body, used, alive) = parse(two, false).unwrap();
        assert_eq!((status, body.as_slice(), alive), (200, &b"ok"[..], true));
        let (status, body, rest, alive) = parse(&two[used..], false).unwrap();
        assert_eq!((status, body.as_slice(), alive), (404, &b"abcd"[..], false));
        assert_eq!(used + rest, two.len());
        // HTTP/1.0 closes unless it says otherwise.
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!parse(old, false).unwrap().3);
        let kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(parse(kept, false).unwrap().3);
        // A body without a length ends with the connection.
        let open_ended = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
        assert!(parse(open_ended, false).is_none());
        assert_eq!(parse(open_ended, true).unwrap().1, b"until the end");
        // Every prefix of an answer is "not yet".
        for end in 0..two.len().min(used) {
            assert!(parse(&two[..end], false).is_none(), "{end}");
        }
    }

    #[test]
    fn sizes_past_their_bounds_and_broken_framing_are_errors() {
        let fails = |bytes: &[u8]| match parse_response(bytes, false, false) {
            Err(Failure::TooLarge(what) | Failure::Malformed(what)) => what,
            _ => panic!(
                "{:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        };
        assert_eq!(
            fails(b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n"),
            "its body is over 2 MiB"
        );
        assert_eq!(
            fails(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"),
            "a chunk size"
        );
        assert_eq!(
            fails(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"),
            "its body is over 2 MiB"
        );
        let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        head.resize(MAX_HEAD + 10, b'p');
        assert_eq!(fails(&head), "its head is over 64 KiB");
        head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(fails(&head), "its head is over 64 KiB");
        assert_eq!(
            fails(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"),
            "its Content-Length"
        );
        assert_eq!(
            fails(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
            "two different Content-Lengths"
        );
        assert_eq!(
            fails(b"<html>404</html>\r\n\r\n"),
            "its head is not HTTP/1.x"
        );
        // Interim answers without end: bounded as one head, whether the
        // last arrived whole or not.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_HEAD / 25 + 1);
        assert_eq!(fails(&interim), "its head is over 64 KiB");
        let mut cut = interim.clone();
        cut.extend_from_slice(b"HTTP/1.1 100 Cont");
        assert_eq!(fails(&cut), "its head is over 64 KiB");
        // A chunked body of small chunks: bounded on the wire too.
        let mut chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        while chunks.len() <= MAX_ANSWER + 64 {
            chunks.extend_from_slice(b"1\r\nx\r\n");
        }
        assert_eq!(fails(&chunks), "its chunks take over 4 MiB");
    }

    #[test]
    fn addresses_are_read_as_the_cli_reads_them() {
        let endpoint = |tls, host: &str, port| Endpoint {
            tls,
            host: host.to_owned(),
            port,
        };
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8200"),
            Ok(endpoint(false, "127.0.0.1", 8200))
        );
        assert_eq!(
            Endpoint::parse("https://vault.example.com/"),
            Ok(endpoint(true, "vault.example.com", 443))
        );
        assert_eq!(
            Endpoint::parse("https://[::1]:8200"),
            Ok(endpoint(true, "::1", 8200))
        );
        // The address to suggest where TLS was asked of a plain server.
        for (address, plain) in [
            ("https://vault.example.com", "http://vault.example.com:443"),
            (
                "https://vault.example.com:8200/",
                "http://vault.example.com:8200",
            ),
            ("https://[::1]", "http://[::1]:443"),
        ] {
            assert_eq!(Endpoint::parse(address).unwrap().as_plain_http(), plain);
        }
        for bad in [
            "vault:8200",
            "https://",
            "https://host:port",
            "https://host/v1",
            "https://user@host",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
