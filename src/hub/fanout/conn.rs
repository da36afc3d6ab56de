//! One subscriber as the fan-out sees it: its bounded send queue and how it is closed.

use super::Frame;
use prometheus::IntCounter;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// A queued frame and, for published events, when it was published (for the delivery latency).
pub struct Outgoing {
    pub frame: Frame,
    pub published: Option<Instant>,
}

/// Asks a connection to close with a Pusher close code. Both the connection's reader and its
/// writer wait on it (a watch channel wakes every waiter); the first request wins.
pub struct Closer {
    code: watch::Sender<u16>,
}

impl Default for Closer {
    fn default() -> Self {
        Self {
            code: watch::Sender::new(0),
        }
    }
}

impl Closer {
    /// The close code requested so far (0: none yet).
    pub fn code(&self) -> u16 {
        *self.code.borrow()
    }

    /// Requests a close with `code`; later requests do not change it.
    pub fn close(&self, code: u16) {
        self.code.send_if_modified(|current| {
            let first = *current == 0;
            if first {
                *current = code;
            }
            first
        });
    }

    /// Waits for a close request and returns its code.
    pub async fn requested(&self) -> u16 {
        let mut rx = self.code.subscribe();
        let code = match rx.wait_for(|code| *code != 0).await {
            Ok(code) => *code,
            Err(_) => 1000,
        };
        code
    }
}

/// A subscriber as the engine sees it.
#[derive(Clone)]
pub struct Conn {
    pub id: u64,
    pub socket_id: Arc<str>,
    pub tx: mpsc::Sender<Outgoing>,
    pub closer: Arc<Closer>,
}

impl Conn {
    /// Queues a frame without waiting; a full queue closes the connection with 4100 and counts a
    /// dropped delivery in `dropped`. Returns whether the frame was queued.
    pub fn offer(&self, frame: &Frame, published: Option<Instant>, dropped: &IntCounter) -> bool {
        let outgoing = Outgoing {
            frame: frame.clone(),
            published,
        };
        match self.tx.try_send(outgoing) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped.inc();
                self.closer.close(4100);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
