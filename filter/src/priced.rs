//! Priced costs (`costs.priced`) in a response, and what a request is charged for them.
//!
//! Every JSON document of the response (the whole body, or each event of a stream) is
//! searched for each part's count and for the model: the last document that reports a
//! part wins, as usage arrives in a stream's final events (OpenAI's last chunk,
//! Anthropic's `message_delta`, whose `output_tokens` are cumulative).
//!
//! The charge, once the request is over:
//! - some part reported → the parts at the model's weights (an unknown model at the
//!   table's highest), each part's own resource at its count;
//! - nothing reported, and the upstream answered 2xx or not at all (a stream cut off
//!   before its usage, a client that left first, an answer without usage) → what was
//!   reserved at the headers: the work may have been done, and was never reported;
//! - nothing reported and an error status (4xx, 5xx, Envoy's own 503 or 413) → nothing.

use serde_json::Value;
use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::config::{PricedCost, MODEL_NAME_MAX};

/// What a response reported of a priced cost.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reported {
    /// Each part's count, in the order of the config's parts, once a document had it.
    pub parts: Vec<Option<u64>>,
    /// The model a document named (when the model is read from the response).
    pub model: Option<String>,
    /// The response's `:status`, if one came.
    pub status: Option<u32>,
}

impl Reported {
    /// Nothing reported yet, of a response with `status`.
    pub fn new(priced: &PricedCost, status: Option<u32>) -> Reported {
        Reported {
            parts: vec![None; priced.parts.len()],
            model: None,
            status,
        }
    }

    /// Takes what `document` reports: each part's first pointer that holds a
    /// non-negative integer, and the model's first that holds a string.
    pub fn take(&mut self, priced: &PricedCost, document: &Value) {
        for (part, count) in priced.parts.iter().zip(self.parts.iter_mut()) {
            let found = (part.pointer.iter()).find_map(|p| document.pointer(p)?.as_u64());
            if found.is_some() {
                *count = found;
            }
        }
        let Some(source) = priced
            .model
            .as_ref()
            .filter(|_| !priced.model_from_request())
        else {
            return;
        };
        if let Some(model) = model_at(document, source.pointer.iter()) {
            self.model = Some(model);
        }
    }

    /// Whether any part was reported.
    pub fn anything(&self) -> bool {
        self.parts.iter().any(Option::is_some)
    }
}

/// The model name at the first of `pointers` that holds a string (at most
/// [`MODEL_NAME_MAX`] bytes: a longer one names no model of any table).
pub fn model_at<'a>(document: &Value, pointers: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut names = pointers.filter_map(|p| document.pointer(p)?.as_str());
    let name = names.next()?;
    (name.len() <= MODEL_NAME_MAX).then(|| name.to_string())
}

/// What a request that reached the upstream is charged for a priced cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// What was reported: each resource and its amount.
    Reported {
        /// The priced resource, then each part's own.
        amounts: Vec<(String, u64)>,
        /// Priced at the table's highest weights: the model (`None`: none was named)
        /// has no entry.
        unknown_model: Option<Option<String>>,
    },
    /// Nothing reported of an answer that may have cost something: what was reserved.
    Reserve,
    /// Nothing reported of an answer that failed: nothing.
    Nothing,
}

