//! Who the client is: the peer that connected, or, when that peer is a
//! trusted proxy (`--trusted-proxy`), the address the proxy names in
//! `X-Forwarded-For` (the last one no trusted proxy added) or `X-Real-IP`.
//! A header from any other peer is ignored: a client cannot pick its own
//! address, to dodge a limit or to pose as another.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

pub fn client_addr(trusted: &[IpNet], peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|entry| entry.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    // From the right: the entries our proxies added, then the client as
    // the outermost trusted proxy saw it. Anything further left the
    // client may have written itself.
    let from_forwarded = forwarded.into_iter().rev().take_while(Option::is_some).flatten().find(|ip| !is_trusted(ip));
    let real_ip = || headers.get("x-real-ip")?.to_str().ok()?.trim().parse::<IpAddr>().ok();
    match from_forwarded.or_else(real_ip) {
        Some(ip) => SocketAddr::new(ip, peer.port()),
        None => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_a_trusted_peer_names_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.1.1.1:4000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "198.51.100.7, 10.2.2.2")]);
        assert_eq!(client_addr(&trusted, proxy, &xff).ip().to_string(), "198.51.100.7", "past our own proxies");
        assert_eq!(client_addr(&trusted, stranger, &xff), stranger, "a stranger's header is ignored");
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(client_addr(&trusted, proxy, &spoofed).ip().to_string(), "198.51.100.7", "the rightmost untrusted");
        let real = headers(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(client_addr(&trusted, proxy, &real).ip().to_string(), "198.51.100.8");
        assert_eq!(client_addr(&trusted, proxy, &headers(&[("x-forwarded-for", "junk")])), proxy);
        assert_eq!(client_addr(&[], proxy, &xff), proxy, "no proxy trusted by default");
    }
}
