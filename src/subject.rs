//! NATS naming rules: validation of stream names, subjects and filters, and filter matching.
//!
//! Subjects are `.`-separated tokens. In a filter, `*` matches exactly one token and `>`
//! matches one or more tokens and may only be the last token. Both backends use these functions,
//! so a filter means the same thing on the embedded backend as on a server.

use crate::error::{Error, ErrorKind, Result};

/// The longest stream, durable or consumer name Herald accepts.
pub(crate) const MAX_NAME_LEN: usize = 200;

/// Checks a name used as a stream, durable or node name: 1 to 200 characters from
/// `A-Z a-z 0-9 _ -`, the portable subset NATS accepts everywhere (it also becomes part of file
/// names on the server).
pub(crate) fn validate_name(what: &str, kind: ErrorKind, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(kind, format!("the {what} must not be empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::new(
            kind,
            format!(
                "the {what} is {} bytes long; the limit is {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Error::new(
            kind,
            format!(
                "the {what} {name:?} contains {bad:?}; only letters, digits, '_' and '-' are allowed"
            ),
        ));
    }
    Ok(())
}

/// Checks a literal subject (or a publish key): non-empty tokens, no wildcards, no whitespace.
pub(crate) fn validate_subject(subject: &str) -> Result<()> {
    validate_tokens(subject, false).map_err(|why| {
        Error::new(
            ErrorKind::InvalidSubject,
            format!("the subject {subject:?} is invalid: {why}"),
        )
    })
}

/// Checks a filter: like a subject, but `*` may stand for a token and `>` may end it.
pub(crate) fn validate_filter(filter: &str) -> Result<()> {
    validate_tokens(filter, true).map_err(|why| {
        Error::new(
            ErrorKind::InvalidFilter,
            format!("the filter {filter:?} is invalid: {why}"),
        )
    })
}

fn validate_tokens(s: &str, wildcards: bool) -> std::result::Result<(), &'static str> {
    if s.is_empty() {
        return Err("it is empty");
    }
    let mut tokens = s.split('.').peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() {
            return Err("it has an empty token (a leading, trailing or doubled '.')");
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace or a control character");
        }
        let is_last = tokens.peek().is_none();
        match token {
            "*" if wildcards => {}
            ">" if wildcards && is_last => {}
            ">" if wildcards => return Err("'>' may only be the last token"),
            _ if token.contains(['*', '>']) => {
                return Err(if wildcards {
                    "wildcards '*' and '>' must be whole tokens"
                } else {
                    "wildcards are not allowed here"
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the literal `subject` matches `filter` (`*` one token, `>` one or more tokens).
pub(crate) fn matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for f in filter.split('.') {
        match f {
            ">" => return subject_tokens.next().is_some(),
            "*" => {
                if subject_tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if subject_tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_nats_wildcards() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("*.b.>", "x.b.y"));
        assert!(matches(">", "anything.at.all"));
    }

    #[test]
    fn invalid_filters_and_subjects_say_why() {
        for bad in ["", "a..b", ".a", "a.", "a.>.b", "a.b*", "a b", "a.\t"] {
            assert_eq!(
                validate_filter(bad).unwrap_err().kind(),
                ErrorKind::InvalidFilter,
                "{bad:?}"
            );
        }
        for bad in ["", "a.*", "a.>", "a..b", "a b"] {
            assert_eq!(
                validate_subject(bad).unwrap_err().kind(),
                ErrorKind::InvalidSubject,
                "{bad:?}"
            );
        }
        validate_filter("a.*.>").expect("valid");
        validate_subject("alerts.42").expect("valid");
        let err = validate_filter("a.>.b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the filter \"a.>.b\" is invalid: '>' may only be the last token"
        );
    }

    #[test]
    fn names_are_portable() {
        validate_name(
            "stream name",
            ErrorKind::InvalidStreamName,
            "HERALD_events-1",
        )
        .expect("valid");
        for bad in ["", "a.b", "a b", "a/b", "a*", "é"] {
            assert!(
                validate_name("stream name", ErrorKind::InvalidStreamName, bad).is_err(),
                "{bad:?}"
            );
        }
    }
}
