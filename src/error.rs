//! The library's error type. Each variant maps to one exit code so the CLI never has to guess.

use crate::exit_code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input in a file the user wrote; `location` is `file:line:column`.
    #[error("{location}: {message}")]
    Input { location: String, message: String },

    /// Bad input that has no position in a file (a command-line value, a missing file).
    #[error("{0}")]
    Usage(String),

    /// A server version that could not be turned into a runnable binary.
    #[error("cannot provision {server}: {message}")]
    Provision { server: String, message: String },

    /// A server that was provisioned but did not start or misbehaved.
    #[error("server {server} failed: {message}")]
    Server { server: String, message: String },

    /// The OS error is part of the message and deliberately not a `source`: printing the
    /// chain (`{:#}`) would repeat its "(os error N)".
    #[error("{context}: {cause}")]
    Io {
        context: String,
        cause: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input { .. } | Error::Usage(_) => exit_code::BAD_INPUT,
            Error::Provision { .. } | Error::Server { .. } | Error::Io { .. } => exit_code::INFRA,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }

    /// An input error at a byte offset of a file's text.
    pub fn input_at(
        path: &std::path::Path,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(text, offset);
        Error::Input {
            location: format!("{}:{line}:{column}", path.display()),
            message: message.into(),
        }
    }

    pub fn input_file(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::Input {
            location: path.display().to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 8), (2, 3));
    }
}
