//! App webhooks (Pusher's format): the hub's events, batched per webhook and kept in the spool.
//!
//! Where an event happens (a channel's first or last subscriber, a presence member, a client
//! event, a cache miss) the hub calls [`Webhooks::emit`], which hands it to the batcher only if a
//! webhook of the app wants it (a bounded queue: beyond [`QUEUE`] events it is dropped and
//! counted). The [`Batcher`] collects each webhook's events, at most [`BATCH_EVENTS`] per request
//! and for at most [`BATCH_WAIT`], and appends each batch to the webhook's own spool queue
//! ([`queue_name`]) before anything is sent: from there the spool's delivery loop sends it, signed,
//! until the app takes it (retries with back-off, dead letters, metrics), across restarts.

use crate::config::App;
use crate::pusher::webhook::{self, AppEvent, Kind};
use crate::spool::record::Record;
use crate::spool::{now_ms, Spool};
use prometheus::IntCounterVec;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Events in one webhook request (Pusher's batches).
pub const BATCH_EVENTS: usize = 50;
/// The longest an event waits for its batch to fill.
pub const BATCH_WAIT: Duration = Duration::from_millis(100);
/// How long the batcher goes on after shutdown begins, at most (and at most half the grace
/// period, so it ends before the process): what the closing connections fire
/// (`channel_vacated`, `member_removed`) is kept in the spool and delivered at the next start.
const LINGER: Duration = Duration::from_secs(2);
/// Events waiting for the batcher; beyond, an event is dropped and counted.
const QUEUE: usize = 65_536;
/// Bytes of events waiting for the batcher (client events carry up to `max_message_size`);
/// beyond, an event is dropped and counted.
const QUEUE_BYTES: usize = 64 << 20;
/// What every app webhook's spool queue is named with.
const QUEUE_PREFIX: &str = "hub-webhook:";

/// The spool queue of `app`'s webhook to `url` (a URL has no space; an app id may).
pub fn queue_name(app: &str, url: &str) -> String {
    format!("{QUEUE_PREFIX}{app} {url}")
}

/// `(app, url)` of an app webhook's spool queue; `None` for a webhook route's.
pub fn parse_queue_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(QUEUE_PREFIX)?.rsplit_once(' ')
}

/// An event on its way to the batcher, with the app's settings it happened under; its bytes
/// are given back to the queue's budget when it is dropped.
pub struct Emitted {
    app: Arc<App>,
    event: AppEvent,
    size: usize,
    budget: Arc<AtomicUsize>,
}

impl Drop for Emitted {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.size, Ordering::Relaxed);
    }
}

/// Where the hub hands its app webhook events (cheap to clone).
#[derive(Clone)]
pub struct Webhooks {
    events: mpsc::Sender<Emitted>,
    /// Bytes of the events queued for the batcher.
    budget: Arc<AtomicUsize>,
    /// `fleetgate_hub_webhook_events_total{app, event, result}`.
    counted: IntCounterVec,
}

impl Webhooks {
    /// The emitting end and the batcher's queue.
    pub fn new(counted: IntCounterVec) -> (Webhooks, mpsc::Receiver<Emitted>) {
        let (events, queue) = mpsc::channel(QUEUE);
        let budget = Arc::default();
        let webhooks = Webhooks {
            events,
            budget,
            counted,
        };
        (webhooks, queue)
    }

    /// Hands `event` of `app` to the batcher if one of the app's webhooks wants it.
    pub fn emit(&self, app: Arc<App>, event: AppEvent) {
        if !app.webhooks.iter().any(|w| w.wants(&event)) {
            return;
        }
        let labels = [app.id.clone(), event.kind().name().to_string()];
        let size = event.size();
        let queued = self.budget.fetch_add(size, Ordering::Relaxed);
        let budget = self.budget.clone();
        let emitted = Emitted {
            app,
            event,
            size,
            budget,
        };
        // Over the byte budget, or the queue full: dropped (and its bytes given back).
        let result = match queued + size <= QUEUE_BYTES && self.events.try_send(emitted).is_ok() {
            true => "batched",
            false => "dropped",
        };
        let [app, kind] = &labels;
        self.counted.with_label_values(&[app, kind, result]).inc();
    }
}

