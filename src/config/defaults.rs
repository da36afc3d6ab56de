//! Defaults, in one place so that `gateway.yaml`'s comments and a test can pin them.

use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Below Node's 5 s keep-alive, so a pooled connection is never reused as Node closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
pub const READ_TIMEOUT: Duration = Duration::from_secs(65);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(65);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const LISTENER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_CONNECTIONS: usize = 10_000;
pub const MAX_CONNECTIONS_PER_IP: usize = 512;
/// Node's default; nginx's per-line `large_client_header_buffers` is 8 KiB.
pub const MAX_HEAD_SIZE: u64 = 16 * 1024;
pub const MAX_URI_LENGTH: u64 = 8 * 1024;
/// Loopback: a local proxy, Laravel or the Node service on this host.
pub const TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1/128"];
pub const MAX_BODY: u64 = 64 << 20;
pub const HEALTH_PATH: &str = "/health";
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
pub const HEALTHY_THRESHOLD: u32 = 1;
pub const UNHEALTHY_THRESHOLD: u32 = 2;
pub const WORKSPACE_HEADER: &str = "x-workspace-id";
pub const BODY_LIMIT: usize = 1 << 20;
pub const LEARNED_CAPACITY: usize = 100_000;
/// Paths with no auth on the Node side: never reachable through a workspace route by default.
pub const WORKSPACE_DENY: [&str; 3] = ["/cleanup/", "/remoteauth/", "/api/internal/"];
/// The Node service's and Laravel's accept window (CONTRACTS.md §2).
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);
pub const DUPLICATES_TTL: Duration = Duration::from_secs(600);
pub const DUPLICATES_CAPACITY: usize = 100_000;
/// Reverb's and Pusher's defaults.
pub const HUB_MAX_CONNECTIONS: usize = 10_000;
pub const HUB_MAX_MESSAGE_SIZE: usize = 10_000;
pub const HUB_MAX_CONNECTIONS_PER_IP: usize = 100;
pub const HUB_MAX_CHANNELS: usize = 100;
pub const HUB_MAX_SUBSCRIPTIONS_PER_SECOND: u32 = 50;
pub const HUB_CLIENT_EVENTS_PER_SECOND: u32 = 10;
pub const HUB_API_REQUESTS_PER_SECOND: u32 = 2_000;
pub const HUB_MAX_BATCH_SIZE: usize = 10;
pub const HUB_MAX_CHANNELS_PER_EVENT: usize = 100;
/// Pusher's; at most `pusher::channel::MAX_CHANNEL_NAME_LEN` (Soketi's 200).
pub const HUB_MAX_CHANNEL_NAME_LENGTH: usize = 164;
pub const HUB_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
pub const HUB_ACTIVITY_TIMEOUT: Duration = Duration::from_secs(30);
pub const HUB_PING_INTERVAL: Duration = Duration::from_secs(60);
pub const HUB_MAX_PRESENCE_MEMBERS: usize = 100;
pub const HUB_MAX_USER_INFO: usize = 1024;
/// Long enough for a load balancer polling `/readyz` every second or two to notice.
pub const DRAIN_DELAY: Duration = Duration::from_secs(5);
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);
pub const SPOOL_DIR: &str = "spool";
pub const SPOOL_MAX_BYTES: u64 = 1 << 30;
/// Longer than a weekend's outage; shorter than Laravel's usual log retention.
pub const SPOOL_MAX_AGE: Duration = Duration::from_secs(3 * 24 * 3600);
/// With the back-off capped at 30 s: about 13 hours of trying.
pub const SPOOL_MAX_ATTEMPTS: u32 = 1600;
pub const CLUSTER_PREFIX: &str = "fleetgate";
