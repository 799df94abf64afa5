//! Credentials never leave Herald: server addresses in events, logs and `Debug` output are
//! redacted here.

/// Splits a comma-separated list of server URLs into its URLs (trimmed), never inside a
/// URL's credentials: `nats://alice:se,cret@a:4222,b:4222` is `nats://alice:se,cret@a:4222`
/// and `b:4222`.
///
/// A comma ends a URL unless the URL has not reached the end of its credentials yet (no `@`,
/// `/`, `?` or `#` since its `scheme://`) and the text after the comma reaches an `@` before
/// any `/`, `?` or `#` (which would start another URL's `scheme://` or end an address). So a
/// comma in a password needs no escaping, as long as the password has no `@`. Without schemes
/// the list is ambiguous, and credentials win: in `a:1,u:p@b:2` the comma is read as part of
/// the user name `a` and password `1,u:p`; give each server its `nats://` to list them.
///
/// Redaction and connecting both split with this function, so what is hidden is exactly what
/// is sent as credentials.
pub(crate) fn split_server_list(list: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut start = 0;
    loop {
        let end = start + url_len(&list[start..]);
        urls.push(list[start..end].trim());
        if end >= list.len() {
            return urls;
        }
        // Skips the separating comma.
        start = end + 1;
    }
}

/// The length of the first URL of `list`: up to the first comma that is not in its credentials.
fn url_len(list: &str) -> usize {
    let authority = authority_start(list);
    // True while a comma may still belong to the credentials: nothing has ended them yet.
    let mut in_credentials = true;
    for (i, c) in list[authority..].char_indices() {
        match c {
            '@' | '/' | '?' | '#' => in_credentials = false,
            ',' => {
                let after = &list[authority + i + 1..];
                let credentials_go_on = in_credentials
                    && after
                        .find(['@', '/', '?', '#'])
                        .map(|j| after.as_bytes()[j])
                        == Some(b'@');
                if !credentials_go_on {
                    return authority + i;
                }
            }
            _ => {}
        }
    }
    list.len()
}

/// Where the part after `scheme://` begins in `url`: after the first `://` when it comes before
/// any `,` or `@` (else that `://` is not this URL's scheme), or at 0 when there is none.
fn authority_start(url: &str) -> usize {
    match url.find("://") {
        Some(i) if !url[..i].contains([',', '@']) => i + 3,
        _ => 0,
    }
}

