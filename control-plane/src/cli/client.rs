//! The admin API's HTTP client: bearer token, actor header, problem+json errors, and
//! listings followed through `next_cursor`.

use std::io::Write;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::args::ServerArgs;
use super::error::{ApiProblem, CliError};

/// Everything but the unreserved characters of RFC 3986 is encoded, so an id is always
/// exactly one path segment (`acme/research` → `acme%2Fresearch`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long one request may take; for a download, how long it may wait for the server
/// to connect and for each next chunk (the whole may take longer).
const TIMEOUT: Duration = Duration::from_secs(30);

/// `value` as one path segment. `.` and `..` cannot be one: URL parsers remove them.
pub fn segment(value: &str) -> Result<String, CliError> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(CliError::usage(format!(
            "{value:?} cannot be addressed in a URL path"
        )));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

/// A client of one server's admin API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For downloads: no bound on the whole, only on each wait.
    downloads: reqwest::Client,
    base: String,
    token: SecretString,
    actor: String,
    page_size: usize,
}

/// All items of a listing, or the first `limit` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The items, in the server's order.
    pub items: Vec<Value>,
    /// Where the listing goes on, when it was cut short by `limit`.
    pub next_cursor: Option<String>,
}

impl Listing {
    /// The listing in the server's page shape.
    pub fn to_json(&self) -> Value {
        let mut page = serde_json::Map::new();
        page.insert("items".into(), Value::Array(self.items.clone()));
        if let Some(cursor) = &self.next_cursor {
            page.insert("next_cursor".into(), Value::String(cursor.clone()));
        }
        Value::Object(page)
    }
}

impl Client {
    /// A client for the server, token and actor of `args`.
    pub fn new(args: &ServerArgs) -> Result<Client, CliError> {
        let token = args.token()?.clone();
        let base = args.server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "--server must be an http:// URL, not {base:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| CliError::Transport(format!("creating the HTTP client: {e}")))?;
        let downloads = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .read_timeout(TIMEOUT)
            .build()
            .map_err(|e| CliError::Transport(format!("creating the HTTP client: {e}")))?;
        Ok(Client {
            http,
            downloads,
            base,
            token,
            actor: args.actor(),
            page_size: usize::from(args.page_size),
        })
    }

    /// Sends one request to `/admin/v1{path}` and returns the JSON it answered (`None`
    /// for an empty answer such as a 204).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, CliError> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.token.expose_secret())
            .header("x-tollgate-actor", &self.actor);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CliError::Transport(format!("{method} {url}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CliError::Transport(format!("{method} {url}: reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(CliError::Api(ApiProblem::from_body(
                status.as_u16(),
                &bytes,
            )));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Transport(format!("{method} {url}: the answer is not JSON: {e}"))
        })
    }

    /// `GET /admin/v1{path}`, its answer written to `out` chunk by chunk as it arrives
    /// (never held whole); returns how many bytes. An error answer is read as a
    /// problem; an answer cut short is an error, after what arrived was written.
    pub async fn download(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut dyn Write,
    ) -> Result<u64, CliError> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut response = self
            .downloads
            .get(&url)
            .bearer_auth(self.token.expose_secret())
            .header("x-tollgate-actor", &self.actor)
            .query(query)
            .send()
            .await
            .map_err(|e| CliError::Transport(format!("GET {url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(CliError::Api(ApiProblem::from_body(status.as_u16(), &body)));
        }
        let mut written = 0;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| CliError::Transport(format!("GET {url}: cut short: {e}")))?;
            let Some(chunk) = chunk else {
                break;
            };
            out.write_all(&chunk)
                .map_err(|e| CliError::Output(format!("writing the answer: {e}")))?;
            written += chunk.len() as u64;
        }
        out.flush()
            .map_err(|e| CliError::Output(format!("writing the answer: {e}")))?;
        Ok(written)
    }

    /// `GET /admin/v1{path}`; an empty answer is an error.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.send(Method::GET, path, query, None)
            .await?
            .ok_or_else(|| CliError::Transport(format!("GET {path}: empty answer")))
    }

    /// A request with a JSON body whose answer must be JSON.
    pub async fn write(&self, method: Method, path: &str, body: &Value) -> Result<Value, CliError> {
        let what = format!("{method} {path}");
        self.send(method, path, &[], Some(body))
            .await?
            .ok_or_else(|| CliError::Transport(format!("{what}: empty answer")))
    }

    /// `DELETE /admin/v1{path}`.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.send(Method::DELETE, path, &[], None).await.map(|_| ())
    }

    /// Every item of the listing at `path` with `filters`, following `next_cursor`, or
    /// the first `limit` items.
    pub async fn list(
        &self,
        path: &str,
        filters: &[(&str, String)],
        limit: Option<usize>,
    ) -> Result<Listing, CliError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let wanted = limit.map_or(self.page_size, |limit| limit.saturating_sub(items.len()));
            let mut query = filters.to_vec();
            query.push(("limit", wanted.clamp(1, self.page_size).to_string()));
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let page = self.get(path, &query).await?;
            let Some(page_items) = page.get("items").and_then(Value::as_array) else {
                return Err(CliError::Transport(format!(
                    "GET {path}: the answer is not a page of items"
                )));
            };
            items.extend(page_items.iter().cloned());
            cursor = page
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            let full = limit.is_some_and(|limit| items.len() >= limit);
            if cursor.is_none() || full {
                if let Some(limit) = limit {
                    items.truncate(limit);
                }
                return Ok(Listing {
                    items,
                    next_cursor: cursor,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_one_path_segment() {
        assert_eq!(segment("acme/research").unwrap(), "acme%2Fresearch");
        assert_eq!(segment("a:b@c.d_e-f").unwrap(), "a%3Ab%40c.d_e-f");
        assert_eq!(segment("with space?").unwrap(), "with%20space%3F");
        for bad in ["", ".", ".."] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }
}
