//! A priced cost (`costs.priced`): several numbers an AI back end reports (prompt,
//! completion and cached tokens), each at its model's price, summed into one resource
//! (`cost_microusd`), and each also countable as a resource of its own.
//!
//! The price table maps model names to per-part weights; the arithmetic is
//! [`crate::price`]. What is held at the headers, before any model is known, is
//! [`PricedCost::reserves`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{fail, ConfigError};
use crate::check::AMOUNT_MAX;
use crate::price::{price, DIVISOR_MAX, PARTS_MAX, WEIGHT_MAX};

/// The model names a price table may hold at most.
pub const MODELS_MAX: usize = 4096;

/// The longest model name (of a table entry, and read from a body).
pub const MODEL_NAME_MAX: usize = 256;

/// The entry every model without one of its own takes, if the table has it.
pub const ANY_MODEL: &str = "*";

/// One JSON pointer, or several tried in order (the first that finds a value wins): the
/// same number sits at different places in a JSON answer and in an event stream.
///
/// Read by hand rather than as an untagged enum: a refusal then says what was expected
/// ("a JSON pointer or a list of them"), and the filter's `.wasm` is a little smaller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Pointers {
    /// One RFC 6901 pointer.
    One(String),
    /// Several, in order.
    Several(Vec<String>),
}

impl<'de> Deserialize<'de> for Pointers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Pointers;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON pointer or a list of them")
            }

            fn visit_str<E: serde::de::Error>(self, pointer: &str) -> Result<Pointers, E> {
                Ok(Pointers::One(pointer.to_string()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Pointers, A::Error> {
                let mut pointers = Vec::new();
                while let Some(pointer) = seq.next_element()? {
                    pointers.push(pointer);
                }
                Ok(Pointers::Several(pointers))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Pointers {
    /// The pointers, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let all: &[String] = match self {
            Pointers::One(pointer) => std::slice::from_ref(pointer),
            Pointers::Several(pointers) => pointers,
        };
        all.iter().map(String::as_str)
    }

    fn validate(&self, field: &'static str) -> Result<(), ConfigError> {
        let count = self.iter().count();
        if !(1..=8).contains(&count) {
            return fail(field, "must be one to eight JSON pointers");
        }
        let pointer = |p: &str| p.len() <= 1024 && (p.is_empty() || p.starts_with('/'));
        if !self.iter().all(pointer) {
            return fail(field, "must be JSON pointers (\"\" or starting with /)");
        }
        Ok(())
    }
}

/// One number the upstream reports, priced per model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricedPart {
    /// What the price table calls it (`prompt`, `completion`, `cached`).
    pub name: String,
    /// Where the count is in a response's JSON (or each event's): a non-negative integer.
    pub pointer: Pointers,
    /// Also count the part itself as this resource (`prompt_tokens`), unweighted.
    #[serde(default)]
    pub resource: Option<String>,
    /// How many of it a typical answer has: sizes what is held at the headers.
    #[serde(default)]
    pub reserve: u64,
}

/// Which message names the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFrom {
    /// The response (JSON, or the events of a stream): always read anyway.
    #[default]
    Response,
    /// The request's JSON body: read as it passes, kept up to `max_request_bytes`.
    Request,
}

/// Where the model name is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// The request or the response.
    #[serde(default)]
    pub from: ModelFrom,
    /// The string's JSON pointer, e.g. `/model` (and `/message/model` for an Anthropic
    /// stream's `message_start`).
    pub pointer: Pointers,
}

