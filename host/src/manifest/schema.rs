//! Deserialization of a TOML file (the manifest, the bindings file) into
//! its raw serde structs that reports every schema problem — unknown keys,
//! values of the wrong type, missing keys — not only the first one serde
//! meets.
//!
//! The text is parsed once into toml's spanned value tree and deserialized
//! from it. On an error, the entry the error points at is removed from the
//! tree and deserialization is tried again, until it succeeds or nothing
//! more can be removed. Removing a required key makes serde report it
//! missing next: that follow-on error is not reported (the key's table is
//! removed in turn). A syntax error is reported alone.

use super::Diagnostic;
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

/// Most problems reported for one file.
const MAX_PROBLEMS: usize = 100;

/// Deserializes `T` from TOML `text` (read from `file`); on failure, a
/// diagnostic for every problem found, in document order.
pub fn deserialize_all<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Vec<Diagnostic>> {
    let diagnostic = |problem: Problem| Diagnostic::new(file, text, problem.span, problem.message);
    let mut root = DeTable::parse(text).map_err(|e| vec![diagnostic(Problem::of(&e))])?;
    let mut problems: Vec<Problem> = Vec::new();
    // Keys removed from the tree so far: (span of their table, key).
    let mut removed: Vec<(Range<usize>, String)> = Vec::new();
    loop {
        let error = match T::deserialize(Deserializer::from(root.clone())) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(error) => Problem::of(&error),
        };
        let follow_on = error.span.as_ref().is_some_and(|span| {
            removed.iter().any(|(table, key)| {
                table == span && error.message == format!("missing field `{key}`")
            })
        });
        if !follow_on {
            if problems.contains(&error) || problems.len() >= MAX_PROBLEMS {
                break;
            }
            problems.push(error.clone());
        }
        let root_span = root.span();
        let Some(span) = error.span.filter(|span| *span != root_span) else {
            break;
        };
        let Some(cut) = remove_at(root_span, root.get_mut(), &span) else {
            break;
        };
        removed.push(cut);
    }
    problems.sort_by_key(|p| p.span.as_ref().map_or((0, 0), |s| (s.start, s.end)));
    Err(problems.into_iter().map(diagnostic).collect())
}

/// One error of serde or of the TOML parser.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    span: Option<Range<usize>>,
    message: String,
}

impl Problem {
    fn of(error: &toml::de::Error) -> Problem {
        Problem {
            span: error.span(),
            message: error.message().trim_end().to_string(),
        }
    }
}

/// Removes the entry of `table` (spanning `table_span`) that `span` points
/// at, looking into nested tables and arrays: an entry whose key or value
/// spans exactly `span`, else the innermost value that contains it. Returns
/// the span of the table or array it was removed from and its key (empty
/// for an array element).
fn remove_at(
    table_span: Range<usize>,
    table: &mut DeTable<'_>,
    span: &Range<usize>,
) -> Option<(Range<usize>, String)> {
    let exact = table
        .iter()
        .find(|(key, value)| key.span() == *span || value.span() == *span)
        .map(|(key, _)| key.clone());
    if let Some(key) = exact {
        table.remove(&key);
        return Some((table_span, key.into_inner().into_owned()));
    }
    // A standard table's span is its `[header]`, not its entries: look into
    // every nested value, not only those whose span contains `span`.
    for (_, value) in table.iter_mut() {
        if let Some(cut) = remove_in(value, span) {
            return Some(cut);
        }
    }
    let containing = table
        .iter()
        .find(|(_, value)| contains(&value.span(), span))
        .map(|(key, _)| key.clone())?;
    table.remove(&containing);
    Some((table_span, containing.into_inner().into_owned()))
}

/// [`remove_at`] inside a value (a table or an array).
fn remove_in(
    value: &mut Spanned<DeValue<'_>>,
    span: &Range<usize>,
) -> Option<(Range<usize>, String)> {
    let value_span = value.span();
    match value.get_mut() {
        DeValue::Table(table) => remove_at(value_span, table, span),
        DeValue::Array(array) => {
            if let Some(cut) = array.iter_mut().find_map(|item| remove_in(item, span)) {
                return Some(cut);
            }
            let index = array
                .iter()
                .position(|item| item.span() == *span || contains(&item.span(), span))?;
            *array = array
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(_, item)| item.clone())
                .collect();
            Some((value_span, String::new()))
        }
        _ => None,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    !outer.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        app: App,
        #[serde(default)]
        parts: BTreeMap<String, Part>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct App {
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Part {
        source: String,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        files: Vec<File>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        host: String,
    }

    /// `line:column: message` of every problem.
    fn problems(text: &str) -> Vec<String> {
        deserialize_all::<Doc>(Path::new("t.toml"), text)
            .unwrap_err()
            .into_iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn a_valid_document_deserializes() {
        let doc: Doc = deserialize_all(
            Path::new("t.toml"),
            "[app]\nname = \"x\"\n[parts.a]\nsource = \"s\"\ncount = 2\ntags = [\"t\"]\nfiles = [{ host = \"h\" }]\n",
        )
        .unwrap();
        assert_eq!(doc.app.name, "x");
        let part = &doc.parts["a"];
        assert_eq!((part.source.as_str(), part.count), ("s", Some(2)));
        assert_eq!(part.tags, ["t"]);
        assert_eq!(part.files[0].host, "h");
    }

    #[test]
    fn every_problem_is_reported_in_document_order() {
        let text = "[app]\nname = 3\nport = 1\n\n[parts.a]\nsource = \"a\"\nzz = 1\nyy = 2\n\n[parts.b]\nsource = \"b\"\ncount = -1\ntags = [\"ok\", 3, true]\nfiles = [{ host = \"h\" }, { guest = \"/g\" }]\n";
        assert_eq!(
            problems(text),
            [
                "2:8: invalid type: integer `3`, expected a string",
                "3:1: unknown field `port`, expected `name`",
                "7:1: unknown field `zz`, expected one of `source`, `count`, `tags`, `files`",
                "8:1: unknown field `yy`, expected one of `source`, `count`, `tags`, `files`",
                "12:9: invalid value: integer `-1`, expected u64",
                "13:15: invalid type: integer `3`, expected a string",
                "13:18: invalid type: boolean `true`, expected a string",
                "14:26: missing field `host`",
                "14:28: unknown field `guest`, expected `host`",
            ]
        );
    }

    #[test]
    fn a_missing_key_is_reported_with_the_problems_around_it() {
        let text = "[parts.a]\ncount = \"x\"\n\n[parts.b]\nsource = \"b\"\nnope = 1\n";
        assert_eq!(
            problems(text),
            [
                "1:1: missing field `app`",
                "1:1: missing field `source`",
                "2:9: invalid type: string \"x\", expected u64",
                "6:1: unknown field `nope`, expected one of `source`, `count`, `tags`, `files`",
            ]
        );
    }

    #[test]
    fn a_syntax_error_is_reported_alone() {
        assert_eq!(
            problems("[app\nname = 3\n"),
            ["1:5: unclosed table, expected `]`"]
        );
    }
}
