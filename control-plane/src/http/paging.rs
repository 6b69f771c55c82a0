//! Cursor pagination of every listing: `?limit=` (1–500, default 100) and an opaque
//! `?cursor=` from the previous page's `next_cursor`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::repo::{Page, Paging};

/// The largest page.
pub const MAX_LIMIT: usize = 500;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 100;

/// A page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The paging of a request's `cursor` and `limit`.
pub fn paging(cursor: Option<&str>, limit: Option<usize>) -> Result<Paging, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field("limit", format!("from 1 to {MAX_LIMIT}")));
    }
    let after = match cursor {
        None => None,
        Some(cursor) => Some(
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                // No key holds NUL (PostgreSQL text cannot), and one would fail the
                // query rather than match nothing.
                .filter(|key| !key.contains('\0'))
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this API gave out"))?,
        ),
    };
    Ok(Paging { after, limit })
}

/// A repository page as the API answers it.
pub fn page_view<T, V>(page: Page<T>) -> PageView<V>
where
    V: for<'a> From<&'a T>,
{
    page_view_with(page, |item| V::from(item))
}

/// A repository page as the API answers it, each item shown by `view`.
pub fn page_view_with<T, V>(page: Page<T>, view: impl Fn(&T) -> V) -> PageView<V> {
    PageView {
        items: page.items.iter().map(view).collect(),
        next_cursor: page.next.map(|key| URL_SAFE_NO_PAD.encode(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let page = Page {
            items: vec!["a".to_string()],
            next: Some("acme/research".to_string()),
        };
        let view: PageView<String> = page_view(page);
        let cursor = view.next_cursor.unwrap();
        assert_eq!(
            paging(Some(&cursor), None).unwrap().after.as_deref(),
            Some("acme/research")
        );
        assert!(paging(Some("%%%"), None).is_err());
        let with_nul = URL_SAFE_NO_PAD.encode("a\0b");
        assert!(paging(Some(&with_nul), None).is_err());
        assert!(paging(None, Some(0)).is_err());
        assert!(paging(None, Some(501)).is_err());
        assert_eq!(paging(None, None).unwrap().limit, DEFAULT_LIMIT);
    }
}