/// A cost priced per model from several reported parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricedCost {
    /// The resource the sum is counted as, e.g. `cost_microusd`.
    pub resource: String,
    /// The parts, 1 to 16.
    pub parts: Vec<PricedPart>,
    /// Where the model is named; without it every request takes the `"*"` entry.
    #[serde(default)]
    pub model: Option<ModelSource>,
    /// Model name → part name → weight (an integer in the resource's unit per `divisor`
    /// units of the part; a part an entry does not name weighs 0). A name ending in `*`
    /// matches every model starting with what precedes it (the longest such prefix
    /// wins over shorter ones, an exact name over every prefix); `"*"` alone matches
    /// every model. A model no entry matches is priced at the highest weight of each
    /// part in the table.
    pub prices: BTreeMap<String, BTreeMap<String, i64>>,
    /// What every weight is divided by (once, on the sum, rounding up).
    #[serde(default = "one")]
    pub divisor: u64,
    /// Path prefixes of OpenAI-style endpoints (`/v1/chat/completions`) whose streaming
    /// requests (`"stream": true`) get `"stream_options": {"include_usage": true}` when
    /// they lack it, so their event stream reports usage. Empty (the default): none.
    /// Only those endpoints: other APIs (Anthropic's `/v1/messages`) refuse the field.
    #[serde(default)]
    pub include_usage: Vec<String>,
    /// The most of a response the filter keeps to read: a whole JSON body, or one event.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// The most of a request body the filter keeps (to read its model, or to rewrite it
    /// with `include_usage`, when Envoy holds it meanwhile: keep it well below the
    /// listener's `per_connection_buffer_limit_bytes`).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// [`PricedCost::highest_weights`], worked out on first use: with a large table it
    /// costs milliseconds, and a filter needs it at every request's headers. The
    /// fields above are not changed once a config is in use.
    #[serde(skip)]
    highest: Derived<Vec<i64>>,
}

/// A value worked out once from the rest of a config: no part of what the config is, so
/// any two are equal, it is never serialised, and a parsed config starts without it.
#[derive(Debug, Clone, Default)]
struct Derived<T>(std::sync::OnceLock<T>);

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Derived<T>) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

impl PricedCost {
    /// Whether `include_usage` rewrites a streaming request to `path` (its query aside).
    pub fn includes_usage_at(&self, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or_default();
        (self.include_usage.iter()).any(|prefix| path.starts_with(prefix.as_str()))
    }

    /// Whether the model is read from the request's body.
    pub fn model_from_request(&self) -> bool {
        self.model
            .as_ref()
            .is_some_and(|m| m.from == ModelFrom::Request)
    }

    /// The weights of `model` in the order of [`PricedCost::parts`]: its own entry, else
    /// the longest `prefix*` entry that matches, else `"*"`; `None` when no entry
    /// matches (or no model is known and the table has no `"*"`).
    pub fn weights_of(&self, model: Option<&str>) -> Option<Vec<i64>> {
        let entry = match model {
            Some(model) => self.prices.get(model).or_else(|| {
                (self.prices.iter())
                    .filter_map(|(name, entry)| Some((name.strip_suffix('*')?, entry)))
                    .filter(|(prefix, _)| model.starts_with(prefix))
                    .max_by_key(|(prefix, _)| prefix.len())
                    .map(|(_, entry)| entry)
            }),
            None => self.prices.get(ANY_MODEL),
        }?;
        Some(self.weights_in(entry))
    }

    /// The highest weight of each part over the whole table: the price of a model the
    /// table does not know, so nobody is charged less for naming one.
    pub fn highest_weights(&self) -> Vec<i64> {
        (self.highest.0)
            .get_or_init(|| self.work_out_highest_weights())
            .clone()
    }

    fn work_out_highest_weights(&self) -> Vec<i64> {
        let mut highest: Option<Vec<i64>> = None;
        for entry in self.prices.values() {
            let weights = self.weights_in(entry);
            highest = Some(match highest {
                None => weights,
                Some(h) => h.iter().zip(&weights).map(|(a, b)| *a.max(b)).collect(),
            });
        }
        highest.unwrap_or_else(|| vec![0; self.parts.len()])
    }

    /// What `counts` of the parts cost at `weights`.
    pub fn price(&self, weights: &[i64], counts: &[u64]) -> u64 {
        price(weights, counts, self.divisor)
    }

    /// What a request holds at its headers, per resource: the priced resource at each
    /// part's `reserve` priced at the highest weight the table has for it (a discount
    /// counts 0 here), and each part counted on its own at its `reserve`. Zeros
    /// included; a resource is listed once.
    pub fn reserves(&self) -> Vec<(String, u64)> {
        let weights: Vec<i64> = (self.highest_weights().into_iter())
            .map(|w| w.max(0))
            .collect();
        let counts: Vec<u64> = self.parts.iter().map(|p| p.reserve).collect();
        let mut reserves = vec![(self.resource.clone(), self.price(&weights, &counts))];
        for part in &self.parts {
            if let Some(resource) = &part.resource {
                reserves.push((resource.clone(), part.reserve.min(AMOUNT_MAX)));
            }
        }
        reserves
    }