/// One webhook's events not yet in the spool.
struct Pending {
    queue: String,
    target: String,
    events: Vec<Value>,
    /// Each event's kind, for counting them if the spool refuses the batch.
    kinds: Vec<Kind>,
    /// When the batch goes to the spool, full or not.
    due: Instant,
}

/// Collects each webhook's events into batches and appends them to the spool.
pub struct Batcher {
    pub spool: Arc<Spool>,
    pub counted: IntCounterVec,
    /// `shutdown.grace_period`: the batcher stops within half of it.
    pub grace_period: Duration,
}

impl Batcher {
    /// Batches until [`LINGER`] (or half the grace period) after `shutdown` changes (the hub's
    /// clients are closed then, and their channels vacated), then keeps what is pending and
    /// stops.
    pub async fn run(
        &self,
        mut events: mpsc::Receiver<Emitted>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut pending: Vec<Pending> = Vec::new();
        let mut stop_at = None;
        loop {
            let due = pending.iter().map(|p| p.due).min();
            tokio::select! {
                got = events.recv() => match got {
                    Some(emitted) => self.add(&mut pending, emitted).await,
                    None => break,
                },
                _ = sleep_until(due) => self.flush(&mut pending, Instant::now()).await,
                _ = shutdown.changed(), if stop_at.is_none() => {
                    stop_at = Some(Instant::now() + LINGER.min(self.grace_period / 2));
                }
                _ = sleep_until(stop_at) => break,
            }
        }
        while let Ok(emitted) = events.try_recv() {
            self.add(&mut pending, emitted).await;
        }
        self.flush(&mut pending, Instant::now() + BATCH_WAIT).await;
    }

    /// Adds an event to the batch of every webhook that wants it; a full batch goes at once.
    async fn add(&self, pending: &mut Vec<Pending>, emitted: Emitted) {
        let (app, event) = (emitted.app.clone(), &emitted.event);
        let json = event.to_json();
        for hook in app.webhooks.iter().filter(|w| w.wants(event)) {
            let queue = queue_name(&app.id, &hook.url);
            let at = match pending.iter().position(|p| p.queue == queue) {
                Some(at) => at,
                None => {
                    pending.push(Pending {
                        queue,
                        target: hook.target.clone(),
                        events: Vec::with_capacity(BATCH_EVENTS),
                        kinds: Vec::with_capacity(BATCH_EVENTS),
                        due: Instant::now() + BATCH_WAIT,
                    });
                    pending.len() - 1
                }
            };
            pending[at].events.push(json.clone());
            pending[at].kinds.push(event.kind());
            if pending[at].events.len() >= BATCH_EVENTS {
                self.keep(pending.swap_remove(at)).await;
            }
        }
    }

    /// Sends every batch due by `now` to the spool.
    async fn flush(&self, pending: &mut Vec<Pending>, now: Instant) {
        let (due, waiting) = std::mem::take(pending)
            .into_iter()
            .partition(|p| p.due <= now);
        *pending = waiting;
        for batch in due {
            self.keep(batch).await;
        }
    }

    /// Appends one batch to its webhook's spool queue (synced before this returns).
    async fn keep(&self, batch: Pending) {
        let record = Record {
            id: String::from_utf8_lossy(&crate::access_log::new_request_id()).into_owned(),
            enqueued_ms: now_ms(),
            method: "POST".into(),
            target: batch.target,
            headers: Vec::new(),
            client: None,
            body: webhook::body(now_ms(), &batch.events).into(),
        };
        if let Err(e) = self.spool.enqueue(&batch.queue, &record).await {
            tracing::error!(queue = %batch.queue, error = %e, events = batch.events.len(), "app webhook: the spool refused a batch; its events are lost");
            let app = parse_queue_name(&batch.queue).map_or("", |(app, _)| app);
            for kind in &batch.kinds {
                let labels = [app, kind.name(), "lost"];
                self.counted.with_label_values(&labels).inc();
            }
        }
    }
}

