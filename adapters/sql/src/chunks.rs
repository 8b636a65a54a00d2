//! Long keyword lists, stored in pieces that rule versions and audit entries share.
//!
//! A rule is stored three times over as it changes: its current body, every version, and
//! the before and after of every audit entry. A list of 100,000 keywords is about 1.2 MB of
//! JSON, so each edit of it would add megabytes. Instead, wherever a rule is written as JSON
//! (a rule, or a change holding rules), a keyword list longer than [`SPLIT_ABOVE`] is cut into
//! pieces of about [`AVERAGE_PIECE`] keywords, each piece is stored once under the hash of
//! its content, and the list is written as `{"chunks": [hash, …]}`. Pieces end where the
//! content says (after a keyword whose own hash is 0 modulo the average), not at fixed
//! counts, so adding or removing a keyword changes only the piece it falls in: an edit stores
//! that piece and three lists of references (about 7 KB each for 100,000 keywords).
//! Reading puts the lists back together; JSON written before this still reads as it is.

use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::{Backend, Statement, col, db, from_json};
use groupguard_core::ports::StoreError;

/// Lists up to this long are written whole.
const SPLIT_ABOVE: usize = 512;
/// Keywords per piece, on average.
const AVERAGE_PIECE: u64 = 256;
/// The fields of a rule's `keywords` that hold lists.
const LISTS: [&str; 2] = ["substrings", "words"];

/// `value` as JSON with its long keyword lists as references to pieces, storing new pieces.
pub(crate) async fn to_stored_json<T: Serialize>(
    conn: &mut AnyConnection,
    value: &T,
) -> Result<String, StoreError> {
    let mut json = serde_json::to_value(value).map_err(StoreError::backend)?;
    let mut pieces = Vec::new();
    split(&mut json, &mut pieces);
    store_pieces(conn, pieces).await?;
    serde_json::to_string(&json).map_err(StoreError::backend)
}