    /// Every resource it counts: the priced one, then the parts' own.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.resource.as_str())
            .chain(self.parts.iter().filter_map(|p| p.resource.as_deref()))
    }

    fn weights_in(&self, entry: &BTreeMap<String, i64>) -> Vec<i64> {
        (self.parts.iter())
            .map(|part| entry.get(&part.name).copied().unwrap_or(0))
            .collect()
    }

    /// Checks every field; `taken` are the resources other response costs count.
    pub(super) fn validate(
        &self,
        taken: &[&str],
        is_resource: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        if !is_resource(&self.resource) {
            return fail(
                "costs.priced.resource",
                "must be a resource name other than the built-in ones",
            );
        }
        if taken.contains(&self.resource.as_str()) {
            return fail(
                "costs.priced.resource",
                "must differ from the resources of response_header and response_json",
            );
        }
        self.validate_parts(taken, is_resource)?;
        if let Some(model) = &self.model {
            model.pointer.validate("costs.priced.model.pointer")?;
        }
        self.validate_prices()?;
        let prefix = |p: &String| p.starts_with('/') && p.len() <= 1024 && !p.contains('?');
        if self.include_usage.len() > 64 || !self.include_usage.iter().all(prefix) {
            return fail(
                "costs.priced.include_usage",
                "must be at most 64 path prefixes, each starting with /",
            );
        }
        if !(1..=DIVISOR_MAX).contains(&self.divisor) {
            return fail("costs.priced.divisor", "must be 1..=1000000000000000");
        }
        if self.max_body_bytes == 0 {
            return fail("costs.priced.max_body_bytes", "must be at least 1");
        }
        if self.max_request_bytes == 0 {
            return fail("costs.priced.max_request_bytes", "must be at least 1");
        }
        Ok(())
    }

    fn validate_parts(
        &self,
        taken: &[&str],
        is_resource: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        if !(1..=PARTS_MAX).contains(&self.parts.len()) {
            return fail("costs.priced.parts", "must list 1 to 16 parts");
        }
        let mut names: Vec<&str> = Vec::new();
        let mut resources: Vec<&str> = vec![self.resource.as_str()];
        for part in &self.parts {
            if !is_part_name(&part.name) {
                return fail("costs.priced.parts.name", "must be 1 to 64 of a-z 0-9 _ -");
            }
            if names.contains(&part.name.as_str()) {
                return fail("costs.priced.parts.name", "must be unique");
            }
            names.push(&part.name);
            part.pointer.validate("costs.priced.parts.pointer")?;
            if let Some(resource) = &part.resource {
                if !is_resource(resource) {
                    return fail(
                        "costs.priced.parts.resource",
                        "must be a resource name other than the built-in ones",
                    );
                }
                if resources.contains(&resource.as_str()) || taken.contains(&resource.as_str()) {
                    return fail(
                        "costs.priced.parts.resource",
                        "must differ from every other resource of the response costs",
                    );
                }
                resources.push(resource);
            }
            if part.reserve > AMOUNT_MAX {
                return fail(
                    "costs.priced.parts.reserve",
                    "must be at most 9223372036854775807",
                );
            }
        }
        Ok(())
    }

    fn validate_prices(&self) -> Result<(), ConfigError> {
        const FIELD: &str = "costs.priced.prices";
        if !(1..=MODELS_MAX).contains(&self.prices.len()) {
            return fail(FIELD, "must price 1 to 4096 models");
        }
        if self.model.is_none() && !self.prices.contains_key(ANY_MODEL) {
            return fail(FIELD, "needs a \"*\" entry when no model is read");
        }
        for (model, weights) in &self.prices {
            if !is_model_key(model) {
                return Err(ConfigError::entry(
                    FIELD,
                    format!("[{model:?}]"),
                    "must be 1 to 256 visible ASCII characters, with * only at the end",
                ));
            }
            for (part, weight) in weights {
                if !self.parts.iter().any(|p| p.name == *part) {
                    return Err(ConfigError::entry(
                        FIELD,
                        format!("[{model:?}][{part:?}]"),
                        "names no part of costs.priced.parts",
                    ));
                }
                if weight.unsigned_abs() > WEIGHT_MAX.unsigned_abs() {
                    return Err(ConfigError::entry(
                        FIELD,
                        format!("[{model:?}][{part:?}]"),
                        "must be an integer within ±1000000000000000",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A part's name: what the price table refers to it by.
fn is_part_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A price table's key: a model name, or a prefix ending in `*`.
fn is_model_key(key: &str) -> bool {
    let name = key.strip_suffix('*').unwrap_or(key);
    (1..=MODEL_NAME_MAX).contains(&key.len())
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'*')
}

fn one() -> u64 {
    1
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

fn default_max_request_bytes() -> u64 {
    256 * 1024
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;
    use crate::config::FilterConfig;

    /// An OpenAI-style table: micro-USD per million tokens, cached prompt tokens (which
    /// the prompt count includes) at half price through a negative weight.
    fn openai() -> Value {
        json!({
            "resource": "cost_microusd",
            "parts": [
                {"name": "prompt", "pointer": "/usage/prompt_tokens",
                 "resource": "prompt_tokens", "reserve": 1000},
                {"name": "completion", "pointer": "/usage/completion_tokens",
                 "resource": "completion_tokens", "reserve": 500},
                {"name": "cached", "pointer": "/usage/prompt_tokens_details/cached_tokens"}
            ],
            "model": {"pointer": "/model"},
            "prices": {
                "gpt-4o": {"prompt": 2_500_000, "completion": 10_000_000, "cached": -1_250_000},
                "gpt-4o-mini*": {"prompt": 150_000, "completion": 600_000, "cached": -75_000},
                "gpt-4o-mini-2024*": {"prompt": 160_000, "completion": 600_000},
                "*": {"prompt": 1_000_000, "completion": 2_000_000}
            },
            "divisor": 1_000_000
        })
    }

    fn parse(priced: &Value) -> Result<PricedCost, ConfigError> {
        let json = json!({"control_plane": {"cluster": "cp"}, "costs": {"priced": priced}});
        let config = FilterConfig::from_json(json.to_string().as_bytes())?;
        Ok(config.costs.priced.unwrap())
    }

    fn refusal(patch: Value) -> (String, String) {
        let mut priced = openai();
        for (key, value) in patch.as_object().unwrap() {
            priced[key] = value.clone();
        }
        match parse(&priced) {
            Err(ConfigError::Field { field, problem }) => (field.to_string(), problem.into()),
            Err(ConfigError::Entry { field, key, .. }) => (format!("{field}{key}"), String::new()),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_model_takes_its_own_weights_else_the_longest_prefix_else_the_catch_all() {
        let priced = parse(&openai()).unwrap();
        let weights = |model| priced.weights_of(model).unwrap();
        assert_eq!(
            weights(Some("gpt-4o")),
            vec![2_500_000, 10_000_000, -1_250_000]
        );
        assert_eq!(
            weights(Some("gpt-4o-mini")),
            vec![150_000, 600_000, -75_000]
        );
        assert_eq!(
            weights(Some("gpt-4o-mini-2024-07-18")),
            vec![160_000, 600_000, 0],
            "the longer prefix; a part it does not price weighs 0"
        );
        assert_eq!(
            weights(Some("gpt-4o-2024-08-06")),
            vec![1_000_000, 2_000_000, 0],
            "gpt-4o is an exact name, not a prefix"
        );
        assert_eq!(weights(None), vec![1_000_000, 2_000_000, 0]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn without_a_catch_all_an_unknown_model_matches_nothing_and_pays_the_highest() {
        let mut json = openai();
        json["prices"].as_object_mut().unwrap().remove("*");
        let priced = parse(&json).unwrap();
        assert_eq!(priced.weights_of(Some("llama-3")), None);
        assert_eq!(priced.weights_of(None), None);
        assert_eq!(
            priced.highest_weights(),
            vec![2_500_000, 10_000_000, 0],
            "each part's highest weight, an entry that omits a part counting 0"
        );
        // 1000 prompt + 500 completion tokens at gpt-4o's prices: 2500 + 5000 µUSD.
        let reserves = priced.reserves();
        assert_eq!(
            reserves,
            vec![
                ("cost_microusd".to_string(), 7_500),
                ("prompt_tokens".to_string(), 1_000),
                ("completion_tokens".to_string(), 500),
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_reserve_never_counts_a_discount_and_rounds_up() {
        let mut json = openai();
        json["parts"][2]["reserve"] = json!(1_000_000);
        json["parts"][0]["reserve"] = json!(1);
        json["parts"][1]["reserve"] = json!(0);
        let priced = parse(&json).unwrap();
        // One prompt token at 2.5 µUSD: 3; a million cached tokens would be a credit.
        assert_eq!(priced.reserves()[0], ("cost_microusd".to_string(), 3));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_priced_cost_alone_is_a_valid_config_and_round_trips() {
        let minimal = json!({
            "resource": "cost", "parts": [{"name": "tokens", "pointer": "/usage/total_tokens"}],
            "prices": {"*": {"tokens": 3}}
        });
        let priced = parse(&minimal).unwrap();
        assert_eq!(priced.divisor, 1);
        assert!(priced.include_usage.is_empty(), "the rewrite is opt-in");
        assert!(!priced.includes_usage_at("/v1/chat/completions"));
        assert_eq!(
            (priced.max_body_bytes, priced.max_request_bytes),
            (1 << 20, 256 << 10)
        );
        assert_eq!(priced.reserves(), vec![("cost".to_string(), 0)]);
        let again: PricedCost =
            serde_json::from_value(serde_json::to_value(&priced).unwrap()).unwrap();
        assert_eq!(
            again, priced,
            "the highest weights reserves() worked out are no part of it"
        );
        let several = parse(&openai()).unwrap();
        let pointers = json!(["/usage/input_tokens", "/message/usage/input_tokens"]);
        let mut anthropic = openai();
        anthropic["parts"][0]["pointer"] = pointers;
        anthropic["model"] = json!({"from": "request", "pointer": "/model"});
        anthropic["include_usage"] = json!(["/v1/chat/completions", "/openai/v1/completions"]);
        let anthropic = parse(&anthropic).unwrap();
        assert!(anthropic.includes_usage_at("/v1/chat/completions?x=1"));
        assert!(anthropic.includes_usage_at("/openai/v1/completions"));
        assert!(!anthropic.includes_usage_at("/v1/messages"));
        assert!(anthropic.model_from_request() && !several.model_from_request());
        assert_eq!(
            anthropic.parts[0].pointer.iter().collect::<Vec<_>>(),
            ["/usage/input_tokens", "/message/usage/input_tokens"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_bad_value_is_refused_by_its_field() {
        let long_model = format!("m{}", "x".repeat(MODEL_NAME_MAX));
        let seventeen: Vec<Value> = (0..17)
            .map(|n| json!({"name": format!("p{n}"), "pointer": "/n"}))
            .collect();
        let cases = [
            (json!({"resource": "requests"}), "costs.priced.resource"),
            (json!({"resource": "Cost"}), "costs.priced.resource"),
            (json!({"parts": []}), "costs.priced.parts"),
            (json!({"parts": seventeen}), "costs.priced.parts"),
            (
                json!({"parts": [{"name": "A", "pointer": "/a"}]}),
                "costs.priced.parts.name",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": "/a"}, {"name": "a", "pointer": "/b"}]}),
                "costs.priced.parts.name",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": "usage"}]}),
                "costs.priced.parts.pointer",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": []}]}),
                "costs.priced.parts.pointer",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": "/a", "resource": "cost_microusd"}]}),
                "costs.priced.parts.resource",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": "/a", "resource": "t"},
                                 {"name": "b", "pointer": "/b", "resource": "t"}]}),
                "costs.priced.parts.resource",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": "/a", "resource": "request_bytes"}]}),
                "costs.priced.parts.resource",
            ),
            (
                json!({"parts": [{"name": "a", "pointer": "/a", "reserve": 9_223_372_036_854_775_808_u64}]}),
                "costs.priced.parts.reserve",
            ),
            (
                json!({"model": {"pointer": "model"}}),
                "costs.priced.model.pointer",
            ),
            (json!({"prices": {}}), "costs.priced.prices"),
            (
                json!({"model": null, "prices": {"gpt-4o": {"prompt": 1}}}),
                "costs.priced.prices",
            ),
            (
                json!({"prices": {"gpt*4o": {"prompt": 1}}}),
                "costs.priced.prices[\"gpt*4o\"]",
            ),
            (
                json!({"prices": {"gpt 4o": {"prompt": 1}}}),
                "costs.priced.prices[\"gpt 4o\"]",
            ),
            (
                json!({"prices": {long_model.clone(): {"prompt": 1}}}),
                &format!("costs.priced.prices[{long_model:?}]"),
            ),
            (
                json!({"prices": {"gpt-4o": {"promt": 1}}}),
                "costs.priced.prices[\"gpt-4o\"][\"promt\"]",
            ),
            (
                json!({"prices": {"gpt-4o": {"prompt": 1_000_000_000_000_001_i64}}}),
                "costs.priced.prices[\"gpt-4o\"][\"prompt\"]",
            ),
            (
                json!({"prices": {"gpt-4o": {"prompt": i64::MIN}}}),
                "costs.priced.prices[\"gpt-4o\"][\"prompt\"]",
            ),
            (
                json!({"include_usage": ["v1/chat/completions"]}),
                "costs.priced.include_usage",
            ),
            (
                json!({"include_usage": ["/v1/chat?x"]}),
                "costs.priced.include_usage",
            ),
            (json!({"divisor": 0}), "costs.priced.divisor"),
            (
                json!({"divisor": 1_000_000_000_000_001_u64}),
                "costs.priced.divisor",
            ),
            (json!({"max_body_bytes": 0}), "costs.priced.max_body_bytes"),
            (
                json!({"max_request_bytes": 0}),
                "costs.priced.max_request_bytes",
            ),
        ];
        for (patch, field) in cases {
            assert_eq!(refusal(patch.clone()).0, field, "{patch}");
        }
        // Not a list of paths at all: refused as JSON of the wrong shape.
        let mut yes = openai();
        yes["include_usage"] = json!(true);
        assert!(matches!(parse(&yes), Err(ConfigError::Json(_))));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_bounds_themselves_are_accepted() {
        let most: Vec<Value> = (0..PARTS_MAX)
            .map(|n| json!({"name": format!("p{n}"), "pointer": "/n", "reserve": AMOUNT_MAX}))
            .collect();
        let weights: serde_json::Map<String, Value> = (0..PARTS_MAX)
            .map(|n| (format!("p{n}"), json!(WEIGHT_MAX)))
            .collect();
        let priced = parse(&json!({
            "resource": "cost", "parts": most, "prices": {"*": weights},
            "divisor": DIVISOR_MAX
        }))
        .unwrap();
        assert_eq!(priced.reserves(), vec![("cost".to_string(), AMOUNT_MAX)]);
        let counts = [u64::MAX; PARTS_MAX];
        assert_eq!(priced.price(&priced.highest_weights(), &counts), AMOUNT_MAX);
        let negative = json!({
            "resource": "cost", "parts": [{"name": "a", "pointer": ""}],
            "prices": {"*": {"a": -WEIGHT_MAX}}
        });
        assert!(parse(&negative).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_priced_resource_may_not_be_another_response_costs() {
        let json = json!({"control_plane": {"cluster": "cp"}, "costs": {
            "response_json": {"pointer": "/usage/total_tokens", "resource": "tokens"},
            "priced": {"resource": "tokens", "parts": [{"name": "a", "pointer": "/a"}],
                       "prices": {"*": {"a": 1}}}
        }});
        let err = FilterConfig::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Field {
                    field: "costs.priced.resource",
                    ..
                }
            ),
            "{err}"
        );
        let json = json!({"control_plane": {"cluster": "cp"}, "costs": {
            "response_header": {"header": "x-credits", "resource": "credits"},
            "priced": {"resource": "cost", "prices": {"*": {"a": 1}},
                       "parts": [{"name": "a", "pointer": "/a", "resource": "credits"}]}
        }});
        let err = FilterConfig::from_json(json.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid filter configuration: costs.priced.parts.resource: \
             must differ from every other resource of the response costs"
        );
    }
}
