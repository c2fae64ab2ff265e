//! The server under load, as base URLs. Only loopback addresses are accepted: this tool is for
//! measuring our own server on this machine, never for pointing load at someone else's.

use std::net::Ipv6Addr;

use url::{Host, Url};

use crate::error::BenchError;

/// Where requests and gateway sockets go, without a trailing slash.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:3000`
    pub http: String,
    /// `ws://127.0.0.1:3000`
    pub ws: String,
}

impl Target {
    /// Parses `--target`, refusing anything but `http`/`https` on a loopback host (127.0.0.0/8,
    /// `::1`, `localhost`) with no path.
    pub fn parse(raw: &str) -> Result<Self, BenchError> {
        let refuse = |why: &'static str| BenchError::Target { target: raw.to_owned(), why };
        let url = Url::parse(raw).map_err(|_| refuse("not a URL"))?;
        let ws_scheme = match url.scheme() {
            "http" => "ws",
            "https" => "wss",
            _ => return Err(refuse("the scheme must be http or https")),
        };
        let loopback = match url.host() {
            Some(Host::Ipv4(address)) => address.is_loopback(),
            Some(Host::Ipv6(address)) => address == Ipv6Addr::LOCALHOST,
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback {
            return Err(refuse("only loopback hosts are allowed (127.0.0.0/8, ::1, localhost)"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(refuse("give the server's root URL, without a path or query"));
        }
        let host = url.host_str().ok_or_else(|| refuse("no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self { http: format!("{}://{authority}", url.scheme()), ws: format!("{ws_scheme}://{authority}") })
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn loopback_targets_are_accepted() {
        for (raw, http, ws) in [
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000", "ws://127.0.0.1:3000"),
            ("http://127.1.2.3:80/", "http://127.1.2.3", "ws://127.1.2.3"),
            ("http://[::1]:3000", "http://[::1]:3000", "ws://[::1]:3000"),
            ("https://LOCALHOST:8443", "https://localhost:8443", "wss://localhost:8443"),
        ] {
            let target = Target::parse(raw).unwrap();
            assert_eq!((target.http.as_str(), target.ws.as_str()), (http, ws), "{raw}");
        }
    }

    #[test]
    fn other_targets_are_refused() {
        for raw in [
            "http://10.0.0.1:3000",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]:3000",
            "http://[::ffff:127.0.0.1]:3000",
            "ftp://127.0.0.1",
            "http://127.0.0.1:3000/v1",
            "127.0.0.1:3000",
        ] {
            assert!(Target::parse(raw).is_err(), "{raw} is refused");
        }
    }
}
