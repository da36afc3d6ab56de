//! Socket ids (`{node}.{counter}`) and the node ids they start with.

/// A node id for a node alone (or whose cluster's Redis is unreachable at start): the first half
/// of every socket id, different across restarts.
pub fn random_node_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (std::process::id() ^ nanos) % 1_000_000_000
}

/// `{node}.{counter}`: unique per cluster when every node has its own `node`.
pub fn socket_id(node: u32, counter: u64) -> String {
    format!("{node}.{counter}")
}

/// `^\d+\.\d+$` (ASCII digits), the form every Pusher server library insists on.
pub fn is_valid_socket_id(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    s.split_once('.')
        .is_some_and(|(a, b)| digits(a) && digits(b))
}
