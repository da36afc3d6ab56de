//! The spool's delivery service: one loop per queue sends its records to Laravel in order (a
//! webhook route's to its upstream group, an app webhook's to its URL).
//!
//! A record is tried until Laravel answers 2xx (delivered), answers a 4xx other than 408/429
//! (Laravel's verdict: the record goes to the dead letters), or runs out of `spool.max_attempts`
//! or `spool.max_age` (dead letters too). Between attempts the loop waits [`FIRST_BACKOFF`],
//! doubling to [`MAX_BACKOFF`].

use super::app_webhooks;
use super::spooled::{redeliver, Attempt};
use crate::hub::webhooks::parse_queue_name;
use crate::spool::{now_ms, Queue, Spool};
use crate::state::Gateway;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The wait after a first failed attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The wait after the disk failed under the delivery loop, before it reads again.
const DISK_RETRY: Duration = Duration::from_secs(1);

/// The spool's background service: a delivery loop per queue, started as queues open.
pub struct SpoolService {
    pub gateway: Arc<Gateway>,
    pub spool: Arc<Spool>,
}

#[async_trait]
impl BackgroundService for SpoolService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut running = HashSet::new();
        let mut loops = tokio::task::JoinSet::new();
        loop {
            for queue in self.spool.queues() {
                if running.insert(queue.route.clone()) {
                    let (gateway, spool) = (self.gateway.clone(), self.spool.clone());
                    loops.spawn(deliver(gateway, spool, queue));
                }
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = self.spool.queue_opened() => {}
            }
        }
        // A delivery cut short here is sent again at the next start (the cursor did not move).
        loops.shutdown().await;
    }
}

/// Sends `queue`'s records to Laravel, in order, for ever.
async fn deliver(gateway: Arc<Gateway>, spool: Arc<Spool>, queue: Arc<Queue>) {
    let conf = spool.config();
    let max_age_ms = conf.max_age.as_millis() as u64;
    loop {
        let (record, len) = match queue.head() {
            Ok(Some(head)) => head,
            Ok(None) => {
                queue.appended().await;
                continue;
            }
            Err(e) => {
                tracing::error!(route = %queue.route, error = %e, "spool: cannot read the queue");
                tokio::time::sleep(DISK_RETRY).await;
                continue;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        let verdict = loop {
            if now_ms().saturating_sub(record.enqueued_ms) > max_age_ms {
                break Err(format!(
                    "undelivered after spool.max_age ({} s)",
                    conf.max_age.as_secs()
                ));
            }
            attempt += 1;
            let tried = match parse_queue_name(&queue.route) {
                Some(hook) => app_webhooks::deliver(&gateway, hook, &record, attempt).await,
                None => redeliver(&gateway, &queue.route, &record, attempt).await,
            };
            match tried {
                Attempt::Delivered => break Ok(()),
                Attempt::Refused(reason) => break Err(reason),
                Attempt::Failed(reason) if attempt >= conf.max_attempts => {
                    break Err(format!("{attempt} attempts, the last: {reason}"))
                }
                Attempt::Failed(reason) => {
                    tracing::debug!(route = %queue.route, id = %record.id, attempt, %reason, "spool: delivery failed, trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        let moved = match verdict {
            Ok(()) => spool.delivered(&queue, len),
            Err(reason) => spool.bury(&queue, &record, len, &reason).await,
        };
        if let Err(e) = moved {
            // The record stays the head: it is sent again (Laravel deduplicates on its id).
            tracing::error!(route = %queue.route, error = %e, "spool: cannot move the queue's cursor");
            tokio::time::sleep(DISK_RETRY).await;
        }
    }
}