/// Waits until `due`; for ever when there is nothing due.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The batcher as a background service (its queue taken at start).
pub struct WebhookService {
    pub batcher: Batcher,
    pub events: std::sync::Mutex<Option<mpsc::Receiver<Emitted>>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for WebhookService {
    async fn start(&self, shutdown: pingora::server::ShutdownWatch) {
        let events = self.events.lock().ok().and_then(|mut e| e.take());
        if let Some(events) = events {
            self.batcher.run(events, shutdown).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppWebhook, SpoolConfig};

    fn app() -> Arc<App> {
        let yaml = "listeners: { hub: { listen: \"127.0.0.1:1\" } }\nhub: { listener: hub, apps: [{ id: a, key: k, secret: s }] }\n";
        let mut app = crate::config::parse(yaml, &|_| None)
            .expect("config")
            .hub
            .expect("hub")
            .apps
            .remove(0);
        app.webhooks = vec![AppWebhook {
            url: "http://127.0.0.1:1/hook".into(),
            authority: "127.0.0.1:1".into(),
            target: "/hook".into(),
            events: vec![Kind::ClientEvent],
            headers: Vec::new(),
            channel_name_starts_with: None,
            channel_name_ends_with: None,
        }];
        Arc::new(app)
    }

    fn whisper(data: String) -> AppEvent {
        AppEvent::ClientEvent {
            channel: "private-c".into(),
            event: "client-n".into(),
            data,
            socket_id: "1.1".into(),
            user_id: None,
        }
    }

    #[test]
    fn events_over_the_byte_budget_are_dropped_and_their_bytes_given_back() {
        let counted = crate::metrics::Metrics::new().unwrap().hub.webhook_events;
        let (webhooks, mut events) = Webhooks::new(counted.clone());
        let result = |r: &str| counted.with_label_values(&["a", "client_event", r]).get();
        webhooks.emit(app(), whisper("x".repeat(QUEUE_BYTES)));
        assert_eq!((result("batched"), result("dropped")), (0, 1));
        webhooks.emit(app(), whisper("small".into()));
        assert_eq!(result("batched"), 1);
        assert!(webhooks.budget.load(Ordering::Relaxed) > 0);
        drop(events.try_recv().unwrap());
        assert_eq!(webhooks.budget.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_full_batch_goes_at_once_and_the_rest_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let conf = SpoolConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
            max_attempts: 10,
        };
        let metrics = crate::metrics::Metrics::new().unwrap();
        let spool = Spool::open(conf, metrics.spool).unwrap();
        let counted = metrics.hub.webhook_events;
        let (webhooks, events) = Webhooks::new(counted.clone());
        let app = app();
        for n in 0..120 {
            webhooks.emit(app.clone(), whisper(n.to_string()));
        }
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let batcher = Batcher {
            spool: spool.clone(),
            counted,
            grace_period: Duration::from_secs(10),
        };
        let queue = spool
            .queue(&queue_name("a", "http://127.0.0.1:1/hook"))
            .unwrap();
        let running = tokio::spawn(async move { batcher.run(events, shutdown).await });
        let mut sizes = Vec::new();
        while sizes.len() < 3 {
            match queue.head().unwrap() {
                Some((record, len)) => {
                    let body: Value = serde_json::from_slice(&record.body).unwrap();
                    sizes.push(body["events"].as_array().unwrap().len());
                    spool.delivered(&queue, len).unwrap();
                }
                None => queue.appended().await,
            }
        }
        assert_eq!(sizes, [50, 50, 20]);
        stop.send_replace(true);
        running.await.unwrap();
    }
}
