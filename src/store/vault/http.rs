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
    /// The connection broke, or the server closed it early.
    Broken(io::Error),
    /// The answer is not HTTP as we read it.
    Malformed(&'static str),
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
            buffer: Zeroizing::new(Vec::with_capacity(16 * 1024)),
            reusable: true,
        })
    }

    /// Whether another batch may go on this connection.
    pub(crate) fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Sends every request at once, with `headers` on each, then reads the
    /// answers in order, all by `deadline`.
    pub(crate) fn exchange(
        &mut self,
        requests: &[&Request],
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Vec<Response>, Failure> {
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
        set_deadline(self.stream.socket(), deadline)?;
        self.stream
            .write_all(&out)
            .and_then(|()| self.stream.flush())
            .map_err(|err| io_failure(err, deadline))?;
        requests
            .iter()
            .map(|request| self.read_response(request.method == "HEAD", deadline))
            .collect()
    }

    fn read_response(&mut self, head: bool, deadline: Instant) -> Result<Response, Failure> {
        let end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > 64 * 1024 {
                return Err(Failure::Malformed("its headers are over 64 KiB"));
            }
            self.fill(deadline)?;
        };
        let head_text = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        self.buffer.drain(..end + 4);
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse().ok())
            .ok_or(Failure::Malformed("its status line is not HTTP/1.x"))?;
        let mut length = None;
        let mut chunked = false;
        let mut location = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(
                        value
                            .parse::<usize>()
                            .map_err(|_| Failure::Malformed("its Content-Length"))?,
                    );
                }
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" if value.eq_ignore_ascii_case("close") => self.reusable = false,
                "location" => location = Some(value.to_owned()),
                _ => {}
            }
        }
        let body = if head || status == 204 || status == 304 || (100..200).contains(&status) {
            Zeroizing::new(Vec::new())
        } else if chunked {
            self.read_chunked(deadline)?
        } else if let Some(length) = length {
            self.read_exact_body(length, deadline)?
        } else {
            // Neither: the body ends with the connection.
            self.reusable = false;
            loop {
                match self.fill(deadline) {
                    Ok(()) => {}
                    Err(Failure::Broken(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                        break;
                    }
                    Err(other) => return Err(other),
                }
            }
            Zeroizing::new(std::mem::take(&mut *self.buffer))
        };
        Ok(Response {
            status,
            location,
            body,
        })
    }

    fn read_exact_body(
        &mut self,
        length: usize,
        deadline: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        while self.buffer.len() < length {
            self.fill(deadline)?;
        }
        let body = Zeroizing::new(self.buffer[..length].to_vec());
        self.buffer.drain(..length);
        Ok(body)
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let mut body = Zeroizing::new(Vec::new());
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer, b"\r\n") {
                    break end;
                }
                self.fill(deadline)?;
            };
            let size_text = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| Failure::Malformed("a chunk size"))?;
            self.buffer.drain(..line_end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    if let Some(end) = find(&self.buffer, b"\r\n") {
                        self.buffer.drain(..end + 2);
                        if end == 0 {
                            return Ok(body);
                        }
                        continue;
                    }
                    self.fill(deadline)?;
                }
            }
            while self.buffer.len() < size + 2 {
                self.fill(deadline)?;
            }
            crate::secret::append_wiped(&mut body, &self.buffer[..size]);
            self.buffer.drain(..size + 2);
        }
    }

    /// Reads what the server has sent, by `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Failure> {
        set_deadline(self.stream.socket(), deadline)?;
        let mut chunk = Zeroizing::new([0u8; 16 * 1024]);
        loop {
            match self.stream.read(chunk.as_mut()) {
                Ok(0) => {
                    self.reusable = false;
                    return Err(Failure::Broken(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )));
                }
                Ok(read) => {
                    crate::secret::append_wiped(&mut self.buffer, &chunk[..read]);
                    return Ok(());
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
    if err.kind() == io::ErrorKind::InvalidData {
        return Failure::Tls(err.to_string());
    }
    io_failure(err, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

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
