//! Rendering of manifest errors: `file:line:column: message`, followed by the
//! offending line with a caret under the span, as compilers do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A message about a span of a manifest file, rendered with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the span points into.
    pub file: PathBuf,
    /// 1-based line of the span's start.
    pub line: usize,
    /// 1-based column (in characters) of the span's start.
    pub column: usize,
    /// What is wrong and what is expected.
    pub message: String,
    /// The text of the line the span starts on.
    pub line_text: String,
    /// How many characters of `line_text` the caret underlines (at least 1).
    pub width: usize,
}

impl Diagnostic {
    /// Locates `span` (byte offsets into `source`) and attaches `message`.
    pub fn new(file: &Path, source: &str, span: Option<Range<usize>>, message: String) -> Self {
        let span = span.unwrap_or(0..0);
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let line_text = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let width = source[start..end.min(line_end)].chars().count().max(1);
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message,
            line_text,
            width,
        }
    }
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    while index > 0 && !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{number} | {}", self.line_text)?;
        write!(
            f,
            "{gutter} | {}{}",
            " ".repeat(self.column - 1),
            "^".repeat(self.width)
        )
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column() {
        let source = "[app]\nname = \"x\"\nbinding = \"htp\"\n";
        let at = source.find("\"htp\"").unwrap();
        let d = Diagnostic::new(
            Path::new("amimono.toml"),
            source,
            Some(at..at + 5),
            "unknown binding".into(),
        );
        assert_eq!((d.line, d.column, d.width), (3, 11, 5));
        assert_eq!(
            d.to_string(),
            "amimono.toml:3:11: unknown binding\n  |\n3 | binding = \"htp\"\n  |           ^^^^^"
        );
    }

    #[test]
    fn span_past_the_end_is_clamped() {
        let d = Diagnostic::new(Path::new("m.toml"), "a = 1", Some(40..50), "eof".into());
        assert_eq!((d.line, d.column), (1, 6));
    }
}
