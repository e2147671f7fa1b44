//! Which requests a broker supports, from its ApiVersions answer. librdkafka
//! keeps that list to itself, so sluice asks with the oldest version of the
//! request (v0), which every broker answers before any authentication.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// TLS settings for brokers that speak only TLS.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

const API_VERSIONS: i16 = 18;

/// The API keys the first reachable bootstrap server supports.
pub fn supported(
    servers: &[String],
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<BTreeSet<i16>, String> {
    let mut errors = Vec::new();
    for server in servers {
        match ask(server, tls, timeout) {
            Ok(keys) => return Ok(keys),
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    Err(errors.join("; "))
}

fn ask(server: &str, tls: Option<&TlsFiles>, timeout: Duration) -> Result<BTreeSet<i16>, String> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let io = |e: std::io::Error| io_error(e, timeout);
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let answer = match tls {
        None => exchange(stream),
        Some(files) => {
            let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
            exchange(tls_stream(stream, host, files)?)
        }
    };
    answer.map_err(|e| match e {
        Exchange::Io(e) => io_error(e, timeout),
        Exchange::Other(m) => m,
    })
}

/// A socket error as people read it: a read that waited the whole timeout
/// says so (it reads "Resource temporarily unavailable" otherwise).
fn io_error(e: std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("timed out after {}s", timeout.as_secs_f64())
        }
        _ => e.to_string(),
    }
}

/// Why an exchange failed: the socket, or the answer.
enum Exchange {
    Io(std::io::Error),
    Other(String),
}

impl From<std::io::Error> for Exchange {
    fn from(e: std::io::Error) -> Self {
        Exchange::Io(e)
    }
}

impl From<String> for Exchange {
    fn from(m: String) -> Self {
        Exchange::Other(m)
    }
}

impl From<&str> for Exchange {
    fn from(m: &str) -> Self {
        Exchange::Other(m.to_owned())
    }
}

fn tls_stream(
    stream: TcpStream,
    host: &str,
    files: &TlsFiles,
) -> Result<openssl::ssl::SslStream<TcpStream>, String> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
    let mut builder = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    if let Some(ca) = &files.ca {
        builder
            .set_ca_file(ca)
            .map_err(|e| format!("CA file `{ca}`: {e}"))?;
    }
    if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
        builder
            .set_certificate_chain_file(cert)
            .map_err(|e| format!("certificate `{cert}`: {e}"))?;
        builder
            .set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| format!("key `{key}`: {e}"))?;
    }
    builder
        .build()
        .connect(host, stream)
        .map_err(|e| e.to_string())
}

/// Sends ApiVersions v0 and reads the keys of the answer.
fn exchange(mut stream: impl Read + Write) -> Result<BTreeSet<i16>, Exchange> {
    let client = b"sluice";
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes()); // version
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame)?;

    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len)).map_err(|_| "bad frame length")?;
    if len > 1 << 20 {
        return Err("answer too large for ApiVersions".into());
    }
    let mut answer = vec![0u8; len];
    stream.read_exact(&mut answer)?;
    Ok(parse(&answer)?)
}

fn parse(answer: &[u8]) -> Result<BTreeSet<i16>, String> {
    let i16_at = |at: usize| {
        answer
            .get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
    };
    let error = i16_at(4).ok_or("short answer")?;
    if error != 0 {
        return Err(format!("ApiVersions answered error code {error}"));
    }
    let count = answer
        .get(6..10)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("short answer")?;
    (0..usize::try_from(count).unwrap_or(0))
        .map(|i| i16_at(10 + i * 6).ok_or_else(|| "short answer".to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_v0_answer() {
        let mut a = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 2];
        for (key, min, max) in [(3i16, 0i16, 12i16), (19, 0, 7)] {
            a.extend_from_slice(&key.to_be_bytes());
            a.extend_from_slice(&min.to_be_bytes());
            a.extend_from_slice(&max.to_be_bytes());
        }
        assert_eq!(parse(&a).unwrap(), BTreeSet::from([3, 19]));
        a[5] = 35;
        assert!(parse(&a).unwrap_err().contains("35"));
        assert!(parse(&[0, 0]).is_err());
    }
}
