//! A request's JSON body, for a priced cost: read as it passes to learn the model it
//! names (`costs.priced.model.from: request`), and held until its end when
//! `include_usage` may rewrite it (`stream_usage`).
//!
//! Reading copies the body's bytes as Envoy hands them to the filter, at most
//! `max_request_bytes` of them; past that the body is neither read nor held any more
//! (its model is unknown, and it goes on unchanged). Holding it is Envoy buffering it:
//! the bound must stay below the listener's `per_connection_buffer_limit_bytes`, or
//! Envoy answers 413 before the filter lets it go.

use serde_json::Value;
use tollgate_protocol::config::PricedCost;

use crate::host::Host;
use crate::priced::model_at;
use crate::stream_usage::with_include_usage;

/// A request body being read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestJson {
    /// The body's bytes read so far (the first `read` of the body, unless too large).
    kept: Vec<u8>,
    /// How many of the body's bytes were read.
    read: u64,
    /// Past the bound, or a gap in what Envoy showed: nothing more is read or held.
    too_large: bool,
    /// Whether the body is to be held until its end, to be rewritten.
    rewrites: bool,
    /// The body has ended and was dealt with.
    finished: bool,
    /// The model it named, once finished.
    model: Option<String>,
}

/// What became of a finished request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Left as it was.
    Unchanged,
    /// To be replaced by this body (`stream_options.include_usage` added).
    Rewritten(Vec<u8>),
    /// Larger than `max_request_bytes`: neither read nor rewritten.
    TooLarge,
}

impl RequestJson {
    /// A reader of a request body, which `rewrites` holds until its end.
    pub fn new(rewrites: bool) -> RequestJson {
        RequestJson {
            rewrites,
            ..RequestJson::default()
        }
    }

    /// Whether the body is still to be held: it may be rewritten at its end.
    pub fn holds(&self) -> bool {
        self.rewrites && !self.too_large && !self.finished
    }

    /// Envoy buffers bytes `from..from + buffered` of the body (`from`: what it already
    /// let through): reads those not read yet, if they fit in `max` bytes.
    pub fn read(&mut self, host: &dyn Host, from: u64, buffered: u64, max: u64) {
        if self.too_large || self.finished {
            return;
        }
        let end = from.saturating_add(buffered);
        if self.read < from {
            self.give_up(); // bytes went by unread: what is kept is no longer the body
            return;
        }
        let wanted = end.saturating_sub(self.read);
        if wanted == 0 {
            return;
        }
        let total = self.read.saturating_add(wanted);
        let (Ok(start), Ok(size)) = (usize::try_from(self.read - from), usize::try_from(wanted))
        else {
            return self.give_up();
        };
        if total > max {
            return self.give_up();
        }
        let chunk = host.request_body(start, size);
        if chunk.len() != size {
            return self.give_up();
        }
        self.kept.extend_from_slice(&chunk);
        self.read = total;
    }

    /// The body ended: the model it names, and the body to send instead, if any. Only
    /// a body Envoy still buffers `whole` (that many bytes, all of them read) is
    /// rewritten: one that has partly gone on can no longer be.
    pub fn finish(&mut self, priced: &PricedCost, whole: Option<u64>) -> Finish {
        if self.finished {
            return Finish::Unchanged;
        }
        self.finished = true;
        let kept = std::mem::take(&mut self.kept);
        if self.too_large {
            return Finish::TooLarge;
        }
        if priced.model_from_request() {
            if let (Some(source), Ok(document)) =
                (&priced.model, serde_json::from_slice::<Value>(&kept))
            {
                self.model = model_at(&document, source.pointer.iter());
            }
        }
        if !self.rewrites || whole != Some(self.read) {
            return Finish::Unchanged;
        }
        match with_include_usage(&kept) {
            Some(body) => Finish::Rewritten(body),
            None => Finish::Unchanged,
        }
    }

    /// The model the body named, once it ended.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn give_up(&mut self) {
        self.too_large = true;
        self.kept = Vec::new();
    }
}

/// Whether a request's `content-type` is JSON (`application/json`, or any `+json`).
pub fn is_json(content_type: Option<&str>) -> bool {
    let Some(media) = content_type.and_then(|t| t.split(';').next()) else {
        return false;
    };
    let media = media.trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::FakeHost;

    fn priced(from: &str, include_usage: bool) -> PricedCost {
        serde_json::from_value(json!({
            "resource": "cost", "parts": [{"name": "t", "pointer": "/usage/total_tokens"}],
            "model": {"from": from, "pointer": "/model"}, "prices": {"*": {"t": 1}},
            "include_usage": if include_usage { vec!["/"] } else { vec![] }
        }))
        .unwrap()
    }

    #[test]
    fn a_body_read_as_it_passes_names_its_model_once_it_ends() {
        let host = FakeHost::upload("acme", None);
        let body = br#"{"model":"gpt-4o","stream":true}"#;
        let mut reader = RequestJson::new(false);
        // Two chunks let through one by one: Envoy buffers only the newest.
        host.set_request_buffer(&body[..10]);
        reader.read(&host, 0, 10, 1024);
        host.set_request_buffer(&body[10..]);
        reader.read(&host, 10, body.len() as u64 - 10, 1024);
        assert_eq!(reader.model(), None, "not before the end");
        assert_eq!(
            reader.finish(&priced("request", false), None),
            Finish::Unchanged
        );
        assert_eq!(reader.model(), Some("gpt-4o"));
    }

    #[test]
    fn a_held_body_is_read_from_where_the_last_read_stopped() {
        let host = FakeHost::upload("acme", None);
        let body = br#"{"model":"m","stream":true}"#;
        let mut reader = RequestJson::new(true);
        assert!(reader.holds());
        host.set_request_buffer(&body[..5]);
        reader.read(&host, 0, 5, 1024);
        // Held: Envoy now buffers everything so far.
        host.set_request_buffer(body);
        reader.read(&host, 0, body.len() as u64, 1024);
        let rewritten = br#"{"stream_options":{"include_usage":true},"model":"m","stream":true}"#;
        assert_eq!(
            reader.finish(&priced("response", true), Some(body.len() as u64)),
            Finish::Rewritten(rewritten.to_vec())
        );
        assert!(!reader.holds());
        assert_eq!(reader.model(), None, "the model is the response's");
    }

    #[test]
    fn a_body_past_the_bound_is_let_go_unread() {
        let host = FakeHost::upload("acme", None);
        host.set_request_buffer(&[b' '; 64]);
        let mut reader = RequestJson::new(true);
        reader.read(&host, 0, 32, 48);
        assert!(reader.holds());
        reader.read(&host, 0, 64, 48);
        assert!(!reader.holds());
        assert_eq!(
            reader.finish(&priced("request", true), Some(64)),
            Finish::TooLarge
        );
        assert_eq!(reader.model(), None);
    }

    #[test]
    fn bytes_that_went_by_unread_end_the_reading() {
        let host = FakeHost::upload("acme", None);
        host.set_request_buffer(b"{}");
        let mut reader = RequestJson::new(false);
        reader.read(&host, 10, 2, 1024);
        assert_eq!(
            reader.finish(&priced("request", false), None),
            Finish::TooLarge
        );
    }

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert!(is_json(Some(yes)), "{yes}");
        }
        for no in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert!(!is_json(no), "{no:?}");
        }
    }
}
