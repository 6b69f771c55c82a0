//! The metric names a PromQL expression reads, for holding alert rules and dashboard
//! panels to what Prometheus really scraped.
//!
//! Not a parser: a tokenizer that knows where PromQL writes something that is not a
//! metric name. A name is an identifier that is not followed by `(` (a function or an
//! aggregation), is not a keyword (`by`, `and`, `offset`, …, `inf`, `nan`), and is not
//! inside a label matcher `{…}`, a range `[…]`, a string, or the label list of `by`,
//! `without`, `on`, `ignoring`, `group_left` or `group_right`. Grafana's variables
//! (`$tenant`, `${job}`, `$__rate_interval`) are skipped too.

use std::collections::BTreeSet;

/// Words that stand where a metric name could, but are not one: aggregation operators
/// written before their modifier (`sum by (job) (…)`), binary and set operators,
/// modifiers, and the float literals.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "start",
    "end",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// A string, number, duration or Grafana variable: never a name, never a list.
    Literal,
    Punct(char),
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn tokenize(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                // Backslash escapes in "…" and '…'; `…` has none.
                i += if chars[i] == '\\' && c != '`' { 2 } else { 1 };
            }
            i += 1;
            tokens.push(Token::Literal);
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
            }
            tokens.push(Token::Literal);
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            // 0.99, 5m, 1h30m, 1e3, 0x1f.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Literal);
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// The index just past the bracket that closes the one at `open`.
fn past_closing(tokens: &[Token], open: usize, opening: char, closing: char) -> usize {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct(c) if *c == opening => depth += 1,
            Token::Punct(c) if *c == closing => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// Every metric name `expr` reads.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let tokens = tokenize(expr);
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => i = past_closing(&tokens, i, '{', '}'),
            Token::Punct('[') => i = past_closing(&tokens, i, '[', ']'),
            Token::Ident(word) => {
                let lower = word.to_ascii_lowercase();
                let call = tokens.get(i + 1) == Some(&Token::Punct('('));
                if call && LABEL_LISTS.contains(&lower.as_str()) {
                    i = past_closing(&tokens, i + 1, '(', ')');
                    continue;
                }
                if !call && !KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word.clone());
                }
                i += 1;
            }
            Token::Literal | Token::Punct(_) => i += 1,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn a_metric_inside_functions_and_an_aggregation_is_found() {
        assert_eq!(
            names("sum by (job, decision) (rate(tollgate_checks_total[1m]))"),
            ["tollgate_checks_total"]
        );
        assert_eq!(
            names("sum(rate(tollgate_checks_total[5m])) without (instance)"),
            ["tollgate_checks_total"]
        );
    }

    #[test]
    fn label_matchers_ranges_and_strings_hold_no_names() {
        assert_eq!(
            names(r#"rate(a_total{outcome=~"unavailable|error", x="}{ b"}[5m:1m] offset 5m)"#),
            ["a_total"]
        );
        assert_eq!(
            names(r#"label_replace(sum by (job) (rate(a[1m])), "result", "b", "", "")"#),
            ["a"]
        );
    }

    #[test]
    fn recorded_names_with_colons_and_both_sides_of_operators_are_found() {
        assert_eq!(
            names("job:x:rate5m > 5 * job:x:rate1h and on (job, instance) y == 0"),
            ["job:x:rate1h", "job:x:rate5m", "y"]
        );
        assert_eq!(
            names("a / ignoring(le) group_left(tenant) b or absent(up{job=\"x\"}) > bool 1"),
            ["a", "b", "up"]
        );
    }

    #[test]
    fn grafana_variables_numbers_and_literals_are_not_names() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (le) (rate(x_bucket{tenant=~"$tenant"}[$__rate_interval]))) > Inf"#
            ),
            ["x_bucket"]
        );
        assert_eq!(
            names("topk(10, increase(y[${__range}])) * 1e3 + NaN"),
            ["y"]
        );
    }

    #[test]
    fn constants_and_functions_alone_name_no_metric() {
        assert!(names("vector(1) + time()").is_empty());
        assert!(names("sum by (job) (1)").is_empty());
    }
}
