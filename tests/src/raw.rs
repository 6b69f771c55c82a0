//! A raw HTTP/1.1 client for what ordinary clients will not do: send a chunked body one
//! chunk at a time while watching for an early answer, or announce a `content-length`
//! and then send less and hang up.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response body is not JSON")
    }
}

/// How a chunked upload went.
#[derive(Debug)]
pub struct Upload {
    /// The gateway's answer.
    pub response: RawResponse,
    /// Body bytes the client managed to write before the answer came (or the
    /// connection broke).
    pub body_bytes_sent: u64,
    /// Whether the client sent the whole body, terminating chunk included.
    pub finished: bool,
}

/// One request head: method, path and headers (`host` is added).
fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nhost: gateway\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// POSTs `chunks` chunks of `chunk_size` bytes with `transfer-encoding: chunked` to
/// `port`, `pause` apart, and stops sending as soon as an answer arrives. Fails if no
/// answer comes within 10 s of the last write.
pub async fn chunked_upload(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    chunk_size: usize,
    chunks: usize,
    pause: Duration,
) -> Result<Upload> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut reader, mut writer) = stream.into_split();
    let mut all_headers = headers.to_vec();
    all_headers.push(("transfer-encoding", "chunked"));
    all_headers.push(("content-type", "application/octet-stream"));
    writer
        .write_all(head("POST", path, &all_headers).as_bytes())
        .await?;
    let mut response = tokio::spawn(async move { read_response(&mut reader).await });
    let chunk = {
        let mut chunk = format!("{chunk_size:x}\r\n").into_bytes();
        chunk.extend(std::iter::repeat_n(b'u', chunk_size));
        chunk.extend_from_slice(b"\r\n");
        chunk
    };
    let mut sent = 0u64;
    let mut finished = false;
    let mut answered = None;
    for index in 0..=chunks {
        let bytes: &[u8] = if index == chunks {
            b"0\r\n\r\n"
        } else {
            &chunk
        };
        tokio::select! {
            result = &mut response => {
                answered = Some(result);
                break;
            }
            written = writer.write_all(bytes) => {
                if written.is_err() {
                    break;
                }
                if index == chunks {
                    finished = true;
                } else {
                    sent += chunk_size as u64;
                }
            }
        }
        if !pause.is_zero() && index < chunks {
            tokio::time::sleep(pause).await;
        }
    }
    let result = match answered {
        Some(result) => result,
        None => tokio::time::timeout(Duration::from_secs(10), response)
            .await
            .context("no answer within 10 s of the last write")?,
    };
    let response = result.context("reader task")??;
    Ok(Upload {
        response,
        body_bytes_sent: sent,
        finished,
    })
}

/// An open HTTP/1.1 connection whose request the test writes piece by piece.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
}

impl RawConnection {
    /// Connects to the gateway on `port` and writes a request head.
    pub async fn start(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawConnection> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(head(method, path, headers).as_bytes())
            .await?;
        Ok(RawConnection { stream })
    }

    /// Writes body bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads the answer, waiting at most `timeout`.
    pub async fn response(&mut self, timeout: Duration) -> Result<RawResponse> {
        tokio::time::timeout(timeout, read_response(&mut self.stream))
            .await
            .context("no answer in time")?
    }

    /// Hangs up (drops the connection without finishing the request).
    pub fn close(self) {
        drop(self.stream);
    }
}

/// Reads one response: head, then a `content-length` or chunked body, or to the end.
pub async fn read_response<R: AsyncRead + Unpin>(reader: &mut R) -> Result<RawResponse> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        let n = reader.read(&mut piece).await?;
        if n == 0 {
            bail!(
                "connection closed before a response head ({} bytes)",
                buffer.len()
            );
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut rest = buffer[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(length) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < length {
            let n = reader.read(&mut piece).await?;
            if n == 0 {
                bail!("connection closed inside the body");
            }
            rest.extend_from_slice(&piece[..n]);
        }
        rest.truncate(length);
        rest
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while find(&rest, b"0\r\n\r\n").is_none() {
            let n = reader.read(&mut piece).await?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&piece[..n]);
        }
        dechunk(&rest)
    } else {
        let _ = reader.read_to_end(&mut rest).await;
        rest
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(data.len());
        body.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    body
}
