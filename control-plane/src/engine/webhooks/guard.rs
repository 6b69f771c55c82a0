//! The SSRF guard of webhook deliveries: a webhook URL is chosen by whoever holds the
//! admin token, and the control plane sends from inside the network, so where it may
//! send is the operator's decision (`--webhook-allow`), not the URL's.
//!
//! - Loopback, private, link-local, shared, documentation, multicast and the other
//!   special ranges are refused unless an entry allows them: a CIDR (`10.1.2.0/24`),
//!   an address, or a host name (`hooks.internal`, `*.hooks.internal`), which allows
//!   that host whatever it resolves to.
//! - Public addresses are allowed unless `--webhook-allow-public=false`, which leaves
//!   only the allow-list.
//! - A host name is resolved here, every address it resolves to is checked (one refused
//!   address refuses the host), and the connection goes to the checked addresses only:
//!   reqwest connects to what [`GuardedResolver`] answers, so a DNS answer that changes
//!   between the check and the connection (rebinding) cannot slip another address in.
//! - Addresses written in the URL are checked the same way, before sending (reqwest
//!   resolves nothing for them).
//! - Redirects are never followed and no proxy is used (the deliverer's client).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// A destination the guard refused, with why; found in a failed request's error chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Where deliveries may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Addresses allowed whatever range they are in.
    nets: Vec<IpNet>,
    /// Host names allowed whatever they resolve to (lowercase); `*.x` as `.x`.
    hosts: Vec<String>,
    /// Whether addresses outside the special ranges are allowed.
    public: bool,
}

impl AllowList {
    /// The list of `entries` (CIDRs, addresses, host names, `*.domain`), with public
    /// addresses allowed or not; or the first entry that is none of these.
    pub fn parse(entries: &[String], public: bool) -> Result<AllowList, String> {
        let mut list = AllowList {
            public,
            ..AllowList::default()
        };
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if let Some(domain) = entry.strip_prefix("*.").filter(|d| is_host_name(d)) {
                list.hosts.push(format!(".{}", domain.to_ascii_lowercase()));
            } else if is_host_name(entry) {
                list.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{entry:?} is neither a CIDR, an address, a host name nor *.domain"
                ));
            }
        }
        Ok(list)
    }

    /// Whether `host` is allowed by name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(domain) => host.ends_with(allowed.as_str()) && host.len() > domain.len() + 1,
                None => *allowed == host,
            })
    }

    /// Whether a connection to `ip` is allowed; if not, why.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.nets.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match special(ip) {
            Some(range) => Err(Refused(format!(
                "{ip} is {range}, which --webhook-allow does not allow"
            ))),
            None if self.public => Ok(()),
            None => Err(Refused(format!(
                "{ip} is not in --webhook-allow (public addresses are not allowed)"
            ))),
        }
    }

    /// Whether `url` may be sent to as far as can be told without resolving it: `http`
    /// or `https`, no user info, and an allowed address or a host name that may
    /// resolve to one.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        let parsed = Url::parse(url).map_err(|e| Refused(format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused("only http and https URLs".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused("no user or password in the URL".into()));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| Refused("the URL has no host".into()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) if self.public || !self.nets.is_empty() || self.allows_host(host) => Ok(()),
            Err(_) => Err(Refused(format!(
                "{host} is not in --webhook-allow (public addresses are not allowed)"
            ))),
        }
    }

    /// The addresses `host` resolved to, if every one is allowed (or the host is
    /// allowed by name).
    fn checked(&self, host: &str, resolved: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        if resolved.is_empty() {
            return Err(Refused(format!("{host} resolves to no address")));
        }
        if !self.allows_host(host) {
            for address in &resolved {
                self.check(address.ip())
                    .map_err(|Refused(why)| Refused(format!("{host} resolves to {why}")))?;
            }
        }
        Ok(resolved)
    }
}

/// Whether `text` is a DNS host name (letters, digits, `-`, dots between labels).
fn is_host_name(text: &str) -> bool {
    let text = text.trim_end_matches('.');
    (1..=253).contains(&text.len())
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The special range `ip` is in, named for an error message; `None` for an ordinary
/// public address.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "\"this network\" (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved (240.0.0.0/4, the broadcast address among them)",
        _ => return None,
    })
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d reaches a.b.c.d.
        return special_v4(v4);
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified (::/128)",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback (::1/128)",
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible (::/96, deprecated)",
        // NAT64 and 6to4 reach the IPv4 address inside: judged as that address.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return special_v4(embedded_v4(high, low)),
        [0x64, 0xff9b, 1, ..] => "local-use NAT64 (64:ff9b:1::/48)",
        [0x100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x2001, 0xdb8, ..] => "documentation (2001:db8::/32)",
        [0x2001, second, ..] if second < 0x200 => {
            "IETF protocol assignments (2001::/23, Teredo among them)"
        }
        [0x2002, high, low, ..] => return special_v4(embedded_v4(high, low)),
        [0x3fff, second, ..] if second < 0x1000 => "documentation (3fff::/20)",
        [0x5f00, ..] => "segment routing (5f00::/16)",
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [first, ..] if first & 0xffc0 == 0xfec0 => "site-local (fec0::/10, deprecated)",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        [first, ..] if first & 0xe000 != 0x2000 => "reserved (outside 2000::/3)",
        _ => return None,
    })
}

