//! A timer for hyper's HTTP/1 header-read deadline that costs no timer-wheel work per request.
//!
//! hyper arms its header-read timeout for every request head (including the wait for the next
//! request on a kept-alive connection) and drops it once the head is read; with tokio's timer
//! that is a boxed sleep registered in and removed from the runtime's timer wheel per request,
//! ~6 % of a proxied GET's instructions. Deadlines of seconds need no millisecond precision, so
//! this timer keeps the pending sleeps of a thread in a slab (a push when first polled, a
//! removal when dropped) and one task per thread wakes the expired ones every [`TICK`]: a
//! deadline fires between 0 and [`TICK`] late.
//!
//! Each runtime thread runs its own single-threaded runtime and a connection's task never moves,
//! so a sleep is polled and dropped on the thread that registered it; one that is not (it cannot
//! happen here) is simply never woken by another thread's ticker and only relies on its own
//! polls.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often each thread looks for expired sleeps.
pub const TICK: Duration = Duration::from_millis(250);

/// A [`hyper::rt::Timer`] whose sleeps are woken by a per-thread ticker.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoarseTimer;

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep {
            deadline,
            slot: None,
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<CoarseSleep>() {
            Some(mut ours) => ours.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A sleep until `deadline`, registered with this thread's ticker while it is pending.
struct CoarseSleep {
    deadline: Instant,
    /// Where it waits in this thread's slab, once polled.
    slot: Option<Slot>,
}

#[derive(Clone, Copy)]
struct Slot {
    index: usize,
    /// The slab it is in ([`this_thread`]).
    thread: usize,
}

/// This thread's slab, as an identity (cheaper than `std::thread::current().id()`).
fn this_thread() -> usize {
    PENDING.with(|pending| pending as *const RefCell<Pending> as usize)
}

impl hyper::rt::Sleep for CoarseSleep {}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let thread = this_thread();
        let slot = match self.slot {
            Some(slot) if slot.thread == thread => Some(slot.index),
            // Polled on another thread (not expected): left to its own polls.
            Some(_) => return Poll::Pending,
            None => None,
        };
        let index = PENDING.with(|pending| pending.borrow_mut().put(slot, deadline, cx.waker()));
        self.slot = Some(Slot { index, thread });
        Poll::Pending
    }
}

impl CoarseSleep {
    /// Moves the deadline (the ticker sees the new one at once).
    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(slot) = self.slot {
            if slot.thread == this_thread() {
                PENDING.with(|pending| pending.borrow_mut().move_to(slot.index, deadline));
            }
        }
    }

    fn unregister(&mut self) {
        if let Some(slot) = self.slot.take() {
            if slot.thread == this_thread() {
                PENDING.with(|pending| pending.borrow_mut().remove(slot.index));
            }
        }
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// A deadline armed and disarmed in place, for I/O wrappers (a request head, a write, a body's
/// pause): no allocation, and nothing registered until it is polled while armed.
#[derive(Default)]
pub struct Deadline(Option<CoarseSleep>);

impl Deadline {
    /// Arms it `after` from now, unless it is armed already.
    pub fn arm(&mut self, after: Duration) {
        if self.0.is_none() {
            self.0 = Some(CoarseSleep {
                deadline: Instant::now() + after,
                slot: None,
            });
        }
    }

    pub fn disarm(&mut self) {
        self.0 = None;
    }

    /// A stall deadline around one poll of some I/O: armed `after` from the first poll that
    /// made no progress, cleared by one that did. True once the I/O stalled that long (`cx` is
    /// woken when it does).
    pub fn stalled<T>(&mut self, cx: &mut Context<'_>, polled: &Poll<T>, after: Duration) -> bool {
        if polled.is_ready() {
            self.disarm();
            return false;
        }
        self.arm(after);
        self.poll_expired(cx)
    }

    /// Whether the armed deadline has passed; if not, `cx` is woken when it does.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.0 {
            Some(sleep) => Pin::new(sleep).poll(cx).is_ready(),
            None => false,
        }
    }
}

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending::new()) };
}

