//! A connection's writer task: drains the connection's queue into the socket (everything queued
//! goes out with one flush, so a backlog costs one write), performs the close a [`Closer`] asks
//! for, and counts delivered events and their publish→write latency.

use super::fanout::{Closer, Outgoing};
use super::protocol;
use crate::metrics::AppMetrics;
use futures_util::SinkExt;
use prometheus::local::{LocalHistogram, LocalIntCounter};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How often a writer folds its delivery counts into the shared metrics.
const METRICS_FLUSH: Duration = Duration::from_secs(1);

/// The writer task: drains the queue into the socket (everything queued goes out with one flush,
/// so a backlog costs one write) and performs the close the [`Closer`] asks for. Delivered
/// events and their publish→write latency are counted locally and folded into the shared
/// metrics at most once per [`METRICS_FLUSH`], so subscribers never contend on them.
pub(super) async fn write_frames<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Outgoing>,
    closer: Arc<Closer>,
    metrics: AppMetrics,
    write_timeout: Duration,
) where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let mut counts = DeliveryCounts::new(&metrics);
    let mut sent_at = Vec::new();
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(first) => {
                    let batch = async {
                        let mut more = Some(first);
                        let mut sent = Ok(());
                        while let (Ok(()), Some(out)) = (&sent, more.take()) {
                            sent_at.extend(out.published);
                            sent = sink.feed(Message::Text(out.frame)).await;
                            more = rx.try_recv().ok();
                        }
                        sent.is_ok() && sink.flush().await.is_ok()
                    };
                    match tokio::time::timeout(write_timeout, batch).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        // A client that stopped reading: the connection ends (the reader sees the
                        // close requested and drops its half, so the socket goes).
                        Err(_) => {
                            closer.close(protocol::close::OVER_CAPACITY);
                            break;
                        }
                    }
                    counts.record(sent_at.drain(..));
                    if counts.flushed.elapsed() >= METRICS_FLUSH {
                        counts.fold();
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until((counts.flushed + METRICS_FLUSH).into()), if counts.pending => {
                counts.fold();
            }
            code = closer.requested() => {
                let frame = CloseFrame { code: CloseCode::from(code), reason: protocol::close::reason(code).into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = sink.close().await;
                break;
            }
        }
    }
    counts.fold();
}

/// One writer's delivery counts, not yet folded into the shared metrics.
struct DeliveryCounts {
    delivered: LocalIntCounter,
    latency: LocalHistogram,
    flushed: Instant,
    pending: bool,
}

impl DeliveryCounts {
    fn new(metrics: &AppMetrics) -> Self {
        Self {
            delivered: metrics.delivered.local(),
            latency: metrics.delivery_latency.local(),
            flushed: Instant::now(),
            pending: false,
        }
    }

    /// Counts events written to the socket, given when each was published.
    fn record(&mut self, published: impl Iterator<Item = Instant>) {
        for at in published {
            self.delivered.inc();
            self.latency.observe(at.elapsed().as_secs_f64());
            self.pending = true;
        }
    }

    fn fold(&mut self) {
        if self.pending {
            self.delivered.flush();
            self.latency.flush();
            self.pending = false;
        }
        self.flushed = Instant::now();
    }
}
