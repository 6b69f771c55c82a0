//! What admin subcommands print on stdout: a table with one row per item, or the
//! server's JSON.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, ContentArrangement, Table};
use serde_json::Value;

use super::limit::LimitSpec;

/// A borderless table, columns two spaces apart, headers in capitals.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| Cell::new(h.to_uppercase())));
    for row in rows {
        table.add_row(row.iter().map(Cell::new));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints [`table`].
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    println!("{}", table(header, rows));
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // A `Value` always serializes; print it compactly if it somehow does not.
        Err(_) => println!("{value}"),
    }
}

/// A field of an object as a cell: strings as they are, other values as JSON, `-` for
/// null or absent.
pub fn cell(object: &Value, field: &str) -> String {
    match object.get(field) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// A limit as one short line: `requests/minute/calendar quota 600, overage 10`.
pub fn limit_line(limit: &Value) -> String {
    match LimitSpec::from_view(limit) {
        Ok(spec) => format!("{} {}", spec.key_text(), spec.summary()),
        Err(_) => limit.to_string(),
    }
}

/// Labels as `k=v,k2=v2` (`-` for none).
pub fn labels_cell(labels: Option<&Value>) -> String {
    let Some(object) = labels.and_then(Value::as_object) else {
        return "-".to_string();
    };
    if object.is_empty() {
        return "-".to_string();
    }
    object
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_have_capital_headers_and_no_borders() {
        let text = table(
            &["name", "limits"],
            &[vec![
                "free".into(),
                "requests/minute/calendar quota 60".into(),
            ]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("NAME  "), "{text}");
        assert!(lines[1].starts_with("free  "), "{text}");
    }

    #[test]
    fn cells_show_strings_plainly_and_nothing_as_a_dash() {
        let object = json!({"a": "x", "b": 1.5, "c": null});
        assert_eq!(cell(&object, "a"), "x");
        assert_eq!(cell(&object, "b"), "1.5");
        assert_eq!(cell(&object, "c"), "-");
        assert_eq!(cell(&object, "d"), "-");
        assert_eq!(
            labels_cell(Some(&json!({"plan": "pro", "n": 1}))),
            "n=1,plan=pro"
        );
        assert_eq!(labels_cell(Some(&json!({}))), "-");
    }
}