/// reqwest's resolver for deliveries: resolves with the system's resolver, then answers
/// only addresses the [`AllowList`] allows, or refuses the host.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl GuardedResolver {
    /// A resolver enforcing `allow`.
    pub fn new(allow: Arc<AllowList>) -> GuardedResolver {
        GuardedResolver { allow }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            if !allow.public && allow.nets.is_empty() && !allow.allows_host(&host) {
                // Nothing it could resolve to is allowed: do not even ask DNS.
                let why = format!("{host} is not in --webhook-allow");
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            let addresses = allow
                .checked(&host, resolved)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// The [`Refused`] in `error`'s source chain, if the guard refused the request.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn default_list() -> AllowList {
        AllowList::parse(&[], true).unwrap()
    }

    #[test]
    fn every_special_range_is_refused_by_default_and_public_addresses_are_not() {
        let refused = [
            ("0.1.2.3", "this network"),
            ("10.9.8.7", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.254", "shared"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.1", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::7f00:1", "IPv4-compatible"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard"),
            ("2001::1", "Teredo"),
            ("2001:1ff::1", "IETF"),
            ("2001:db8::1", "documentation"),
            ("2002:c0a8:101::1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("3fff::1", "documentation"),
            ("5f00::1", "segment routing"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "reserved"),
            ("e000::1", "reserved"),
        ];
        let list = default_list();
        for (address, range) in refused {
            let Refused(why) = list.check(ip(address)).unwrap_err();
            assert!(why.contains(range), "{address}: {why}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2002:808:808::1",
            "64:ff9b::808:808",
            "2a00:1450::1",
            "3fff:1000::1",
        ] {
            assert_eq!(list.check(ip(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn an_allowed_cidr_address_or_host_lets_a_special_range_through() {
        let entries = [
            "127.0.0.1",
            "10.1.0.0/16",
            "fd00::/8",
            "hooks.internal",
            "*.corp.example",
        ]
        .map(String::from);
        let list = AllowList::parse(&entries, true).unwrap();
        assert_eq!(list.check(ip("127.0.0.1")), Ok(()));
        assert!(list.check(ip("127.0.0.2")).is_err());
        assert_eq!(list.check(ip("10.1.200.3")), Ok(()));
        assert!(list.check(ip("10.2.0.1")).is_err());
        assert_eq!(list.check(ip("fd00::5")), Ok(()));
        assert!(list.allows_host("hooks.internal"));
        assert!(list.allows_host("HOOKS.internal."));
        assert!(list.allows_host("a.corp.example"));
        assert!(!list.allows_host("corp.example"));
        assert!(!list.allows_host("evilcorp.example"));
        for bad in ["10.0.0.0/33", "not a host", "-x.example", "*.", "1.2.3"] {
            assert!(AllowList::parse(&[bad.to_string()], true).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_public_addresses_only_the_allow_list_is_reachable() {
        let list = AllowList::parse(&["hooks.internal".to_string()], false).unwrap();
        assert!(list.check(ip("8.8.8.8")).is_err());
        assert!(list.check_url("https://example.com/hook").is_err());
        assert_eq!(list.check_url("https://hooks.internal/hook"), Ok(()));
    }

    #[test]
    fn urls_are_http_without_credentials_and_literal_addresses_are_checked() {
        let list = default_list();
        assert_eq!(
            list.check_url("https://hooks.example.com:8443/tollgate?x=1"),
            Ok(())
        );
        assert_eq!(list.check_url("http://8.8.8.8/"), Ok(()));
        for (url, why) in [
            ("ftp://hooks.example.com/", "only http"),
            ("https://user:pw@hooks.example.com/", "no user"),
            ("http://127.0.0.1:9000/", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
            ("http://0x7f.1/", "loopback"),
            ("not a url", "not a URL"),
        ] {
            let Refused(reason) = list.check_url(url).unwrap_err();
            assert!(reason.contains(why), "{url}: {reason}");
        }
    }

    #[test]
    fn a_host_resolving_to_one_refused_address_is_refused_whole() {
        let list = default_list();
        let addresses = |text: &[&str]| -> Vec<SocketAddr> {
            text.iter().map(|a| SocketAddr::new(ip(a), 0)).collect()
        };
        assert!(list
            .checked("mixed.example", addresses(&["8.8.8.8", "10.0.0.1"]))
            .is_err());
        assert!(list.checked("none.example", Vec::new()).is_err());
        assert_eq!(
            list.checked("ok.example", addresses(&["8.8.8.8"]))
                .unwrap()
                .len(),
            1
        );
        let named = AllowList::parse(&["internal.example".to_string()], true).unwrap();
        assert!(named
            .checked("internal.example", addresses(&["10.0.0.1"]))
            .is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_localhost_unless_allowed() {
        let resolver = GuardedResolver::new(Arc::new(default_list()));
        let name: Name = "localhost".parse().unwrap();
        let error = resolver.resolve(name).await.err().unwrap();
        let refused = refusal(error.as_ref()).expect("a refusal");
        assert!(refused.0.contains("loopback"), "{refused}");
        let allowed = AllowList::parse(&["127.0.0.0/8".into(), "::1".into()], true).unwrap();
        let resolver = GuardedResolver::new(Arc::new(allowed));
        let addresses: Vec<SocketAddr> = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
    }
}