/// The charge for what `reported` says, `model` being the request's or the response's
/// (whichever the config reads).
pub fn charge(priced: &PricedCost, reported: &Reported, model: Option<&str>) -> Charge {
    if !reported.anything() {
        return match reported.status {
            None | Some(200..=299) => Charge::Reserve,
            Some(_) => Charge::Nothing,
        };
    }
    let counts: Vec<u64> = reported.parts.iter().map(|c| c.unwrap_or(0)).collect();
    let (weights, unknown_model) = match priced.weights_of(model) {
        Some(weights) => (weights, None),
        None => (priced.highest_weights(), Some(model.map(String::from))),
    };
    let mut amounts = vec![(priced.resource.clone(), priced.price(&weights, &counts))];
    for (part, count) in priced.parts.iter().zip(&counts) {
        if let Some(resource) = &part.resource {
            amounts.push((resource.clone(), (*count).min(AMOUNT_MAX)));
        }
    }
    Charge::Reported {
        amounts,
        unknown_model,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn priced(model_from: &str) -> PricedCost {
        serde_json::from_value(json!({
            "resource": "cost",
            "parts": [
                {"name": "input", "pointer": ["/usage/input_tokens", "/message/usage/input_tokens"],
                 "resource": "input_tokens", "reserve": 100},
                {"name": "output", "pointer": ["/usage/output_tokens", "/message/usage/output_tokens"]}
            ],
            "model": {"from": model_from, "pointer": ["/model", "/message/model"]},
            "prices": {"claude-sonnet-4-5": {"input": 3, "output": 15},
                       "claude-haiku*": {"input": 1, "output": 5}}
        }))
        .unwrap()
    }

    fn reported(priced: &PricedCost, status: Option<u32>, documents: &[Value]) -> Reported {
        let mut reported = Reported::new(priced, status);
        for document in documents {
            reported.take(priced, document);
        }
        reported
    }

    #[test]
    fn the_last_document_to_report_a_part_wins_at_whichever_pointer() {
        let priced = priced("response");
        let events = [
            json!({"type": "message_start", "message": {"model": "claude-sonnet-4-5",
                   "usage": {"input_tokens": 25, "output_tokens": 1}}}),
            json!({"type": "content_block_delta", "delta": {"text": "hi"}}),
            json!({"type": "message_delta", "usage": {"output_tokens": 15}}),
        ];
        let reported = reported(&priced, Some(200), &events);
        assert_eq!(reported.parts, vec![Some(25), Some(15)]);
        assert_eq!(reported.model.as_deref(), Some("claude-sonnet-4-5"));
        let charge = charge(&priced, &reported, reported.model.as_deref());
        assert_eq!(
            charge,
            Charge::Reported {
                amounts: vec![
                    ("cost".into(), 25 * 3 + 15 * 15),
                    ("input_tokens".into(), 25)
                ],
                unknown_model: None
            }
        );
    }

    #[test]
    fn a_model_read_from_the_request_ignores_the_responses() {
        let priced = priced("request");
        let reported = reported(
            &priced,
            Some(200),
            &[json!({"model": "claude-haiku-4-5", "usage": {"input_tokens": 2}})],
        );
        assert_eq!(reported.model, None);
        let Charge::Reported { amounts, .. } = charge(&priced, &reported, Some("claude-haiku-4-5"))
        else {
            panic!("reported");
        };
        assert_eq!(amounts[0], ("cost".into(), 2));
    }

    #[test]
    fn an_unknown_or_missing_model_pays_the_highest_weights() {
        let priced = priced("response");
        let reported = reported(
            &priced,
            Some(200),
            &[json!({"model": "gpt-5", "usage": {"input_tokens": 10, "output_tokens": 2}})],
        );
        for model in [Some("gpt-5"), None] {
            let Charge::Reported {
                amounts,
                unknown_model,
            } = charge(&priced, &reported, model)
            else {
                panic!("reported");
            };
            assert_eq!(amounts[0], ("cost".into(), 10 * 3 + 2 * 15));
            assert_eq!(unknown_model, Some(model.map(String::from)));
        }
    }

    #[test]
    fn nothing_reported_keeps_the_reserve_unless_the_answer_failed() {
        let priced = priced("response");
        let content = [json!({"choices": [{"delta": {"content": "Hel"}}]})];
        for status in [None, Some(200), Some(206)] {
            let reported = reported(&priced, status, &content);
            assert_eq!(charge(&priced, &reported, None), Charge::Reserve);
        }
        for status in [400, 429, 503, 413] {
            let reported = reported(&priced, Some(status), &content);
            assert_eq!(charge(&priced, &reported, None), Charge::Nothing);
        }
    }

    #[test]
    fn counts_that_are_not_non_negative_integers_are_not_reports() {
        let priced = priced("response");
        let documents = [
            json!({"usage": {"input_tokens": -3, "output_tokens": 2.5}}),
            json!({"usage": {"input_tokens": "7"}, "model": 4}),
        ];
        let reported = reported(&priced, Some(200), &documents);
        assert!(!reported.anything());
        assert_eq!(reported.model, None);
        let long = "m".repeat(MODEL_NAME_MAX + 1);
        assert_eq!(
            model_at(&json!({"model": long}), ["/model"].into_iter()),
            None
        );
    }
}
