//! Credentials never leave Herald: server addresses in events, logs and `Debug` output are
//! redacted here.

/// Hides credentials in a NATS URL or a comma-separated list of them:
/// `nats://user:pass@host:4222` becomes `nats://***@host:4222`.
pub(crate) fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            let (scheme, rest) = match url.find("://") {
                Some(i) => url.split_at(i + 3),
                None => ("", url),
            };
            match rest.rfind('@') {
                Some(at) => format!("{scheme}***{}", &rest[at..]),
                None => url.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Redacts every URL-like word in a free text (server and client error messages).
pub(crate) fn redact_text(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains('@') {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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
}
