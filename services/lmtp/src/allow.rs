//! Which client networks may speak LMTP at all.
//!
//! LMTP has no authentication (RFC 2033 leaves it to the network): whoever connects can deliver
//! to every account. So, like Postfix's `mynetworks` and Dovecot's `login_trusted_networks`, the
//! server keeps a list of networks its MTA connects from and greets everyone else with `421` and
//! closes. The default is this machine only (Postfix's `mynetworks_style = host`): an operator who
//! puts LMTP on a network names the MTA's network explicitly.

use std::net::IpAddr;
use std::str::FromStr;

/// One network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNetwork {
    addr: IpAddr,
    prefix: u8,
}

/// Errors of parsing a [`ClientNetwork`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworkError {
    #[error("{0:?} is not an IP address or network (CIDR, e.g. 10.0.0.0/8)")]
    Syntax(String),
    #[error("{0:?}: the prefix length is longer than the address")]
    Prefix(String),
    #[error("{0:?} has bits set past its prefix length (did you mean {1}?)")]
    HostBits(String, String),
}

impl ClientNetwork {
    /// The bits of an address as one number, IPv4 in the low 32.
    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(prefix: u8, width: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            (u128::MAX << (128 - u32::from(prefix))) >> (128 - u32::from(width))
        }
    }

    /// Whether `peer` lies in this network. An IPv4 peer seen on an IPv6 socket
    /// (`::ffff:10.1.2.3`) counts as the IPv4 address it is.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        let (net, width) = Self::bits(self.addr);
        let (bits, peer_width) = Self::bits(peer);
        width == peer_width && bits & Self::mask(self.prefix, width) == net
    }

    /// This machine: `127.0.0.0/8` and `::1/128`, the default list.
    pub fn loopback() -> Vec<ClientNetwork> {
        vec![
            ClientNetwork {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            ClientNetwork {
                addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }
}

impl FromStr for ClientNetwork {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<ClientNetwork, NetworkError> {
        let syntax = || NetworkError::Syntax(text.to_string());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        let (bits, width) = Self::bits(addr);
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| syntax())?
            }
            Some(_) => return Err(syntax()),
            None => width,
        };
        if prefix > width {
            return Err(NetworkError::Prefix(text.to_string()));
        }
        let network = ClientNetwork { addr, prefix };
        if bits & !Self::mask(prefix, width) & Self::mask(width, width) != 0 {
            // `10.1.2.3/8` is most likely a typo for a host or for `10.0.0.0/8`; refusing it
            // beats guessing which.
            let base = bits & Self::mask(prefix, width);
            let base = match addr {
                IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(base as u32)),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(base)),
            };
            return Err(NetworkError::HostBits(
                text.to_string(),
                format!("{base}/{prefix}"),
            ));
        }
        Ok(network)
    }
}

impl std::fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> ClientNetwork {
        text.parse().expect(text)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let ten = net("10.0.0.0/8");
        assert!(ten.contains(ip("10.255.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped peer");
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::a00:1")), "an IPv6 address is not IPv4");
        let host = net("192.0.2.7");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        let ula = net("fd00::/8");
        assert!(ula.contains(ip("fd12:3456::1")));
        assert!(!ula.contains(ip("fe80::1")));
        let all = net("0.0.0.0/0");
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("::1")));
        let loopback = ClientNetwork::loopback();
        assert!(loopback.iter().any(|n| n.contains(ip("127.0.0.1"))));
        assert!(loopback.iter().any(|n| n.contains(ip("::1"))));
        assert!(!loopback.iter().any(|n| n.contains(ip("10.0.0.1"))));
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "mx.example",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<ClientNetwork>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<ClientNetwork>(),
            Err(NetworkError::HostBits(
                "10.1.2.3/8".into(),
                "10.0.0.0/8".into()
            ))
        );
        assert_eq!(net("fd00::/8").to_string(), "fd00::/8");
    }
}