/// Reads JSON written by [`to_stored_json`] (or before it existed).
pub(crate) async fn from_stored_json<T: DeserializeOwned>(
    conn: &mut AnyConnection,
    text: &str,
) -> Result<T, StoreError> {
    if !text.contains("\"chunks\"") {
        return from_json(text);
    }
    let mut json: Value = from_json(text)?;
    let mut hashes = Vec::new();
    visit_lists(&mut json, &mut |list| {
        if let Some(refs) = references(list) {
            hashes.extend(refs.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    });
    let pieces = load_pieces(conn, &hashes).await?;
    let mut missing = None;
    visit_lists(&mut json, &mut |list| {
        let Some(refs) = references(list) else { return };
        let mut keywords = Vec::new();
        for hash in refs.iter().filter_map(Value::as_str) {
            match pieces.get(hash) {
                Some(piece) => keywords.extend(piece.iter().cloned()),
                None => missing = Some(hash.to_owned()),
            }
        }
        *list = Value::Array(keywords);
    });
    if let Some(hash) = missing {
        return Err(StoreError::backend(std::io::Error::other(format!(
            "a stored keyword list refers to a missing piece {hash}"
        ))));
    }
    serde_json::from_value(json).map_err(StoreError::backend)
}

/// The piece hashes of a list written as references.
fn references(list: &Value) -> Option<&Vec<Value>> {
    list.as_object()?.get("chunks")?.as_array()
}

/// Calls `f` on every keyword list in `value`: the lists of any `keywords` object.
fn visit_lists(value: &mut Value, f: &mut impl FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(keywords)) = map.get_mut("keywords") {
                for field in LISTS {
                    if let Some(list) = keywords.get_mut(field) {
                        f(list);
                    }
                }
            }
            for (key, inner) in map.iter_mut() {
                if key != "keywords" {
                    visit_lists(inner, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| visit_lists(v, f)),
        _ => {}
    }
}

/// Replaces long keyword lists in `value` by references; collects the pieces (hash, JSON).
fn split(value: &mut Value, pieces: &mut Vec<(String, String)>) {
    visit_lists(value, &mut |list| {
        let Some(keywords) = list.as_array().filter(|k| k.len() > SPLIT_ABOVE) else {
            return;
        };
        let mut refs = Vec::new();
        let mut start = 0;
        for (i, keyword) in keywords.iter().enumerate() {
            if ends_piece(keyword) || i + 1 == keywords.len() {
                let body = Value::Array(keywords[start..=i].to_vec()).to_string();
                let hash = piece_hash(&body);
                refs.push(Value::String(hash.clone()));
                pieces.push((hash, body));
                start = i + 1;
            }
        }
        let mut reference = Map::new();
        reference.insert("chunks".to_owned(), Value::Array(refs));
        *list = Value::Object(reference);
    });
}

/// Whether a piece ends after `keyword`: decided by the keyword alone, the same in every
/// process and version of the list.
fn ends_piece(keyword: &Value) -> bool {
    let mut hasher = rustc_hash::FxHasher::default();
    keyword.as_str().unwrap_or_default().hash(&mut hasher);
    hasher.finish().is_multiple_of(AVERAGE_PIECE)
}

/// 128 bits of SHA-256 of a piece's JSON, in hex.
fn piece_hash(body: &str) -> String {
    Sha256::digest(body.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn store_pieces(
    conn: &mut AnyConnection,
    mut pieces: Vec<(String, String)>,
) -> Result<(), StoreError> {
    pieces.sort_unstable();
    pieces.dedup();
    // Most pieces of an edited list are stored already: look, then write only the new ones.
    let hashes: Vec<String> = pieces.iter().map(|(hash, _)| hash.clone()).collect();
    let stored = stored_hashes(conn, &hashes).await?;
    pieces.retain(|(hash, _)| !stored.contains(hash));
    for chunk in pieces.chunks(crate::CHUNK / 2) {
        let mut insert = Statement::new(
            Backend::of(conn),
            "INSERT INTO keyword_chunks (hash, body) VALUES ",
        );
        for (i, (hash, body)) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert.tuple([
                crate::Value::from(hash.clone()),
                crate::Value::from(body.clone()),
            ]);
        }
        insert.push(" ON CONFLICT (hash) DO NOTHING");
        insert.query().execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// The rows of `keyword_chunks` among `hashes`, with their bodies or without.
async fn pieces_among(
    conn: &mut AnyConnection,
    hashes: &[String],
    with_bodies: bool,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let query = match (Backend::of(conn), with_bodies) {
        (Backend::Sqlite, true) => {
            "SELECT hash, body FROM keyword_chunks WHERE hash IN (SELECT value FROM json_each($1))"
        }
        (Backend::Sqlite, false) => {
            "SELECT hash FROM keyword_chunks WHERE hash IN (SELECT value FROM json_each($1))"
        }
        (Backend::Postgres, true) => {
            "SELECT hash, body FROM keyword_chunks \
             WHERE hash IN (SELECT json_array_elements_text($1::json))"
        }
        (Backend::Postgres, false) => {
            "SELECT hash FROM keyword_chunks \
             WHERE hash IN (SELECT json_array_elements_text($1::json))"
        }
    };
    let wanted = serde_json::to_string(hashes).map_err(StoreError::backend)?;
    sqlx::query(query)
        .bind(wanted)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)
}

async fn stored_hashes(
    conn: &mut AnyConnection,
    hashes: &[String],
) -> Result<rustc_hash::FxHashSet<String>, StoreError> {
    pieces_among(conn, hashes, false)
        .await?
        .iter()
        .map(|row| col::<String>(row, "hash"))
        .collect()
}

async fn load_pieces(
    conn: &mut AnyConnection,
    hashes: &[String],
) -> Result<rustc_hash::FxHashMap<String, Vec<Value>>, StoreError> {
    let rows = pieces_among(conn, hashes, true).await?;
    rows.iter()
        .map(|row| {
            let keywords: Vec<Value> = from_json(&col::<String>(row, "body")?)?;
            Ok((col::<String>(row, "hash")?, keywords))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize, extra: &[&str]) -> Value {
        let mut keywords: Vec<Value> = (0..n).map(|i| Value::from(format!("词{i:06}"))).collect();
        keywords.extend(extra.iter().map(|k| Value::from(*k)));
        serde_json::json!({ "id": "words", "keywords": { "substrings": keywords } })
    }

    fn split_all(mut value: Value) -> (Value, Vec<(String, String)>) {
        let mut pieces = Vec::new();
        split(&mut value, &mut pieces);
        (value, pieces)
    }

    #[test]
    fn an_added_keyword_changes_one_piece() {
        let (before, old) = split_all(list(100_000, &[]));
        let (after, new) = split_all(list(100_000, &["新词"]));
        let old: std::collections::HashSet<_> = old.into_iter().map(|(h, _)| h).collect();
        let fresh = new.iter().filter(|(h, _)| !old.contains(h)).count();
        assert_eq!(fresh, 1, "only the last piece is new");
        let size = |v: &Value| v.to_string().len();
        assert!(size(&after) < 20_000, "references: {} bytes", size(&after));
        assert!(size(&before) < 20_000);
        assert!(old.len() > 100, "{} pieces", old.len());
    }

    #[test]
    fn short_lists_and_other_fields_stay_as_they_are() {
        let (value, pieces) = split_all(list(SPLIT_ABOVE, &[]));
        assert!(pieces.is_empty());
        assert_eq!(value, list(SPLIT_ABOVE, &[]));
        // A change holding a rule before and after: both lists are split.
        let change =
            serde_json::json!({ "rule": { "before": list(600, &[]), "after": list(600, &["x"]) } });
        let (value, pieces) = split_all(change);
        assert!(!pieces.is_empty());
        assert!(value.to_string().contains("\"chunks\""));
        assert!(!value.to_string().contains("词000001"));
    }
}
