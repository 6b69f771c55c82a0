//! Keyset paging of every listing: a page and the cursor of the next one.

/// A page of a listing and the cursor of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts: the sort key of the last item, if there may be more.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` fetched rows: the extra row only tells that more exist.
    pub(crate) fn from_rows(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(key) } else { None };
        Page { items, next }
    }
}

/// The first rows of a listing after a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    /// The sort key of the last row already seen.
    pub after: Option<String>,
    /// How many rows at most.
    pub limit: usize,
}