/// Hides credentials in a NATS URL or a comma-separated list of them:
/// `nats://user:pass@host:4222` becomes `nats://***@host:4222`.
pub(crate) fn redact_url(urls: &str) -> String {
    split_server_list(urls)
        .into_iter()
        .map(|url| {
            let (scheme, rest) = url.split_at(authority_start(url));
            match rest.rfind('@') {
                Some(at) => format!("{scheme}***{}", &rest[at..]),
                None => url.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Redacts every URL-like word in a free text (server and client error messages); whitespace
/// is kept as it was.
pub(crate) fn redact_text(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    for chunk in text.split_inclusive(char::is_whitespace) {
        // `split_inclusive` leaves at most one whitespace character at the end of each chunk.
        let word = chunk.trim_end_matches(char::is_whitespace);
        if word.contains('@') {
            redacted.push_str(&redact_url(word));
        } else {
            redacted.push_str(word);
        }
        redacted.push_str(&chunk[word.len()..]);
    }
    redacted
}

/// A parsed server address as events show it: `scheme://host:port`, with `***@` where it
/// carried credentials.
pub(crate) fn redact_addr(addr: &async_nats::ServerAddr) -> String {
    let credentials = if addr.username().is_some() || addr.password().is_some() {
        "***@"
    } else {
        ""
    };
    format!(
        "{}://{credentials}{}:{}",
        addr.scheme(),
        addr.host(),
        addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_credential_form() {
        for (url, want) in [
            ("nats://user:pass@host:4222", "nats://***@host:4222"),
            ("nats://tok@host", "nats://***@host"),
            ("user:p@ss@host:4222", "***@host:4222"),
            ("nats://a:1,nats://u:p@b:2", "nats://a:1,nats://***@b:2"),
        ] {
            assert_eq!(redact_url(url), want);
        }
        for (url, want) in [
            ("nats://user:pass@host:4222", "nats://***@host:4222"),
            ("tls://tok@host", "tls://***@host:4222"),
            ("127.0.0.1:5222", "nats://127.0.0.1:5222"),
        ] {
            let addr: async_nats::ServerAddr = url.parse().expect("address");
            assert_eq!(redact_addr(&addr), want);
        }
        assert_eq!(
            redact_text("failed to connect nats://u:p@h:1 now"),
            "failed to connect nats://***@h:1 now"
        );
    }

    /// A password made to be noticed if any part of it shows.
    const PASSWORD: [&str; 3] = ["pa55", "w0rd", "s3cr"];

    fn assert_hidden(text: &str) {
        for part in PASSWORD.iter().chain(&["alice"]) {
            assert!(!text.contains(part), "{part:?} shows in {text:?}");
        }
    }

    #[test]
    fn a_comma_in_a_password_stays_hidden() {
        for (url, want) in [
            ("nats://alice:pa55,w0rd@host:4222", "nats://***@host:4222"),
            (
                "nats://alice:pa55,w0rd,s3cr@host:4222",
                "nats://***@host:4222",
            ),
            ("alice:pa55,w0rd@host:4222", "***@host:4222"),
            (
                "nats://a:1,nats://alice:pa55,w0rd@b:2,c:3",
                "nats://a:1,nats://***@b:2,c:3",
            ),
            (
                "tls://alice:pa55,w0rd@a:1, nats://alice:,pa55,w0rd@b:2",
                "tls://***@a:1,nats://***@b:2",
            ),
        ] {
            let redacted = redact_url(url);
            assert_eq!(redacted, want);
            assert_hidden(&redacted);
        }
        for text in [
            "failed to connect to nats://alice:pa55,w0rd@host:4222: refused",
            "servers \"nats://alice:pa55,w0rd@host:4222\",\tnext",
            "(alice:pa55,w0rd@host:4222)\nnats://x:1,nats://alice:pa55,w0rd@y:2.",
        ] {
            assert_hidden(&redact_text(text));
        }
        assert_eq!(
            redact_text("at nats://alice:pa55,w0rd@h:1,\tthen  done"),
            "at nats://***@h:1,\tthen  done"
        );
    }

    #[test]
    fn server_lists_split_between_urls_and_never_inside_credentials() {
        for (list, want) in [
            ("nats://a:1", &["nats://a:1"][..]),
            ("a,b:2, c:3 ", &["a", "b:2", "c:3"]),
            ("nats://a:1,tls://b:2", &["nats://a:1", "tls://b:2"]),
            (
                "nats://u:p@a:1,nats://b:2",
                &["nats://u:p@a:1", "nats://b:2"],
            ),
            ("u:p@a:1,u:p@b:2,c:3", &["u:p@a:1", "u:p@b:2", "c:3"]),
            (
                "u:p@a:1,b:2,nats://u:p@c:3",
                &["u:p@a:1", "b:2", "nats://u:p@c:3"],
            ),
            (
                "nats://a:1,nats://alice:se,cret@b:2,c:3",
                &["nats://a:1", "nats://alice:se,cret@b:2", "c:3"],
            ),
            (
                "alice:se,cr,et@a:1,nats://alice:se,cret@b:2",
                &["alice:se,cr,et@a:1", "nats://alice:se,cret@b:2"],
            ),
            ("a:1,nats://u:p@b:2", &["a:1", "nats://u:p@b:2"]),
            ("nats://a:1/,u:p@b:2", &["nats://a:1/", "u:p@b:2"]),
            // Ambiguous without schemes: the credentials win (see the function's docs).
            ("a:1,u:p@b:2", &["a:1,u:p@b:2"]),
            ("u:p@a:1,b:2,u:p@c:3", &["u:p@a:1", "b:2,u:p@c:3"]),
            ("a,b,", &["a", "b", ""]),
        ] {
            assert_eq!(split_server_list(list), want, "{list}");
        }
        // Each URL parses, with the comma in its password.
        let urls = split_server_list("nats://a:1,nats://alice:se,cret@b:2,alice:x,y@c:3");
        let addrs: Vec<async_nats::ServerAddr> =
            urls.iter().map(|u| u.parse().expect("address")).collect();
        assert_eq!(addrs[1].password(), Some("se,cret"));
        assert_eq!(addrs[1].host(), "b");
        assert_eq!(addrs[2].username(), Some("alice"));
        assert_eq!(addrs[2].password(), Some("x,y"));
        assert_eq!(addrs[2].port(), 3);
    }
}
