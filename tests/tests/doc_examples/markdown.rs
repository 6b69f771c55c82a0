//! The fenced blocks of the docs, and the examples among them: a block is an example
//! when the line right before its opening fence is a marker,
//! `<!-- example: NAME — what the test does with it -->`. The marker is an HTML comment,
//! so readers of the rendered page do not see it; editors of the file do.

use anyhow::{bail, Context, Result};
use tollgate_e2e::process::repo_root;

/// The docs whose examples are tested, relative to the repository root.
pub const DOCS: [&str; 2] = ["README.md", "envoy/README.md"];

const MARKER: &str = "<!-- example:";
const FENCE: &str = "```";

/// One fenced block of a doc.
#[derive(Debug, Clone)]
pub struct Block {
    /// The 1-based line of its opening fence.
    pub line: usize,
    /// The info string after the opening fence (`sh`, `json`, …).
    pub lang: String,
    /// What is between the fences, each line ending in `\n`.
    pub body: String,
    /// The name its marker gives it, if it is an example.
    pub example: Option<String>,
}

/// Every fenced block of `doc`. Fails on a marker that is not right before an opening
/// fence, a marker without a name, and a block that is never closed.
pub fn blocks(doc: &'static str) -> Result<Vec<Block>> {
    let path = repo_root().join(doc);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {doc}"))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.trim().strip_prefix(MARKER) {
            let name = rest.split_whitespace().next().filter(|n| *n != "-->");
            let Some(name) = name else {
                bail!("{doc}:{}: an example marker without a name", i + 1);
            };
            let fenced = lines.get(i + 1).is_some_and(|l| l.starts_with(FENCE));
            if !fenced {
                bail!(
                    "{doc}:{}: the marker of example {name:?} is not right before a ``` fence",
                    i + 1
                );
            }
            let block = fenced_block(doc, &lines, i + 1, Some(name.to_string()))?;
            i = block.1;
            blocks.push(block.0);
        } else if line.starts_with(FENCE) {
            let block = fenced_block(doc, &lines, i, None)?;
            i = block.1;
            blocks.push(block.0);
        } else {
            i += 1;
        }
    }
    Ok(blocks)
}

/// The block whose opening fence is line `open` (0-based), and the index of the line
/// after its closing fence.
fn fenced_block(
    doc: &'static str,
    lines: &[&str],
    open: usize,
    example: Option<String>,
) -> Result<(Block, usize)> {
    let close = (open + 1..lines.len())
        .find(|&i| lines[i].trim_end() == FENCE)
        .with_context(|| format!("{doc}:{}: a ``` block that is never closed", open + 1))?;
    let body: String = lines[open + 1..close]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    let block = Block {
        line: open + 1,
        lang: lines[open][FENCE.len()..].trim().to_string(),
        body,
        example,
    };
    Ok((block, close + 1))
}

/// The example `name` of `doc`, in the language `lang`. Fails, naming the examples
/// the doc has, when it is missing, marked twice, or not in that language.
pub fn example(doc: &'static str, name: &str, lang: &str) -> Result<Block> {
    let all = blocks(doc)?;
    let mut found = all.iter().filter(|b| b.example.as_deref() == Some(name));
    let Some(block) = found.next() else {
        let names: Vec<&str> = all.iter().filter_map(|b| b.example.as_deref()).collect();
        bail!(
            "{doc} has no example {name:?} (no `{MARKER} {name} … -->` line before a ``` fence); \
             its examples: {names:?}"
        );
    };
    if let Some(again) = found.next() {
        bail!(
            "{doc} marks two blocks as example {name:?} (lines {} and {})",
            block.line,
            again.line
        );
    }
    if block.lang != lang {
        bail!(
            "{doc}:{}: example {name:?} is a ```{} block, not ```{lang}",
            block.line,
            block.lang
        );
    }
    Ok(block.clone())
}