/// This thread's pending sleeps: a slab of (deadline, waker) with a free list.
struct Pending {
    entries: Vec<Option<(Instant, Waker)>>,
    free: Vec<usize>,
    live: usize,
    ticking: bool,
}

impl Pending {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
            ticking: false,
        }
    }

    /// Registers (or updates) a sleep; starts this thread's ticker when it is not running.
    fn put(&mut self, slot: Option<usize>, deadline: Instant, waker: &Waker) -> usize {
        if let Some(index) = slot {
            if let Some(Some((at, registered))) = self.entries.get_mut(index) {
                *at = deadline;
                if !registered.will_wake(waker) {
                    registered.clone_from(waker);
                }
                return index;
            }
        }
        let entry = Some((deadline, waker.clone()));
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index] = entry;
                index
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        self.live += 1;
        if !self.ticking {
            self.ticking = true;
            tokio::spawn(tick());
        }
        index
    }

    fn move_to(&mut self, index: usize, deadline: Instant) {
        if let Some(Some((at, _))) = self.entries.get_mut(index) {
            *at = deadline;
        }
    }

    fn remove(&mut self, index: usize) {
        if let Some(entry @ Some(_)) = self.entries.get_mut(index) {
            *entry = None;
            self.free.push(index);
            self.live -= 1;
        }
    }

    /// Takes the wakers of the expired sleeps (they stay registered until polled or dropped).
    fn expired(&mut self, now: Instant) -> Vec<Waker> {
        self.entries
            .iter()
            .flatten()
            .filter(|(deadline, _)| *deadline <= now)
            .map(|(_, waker)| waker.clone())
            .collect()
    }
}

/// This thread's ticker: wakes expired sleeps every [`TICK`] while any sleep is pending.
async fn tick() {
    loop {
        tokio::time::sleep(TICK).await;
        let expired = PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            if pending.live == 0 {
                pending.ticking = false;
                return None;
            }
            Some(pending.expired(Instant::now()))
        });
        let Some(expired) = expired else {
            return;
        };
        for waker in expired {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn live() -> usize {
        PENDING.with(|p| p.borrow().live)
    }

    #[test]
    fn a_sleep_ends_not_before_its_deadline_and_the_ticker_stops() {
        runtime().block_on(async {
            let start = Instant::now();
            // Bounded only against a hang: how late it fires is the benchmark's business.
            let slept = tokio::time::timeout(
                Duration::from_secs(10),
                CoarseTimer.sleep(Duration::from_millis(300)),
            );
            slept.await.expect("the sleep ends");
            let slept = start.elapsed();
            assert!(
                slept >= Duration::from_millis(300),
                "never early: {slept:?}"
            );
            assert_eq!(live(), 0);
            let stopped = async {
                while PENDING.with(|p| p.borrow().ticking) {
                    tokio::time::sleep(TICK / 4).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), stopped)
                .await
                .expect("the ticker stops with nothing pending");
        });
    }

    #[test]
    fn reset_and_dropped_sleeps_leave_nothing_behind() {
        runtime().block_on(async {
            let timer = CoarseTimer;
            let mut sleep = timer.sleep(Duration::from_secs(60));
            assert!(futures_util::poll!(sleep.as_mut()).is_pending());
            assert_eq!(live(), 1);
            // Moved earlier in place: it ends at the new deadline, not after 60 s.
            timer.reset(&mut sleep, Instant::now() + Duration::from_millis(100));
            tokio::time::timeout(Duration::from_secs(5), sleep)
                .await
                .unwrap();
            assert_eq!(live(), 0);
            let mut dropped = timer.sleep(Duration::from_secs(60));
            assert!(futures_util::poll!(dropped.as_mut()).is_pending());
            assert_eq!(live(), 1);
            drop(dropped);
            assert_eq!(live(), 0);
        });
    }
}
