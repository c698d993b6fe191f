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

/// Why a text file (a manifest, a bindings file) could not be read.
#[derive(Debug)]
pub enum ReadTextError {
    /// Reading failed.
    Io(std::io::Error),
    /// The bytes are not UTF-8: points at the first invalid byte.
    NotUtf8(Diagnostic),
}

/// Reads the UTF-8 text file at `path`.
pub fn read_text(path: &Path) -> Result<String, ReadTextError> {
    let bytes = std::fs::read(path).map_err(ReadTextError::Io)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let byte = bytes.get(at).copied().unwrap_or_default();
        // Up to `at` the lossy text is the file itself, so `at` points at
        // the replacement character standing for the invalid byte.
        let shown = String::from_utf8_lossy(bytes);
        ReadTextError::NotUtf8(Diagnostic::new(
            path,
            &shown,
            Some(at..at + 1),
            format!("the file is not UTF-8 text: byte 0x{byte:02X} (at byte offset {at}) is not valid UTF-8"),
        ))
    })
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
    fn a_file_that_is_not_utf8_is_located_at_its_first_invalid_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, b"[a]\nname = \"caf\xc3\xa9 \xff\"\n").unwrap();
        let Err(ReadTextError::NotUtf8(d)) = read_text(&path) else {
            panic!("not reported as non-UTF-8");
        };
        assert_eq!((d.line, d.column, d.width), (2, 14, 1));
        assert!(
            d.message.contains("byte 0xFF (at byte offset 18)"),
            "{}",
            d.message
        );
        assert!(matches!(
            read_text(&dir.path().join("none")),
            Err(ReadTextError::Io(_))
        ));
    }

    #[test]
    fn span_past_the_end_is_clamped() {
        let d = Diagnostic::new(Path::new("m.toml"), "a = 1", Some(40..50), "eof".into());
        assert_eq!((d.line, d.column), (1, 6));
    }
}
